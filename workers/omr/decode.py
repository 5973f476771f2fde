"""Turn uploaded bytes into a greyscale image, refusing bombs and broken files first.

The pixel count is read from the file header before anything is decompressed, so a
small file that claims a gigantic image costs nothing. Truncation is checked from the
file's own end marker because decoders tend to hand back a half-grey image instead of
failing.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from workers.omr.errors import (
    EMPTY_FILE,
    FILE_TOO_LARGE,
    FILE_UNREADABLE,
    INVALID_FORMAT,
    RESOLUTION_TOO_LOW,
    OmrError,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MAX_PIXELS: Final = 60_000_000
MIN_SIDE: Final = 200

# GIF, RIFF (WebP), PDF, ZIP: real files of a kind this reader does not take.
_OTHER_FORMATS: Final = frozenset({b"GIF8", b"RIFF", b"%PDF", b"PK\x03\x04"})
_JPEG_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def sniff(data: bytes) -> str | None:
    """The container kind from the magic bytes: png, jpeg, tiff, bmp, pdf, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data.startswith(b"BM"):
        return "bmp"
    if data.lstrip()[:5] == b"%PDF-":
        return "pdf"
    return None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header alone. Raises OmrError when it cannot be read."""
    kind = sniff(data)
    try:
        if kind == "png":
            if data[12:16] != b"IHDR":
                raise ValueError("no IHDR")
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if kind == "jpeg":
            return _jpeg_size(data)
        if kind == "tiff":
            return _tiff_size(data)
        if kind == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(int(w)), abs(int(h))
    except (struct.error, ValueError, IndexError) as exc:
        raise OmrError(FILE_UNREADABLE, f"image header is damaged: {exc}") from exc
    if data[:4] in _OTHER_FORMATS or data[8:12] in (b"WEBP", b"heic", b"mif1"):
        raise OmrError(INVALID_FORMAT, "only PNG, JPEG, TIFF and BMP images are read")
    raise OmrError(FILE_UNREADABLE, "the file is not a readable image")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("bad marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(w), int(h)
        if marker == 0xDA:
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


def _looks_truncated(data: bytes, kind: str) -> bool:
    if kind == "jpeg":
        # Inside entropy-coded data 0xFF is always stuffed, so FFD9 after the scan
        # header can only be the end-of-image marker.
        sos = data.find(b"\xff\xda")
        return sos < 0 or data.rfind(b"\xff\xd9") < sos
    if kind == "png":
        return data.rfind(b"IEND") < 0
    return False


def decode_gray(data: bytes) -> npt.NDArray[np.uint8]:
    """Decode to a 2-D uint8 image, or raise OmrError with a rejection code."""
    if not data:
        raise OmrError(EMPTY_FILE, "the file is empty")
    w, h = image_size(data)
    if min(w, h) < MIN_SIDE:
        # Checked from the header too: a 0x0 or 1x1 image is refused before decoding.
        raise OmrError(RESOLUTION_TOO_LOW, f"image is only {w}x{h} pixels")
    if w * h > MAX_PIXELS:
        raise OmrError(FILE_TOO_LARGE, f"image is {w}x{h} pixels; at most {MAX_PIXELS // 1_000_000} megapixels")
    kind = sniff(data) or ""
    if _looks_truncated(data, kind):
        raise OmrError(FILE_UNREADABLE, "the image file is truncated")
    import cv2
    import numpy as np

    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:
        raise OmrError(FILE_UNREADABLE, "the image cannot be decoded") from exc
    if image is None or image.size == 0:
        raise OmrError(FILE_UNREADABLE, "the image cannot be decoded")
    return check_gray(np.asarray(image, dtype=np.uint8))


def check_gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Size checks shared by decoded files and rasterised PDF pages."""
    if min(image.shape[:2]) < MIN_SIDE:
        raise OmrError(RESOLUTION_TOO_LOW, f"image is only {image.shape[1]}x{image.shape[0]} pixels")
    return image
