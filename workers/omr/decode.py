"""Turn uploaded bytes into a greyscale image, refusing bombs and broken files first.

A thin layer over :mod:`workers.imageio` with the reader's own limits: PNG, JPEG, TIFF
and BMP are read (greyscale, or in colour by ``decode_image``), at most ``MAX_PIXELS``
(``IMAGE_TOO_LARGE`` above, judged from the header before anything is decompressed) and
at least ``MIN_SIDE`` pixels on a side.
Everything is raised as :class:`OmrError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Final, TypeVar

from workers import imageio
from workers.base import BadInput
from workers.imageio import sniff
from workers.omr.errors import RESOLUTION_TOO_LOW, OmrError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.template import Template

__all__ = [
    "KINDS",
    "MAX_PIXELS",
    "MIN_REDUCED_RADIUS_PX",
    "MIN_SIDE",
    "check_gray",
    "decode_for",
    "decode_gray",
    "decode_image",
    "image_size",
    "reading_reduction",
    "sniff",
]

MAX_PIXELS: Final = 60_000_000
MIN_SIDE: Final = 200
#: a scan is decoded at half size when the template's smallest bubble still measures this
#: many pixels of radius there (a 200 dpi scan of a card with 26 px bubbles: 6.5). A JPEG
#: decoded at half size skips most of its inverse DCT, and every later stage then works on
#: a quarter of the pixels. At 5 px the reader is as right and flags as little as on the
#: whole scan, a sheet shrunk by 15 % on the scanner included. An oval bubble's radius is
#: the geometric mean of its half width and half height (the circle of the same area):
#: the samples of its middle and of the paper round it grow with its area, and the
#: omr-dev card's 18 x 27 px ID ovals (4.8 px of half width, 5.9 px of radius at half
#: size) read as right and flag as little at half size as whole, on the development
#: sheets and on fresh damaged variants of them (bench/omr_perturbed.py).
MIN_REDUCED_RADIUS_PX: Final = 5.0
#: the image kinds the reader takes (a PDF goes through workers.omr.pdf instead).
KINDS: Final = frozenset({"png", "jpeg", "tiff", "bmp", "webp"})

_T = TypeVar("_T")


def _as_omr(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except OmrError:
        raise
    except BadInput as exc:
        raise OmrError(exc.code, exc.message) from exc


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header alone. Raises OmrError when it cannot be read."""
    _, w, h = _as_omr(lambda: imageio.image_size(data, KINDS))
    return w, h


def decode_gray(data: bytes) -> npt.NDArray[np.uint8]:
    """Decode to a 2-D uint8 image, or raise OmrError with a rejection code."""
    return _as_omr(lambda: imageio.decode(data, kinds=KINDS, max_pixels=MAX_PIXELS, min_side=MIN_SIDE))


def decode_image(data: bytes, *, reduce: int = 1) -> npt.NDArray[np.uint8]:
    """Decode keeping colour (3-channel BGR, whatever the file holds), or raise OmrError.

    The reader reads marks past dropout-ink print on a colour channel (workers/omr/sample.py),
    so a colour scan keeps its colour until then. ``reduce`` (1 or 2) decodes at that
    fraction of the size (see ``decode_for``).
    """
    image = _as_omr(
        lambda: imageio.decode(
            data, kinds=KINDS, max_pixels=MAX_PIXELS, min_side=MIN_SIDE, grayscale=False, reduce=reduce
        )
    )
    if image.ndim == 3 and image.shape[2] == 4:
        import cv2
        import numpy as np

        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    return image


def reading_reduction(width: int, height: int, template: Template, *, photo: bool) -> int:
    """2 when a ``width`` x ``height`` scan read with ``template`` keeps enough pixels per
    bubble at half size (MIN_REDUCED_RADIUS_PX), else 1.

    Decided from the template and the image size alone, never from what one sheet shows,
    so every sheet of a batch is read alike. A scan shows about the whole page, so the
    page's scale is the image's over the template frame's (the smaller of the two sides).
    A phone photo shows the page at any size, so it is always read whole; so is a sheet
    found by anything but its corner markers (the page's edges, a reference picture, a
    timing track): such a page may lie in a much bigger picture (a scan of the whole bed),
    and those aligners judge the bubbles' size in the picture's own pixels.
    """
    if photo or not template.fields or template.alignment.kind != "markers":
        return 1
    page_scale = min(width / template.width, height / template.height)
    smallest = min(math.sqrt(w * h) for w, h in map(template.bubble_size, template.fields)) / 2
    return 2 if smallest * page_scale / 2 >= MIN_REDUCED_RADIUS_PX else 1


def decode_for(data: bytes, template: Template, *, photo: bool) -> tuple[npt.NDArray[np.uint8], Template]:
    """Decode a sheet for reading with ``template``: at half size when its bubbles stay
    big enough (``reading_reduction``), with the template to read it by.

    A picture decoded at 1/n of its size holds 1/n of the pixels per template pixel, so
    its resolution checks (align.MIN_DPI) hold the template's DPI n times higher: they
    judge the scan as it was made, and the bubbles stay above the floor by construction.
    """
    w, h = image_size(data)
    # Only a JPEG decodes faster at half size; other kinds are read whole.
    reduce = reading_reduction(w, h, template, photo=photo) if sniff(data) == "jpeg" else 1
    image = decode_image(data, reduce=reduce)
    return image, _reduced(template, reduce)


#: (id of the template, reduction) -> (that template, its reduced copy).
_REDUCED: dict[tuple[int, int], tuple[Template, Template]] = {}


def _reduced(template: Template, reduce: int) -> Template:
    """One template object per (template, reduction): the reader caches work per template.

    Keyed by the object, not by equality: two templates equal in name and geometry may
    still differ in what equality leaves out (the corner marker's picture, the alignment's
    options), and a sheet must be read with its own."""
    if reduce == 1:
        return template
    key = (id(template), reduce)
    hit = _REDUCED.get(key)
    if hit is not None and hit[0] is template:
        return hit[1]
    out = replace(template, dpi=template.dpi * reduce)
    if len(_REDUCED) >= 8:
        _REDUCED.pop(next(iter(_REDUCED)))
    _REDUCED[key] = (template, out)
    return out


def check_gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Size checks shared by decoded files and rasterised PDF pages."""
    if min(image.shape[:2]) < MIN_SIDE:
        raise OmrError(RESOLUTION_TOO_LOW, f"image is only {image.shape[1]}x{image.shape[0]} pixels")
    return image
