"""Turn uploaded bytes into a greyscale image, refusing bombs and broken files first.

A thin layer over :mod:`workers.imageio` with the reader's own limits: PNG, JPEG, TIFF
and BMP are read (greyscale, or in colour by ``decode_image``), at most ``MAX_PIXELS``
(``IMAGE_TOO_LARGE`` above, judged from the header before anything is decompressed) and
at least ``MIN_SIDE`` pixels on a side.
Everything is raised as :class:`OmrError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

from workers import imageio
from workers.base import BadInput
from workers.imageio import sniff
from workers.omr.errors import RESOLUTION_TOO_LOW, OmrError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["KINDS", "MAX_PIXELS", "MIN_SIDE", "check_gray", "decode_gray", "decode_image", "image_size", "sniff"]

MAX_PIXELS: Final = 60_000_000
MIN_SIDE: Final = 200
#: the image kinds the reader takes (a PDF goes through workers.omr.pdf instead).
KINDS: Final = frozenset({"png", "jpeg", "tiff", "bmp"})

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


def decode_image(data: bytes) -> npt.NDArray[np.uint8]:
    """Decode keeping colour (3-channel BGR, whatever the file holds), or raise OmrError.

    The reader reads marks past dropout-ink print on a colour channel (workers/omr/sample.py),
    so a colour scan keeps its colour until then.
    """
    image = _as_omr(
        lambda: imageio.decode(data, kinds=KINDS, max_pixels=MAX_PIXELS, min_side=MIN_SIDE, grayscale=False)
    )
    if image.ndim == 3 and image.shape[2] == 4:
        import cv2
        import numpy as np

        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    return image


def check_gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Size checks shared by decoded files and rasterised PDF pages."""
    if min(image.shape[:2]) < MIN_SIDE:
        raise OmrError(RESOLUTION_TOO_LOW, f"image is only {image.shape[1]}x{image.shape[0]} pixels")
    return image
