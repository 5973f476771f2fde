"""Turn uploaded image bytes into pixels, refusing bombs and broken files first.

Every processor that decodes an upload goes through :func:`decode`, which checks, in
this order and before any pixel is decompressed:

- an empty file is ``EMPTY_FILE``; one over ``max_bytes`` (when given) ``FILE_TOO_LARGE``;
- the kind comes from the magic bytes (not the name): an image kind the caller does not
  take, or a known non-image (GIF, PDF, ZIP, OLE2, RIFF other than WebP, HEIC/AVIF), is
  ``INVALID_FORMAT``; bytes that are no image at all ``FILE_UNREADABLE``;
- the width and height are read from the header alone, so a small file that claims a
  gigantic image (a decompression bomb) costs nothing: a damaged header is
  ``FILE_UNREADABLE``, a side under ``min_side`` ``RESOLUTION_TOO_LOW`` and more than
  ``max_pixels`` pixels ``IMAGE_TOO_LARGE``;
- a JPEG without its end marker or a PNG without ``IEND`` is truncated
  (``FILE_UNREADABLE``): decoders hand back a half-grey image instead of failing.

Only then does OpenCV decode it; a decoder error is ``FILE_UNREADABLE`` too. Everything is
raised as :class:`workers.base.BadInput`. The module is pure: OpenCV and NumPy are imported
inside :func:`decode`, so reading a header costs no heavy import.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Final

from workers.base import BadInput

if TYPE_CHECKING:
    import numpy.typing as npt

#: every image kind :func:`image_size` can read, in the order messages list them.
IMAGE_KINDS: Final = frozenset({"png", "jpeg", "tiff", "bmp", "webp"})
_NAMES: Final = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP", "webp": "WebP"}

# Real files of a kind no processor reads as an image: GIF, PDF, ZIP, OLE2 (old Office
# files), RIFF that is not WebP (AVI, WAV); HEIC/AVIF are told by their ISO-BMFF brand.
_OTHER_MAGIC: Final = (b"GIF8", b"%PDF", b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"RIFF")
_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})
#: the brands of an ISO-BMFF ``ftyp`` box that mark a still image, not a movie.
HEIF_BRANDS: Final = _HEIF_BRANDS
_JPEG_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


# --------------------------------------------------------------------------- header


def sniff(data: bytes) -> str | None:
    """The container kind from the magic bytes: png, jpeg, tiff, bmp, webp, pdf, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.lstrip()[:5] == b"%PDF-":
        return "pdf"
    return None


def _formats(kinds: frozenset[str]) -> str:
    names = [name for kind, name in _NAMES.items() if kind in kinds]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def image_size(data: bytes, kinds: frozenset[str] = IMAGE_KINDS) -> tuple[str, int, int]:
    """(kind, width, height) from the header alone; raises BadInput when unreadable.

    ``kinds`` are the image kinds the caller takes; any other image kind, and the known
    non-image kinds (PDF, ZIP...), are ``INVALID_FORMAT``.
    """
    kind = sniff(data)
    if kind not in kinds & IMAGE_KINDS:
        if kind is not None or data.startswith(_OTHER_MAGIC) or _is_heif(data):
            raise BadInput(f"only {_formats(kinds)} images are read", code="INVALID_FORMAT")
        raise BadInput("the file is not a readable image", code="FILE_UNREADABLE")
    try:
        if kind == "png":
            if data[12:16] != b"IHDR":
                raise ValueError("no IHDR chunk")
            w, h = struct.unpack(">II", data[16:24])
        elif kind == "jpeg":
            w, h = _jpeg_size(data)
        elif kind == "tiff":
            w, h = _tiff_size(data)
        elif kind == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            w, h = abs(w), abs(h)  # a negative height is a top-down bitmap
        else:
            w, h = _webp_size(data)
    except (struct.error, ValueError, IndexError) as exc:
        raise BadInput(f"the {kind} header is damaged: {exc}", code="FILE_UNREADABLE") from exc
    return kind, int(w), int(h)


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("bad marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return w, h
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise ValueError("no frame header")


def _tiff_size(data: bytes) -> tuple[int, int]:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    dims: dict[int, int] = {}
    for i in range(count):
        entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, typ = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            fmt = order + ("H" if typ == 3 else "I")
            dims[tag] = struct.unpack(fmt, entry[8 : 8 + struct.calcsize(fmt)])[0]
    if 256 not in dims or 257 not in dims:
        raise ValueError("no image size tags")
    return dims[256], dims[257]


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        if len(data) < 30:
            raise ValueError("short VP8X chunk")
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":  # lossless: 0x2f, then 14-bit width-1 and height-1
        if data[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # lossy: frame tag, start code, then 14-bit width and height
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    raise ValueError(f"unknown WebP chunk {chunk!r}")


def looks_truncated(data: bytes, kind: str) -> bool:
    """Whether a JPEG or PNG lacks its end marker (other kinds are not judged)."""
    if kind == "jpeg":
        # Inside entropy-coded data 0xFF is always stuffed, so FFD9 after the scan
        # header can only be the end-of-image marker.
        sos = data.find(b"\xff\xda")
        return sos < 0 or data.rfind(b"\xff\xd9") < sos
    if kind == "png":
        return data.rfind(b"IEND") < 0
    return False


# --------------------------------------------------------------------------- decode


def check_size(w: int, h: int, *, max_pixels: int, min_side: int) -> None:
    """RESOLUTION_TOO_LOW under ``min_side`` on a side, IMAGE_TOO_LARGE over ``max_pixels``."""
    if w <= 0 or h <= 0 or min(w, h) < min_side:
        raise BadInput(f"image is only {w}x{h} pixels; at least {min_side} on each side", code="RESOLUTION_TOO_LOW")
    if w * h > max_pixels:
        raise BadInput(
            f"image is {w}x{h} pixels; at most {max_pixels / 1_000_000:g} megapixels", code="IMAGE_TOO_LARGE"
        )


def decode(
    data: bytes,
    *,
    max_pixels: int,
    min_side: int,
    kinds: frozenset[str] = IMAGE_KINDS,
    max_bytes: int | None = None,
    grayscale: bool = True,
    keep_alpha: bool = False,
    reduce: int = 1,
) -> npt.NDArray[Any]:
    """Decode after every guard in the module doc; raise BadInput with a rejection code.

    ``grayscale`` gives a 2-D uint8 image, else 3-channel BGR. ``keep_alpha`` decodes the
    kinds that may hold alpha (or 16-bit or float samples) unchanged, for the caller to
    flatten; a JPEG, which holds none, is still decoded as ``grayscale`` says so that its
    EXIF orientation is applied. ``reduce`` (1, 2, 4 or 8) decodes at that fraction of
    the size; a JPEG then skips most of its inverse DCT, which is what makes a quick
    look (the quality gate) cheap. It does not combine with ``keep_alpha``.
    """
    if not data:
        raise BadInput("the file is empty", code="EMPTY_FILE")
    if max_bytes is not None and len(data) > max_bytes:
        raise BadInput(f"the file is {len(data)} bytes; at most {max_bytes}", code="FILE_TOO_LARGE")
    kind, w, h = image_size(data, kinds)
    check_size(w, h, max_pixels=max_pixels, min_side=min_side)
    if looks_truncated(data, kind):
        raise BadInput("the image file is truncated", code="FILE_UNREADABLE")

    import cv2
    import numpy as np

    reduced = {
        (True, 2): cv2.IMREAD_REDUCED_GRAYSCALE_2,
        (True, 4): cv2.IMREAD_REDUCED_GRAYSCALE_4,
        (True, 8): cv2.IMREAD_REDUCED_GRAYSCALE_8,
        (False, 2): cv2.IMREAD_REDUCED_COLOR_2,
        (False, 4): cv2.IMREAD_REDUCED_COLOR_4,
        (False, 8): cv2.IMREAD_REDUCED_COLOR_8,
    }
    if reduce != 1 and (keep_alpha or (grayscale, reduce) not in reduced):
        raise ValueError(f"reduce must be 1, 2, 4 or 8 and without keep_alpha, not {reduce}")
    if keep_alpha and kind != "jpeg":
        flags = cv2.IMREAD_UNCHANGED
    elif reduce != 1:
        flags = reduced[(grayscale, reduce)]
    else:
        flags = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise BadInput("the image cannot be decoded", code="FILE_UNREADABLE") from exc
    if image is None or image.size == 0:
        raise BadInput("the image cannot be decoded", code="FILE_UNREADABLE")
    # The header may lie about the size; the pixels are what counts.
    if min(image.shape[:2]) * reduce < min_side:
        raise BadInput(f"image is only {image.shape[1]}x{image.shape[0]} pixels", code="RESOLUTION_TOO_LOW")
    return np.asarray(image)
