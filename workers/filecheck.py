"""What an input file's bytes show at once, checked before any job exists.

The name says what a file claims to be; the first bytes (and, for a few formats, the
last) say what it is. Dispatch calls :func:`content_check` on every tier, so a text
file named ``.jpg``, a cut JPEG, a PNG whose header claims 20000x20000 pixels, a zip
named ``.xlsx`` or a ``.mp4`` that is no video is refused with a code at once, instead
of going through basic and then premium to be refused by a worker. Nothing here
decodes pixels, unzips a member or parses a video: the checks cost a header read, a
scan for an end marker or a zip's directory, so the worker's own guards (the decoder's,
openpyxl's, the video reader's) still stand behind them.

Pure: bytes in, :class:`workers.base.BadInput` with a rejection code out.
"""

from __future__ import annotations

import io
import struct
import zipfile
from typing import Final

from workers import imageio
from workers.base import BadInput

IMAGE_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"})
VIDEO_EXTENSIONS: Final = frozenset({".mp4", ".mov", ".m4v"})
#: the largest image any built-in reader takes (the OMR reader's; OCR stops at 50 MP
#: when it decodes): a header claiming more is refused before a job exists.
MAX_PIXELS: Final = 60_000_000
#: how much of a file the checks of a format that needs only its start read.
HEAD_BYTES: Final = 64 * 1024
#: a PDF's last ``%%EOF`` must be this close to its end (writers add at most a line break).
PDF_TAIL_BYTES: Final = 2048
# The first box of an ISO-BMFF (MP4) or QuickTime file: a movie starts with one of these.
_MOVIE_BOXES: Final = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_OLE2: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read_plan(extension: str) -> tuple[int, int] | None:
    """What :func:`content_check` needs of a file: None for all of it (an image's end
    marker after its scan data, a zip's directory), else (head, tail): its first
    ``head`` and last ``tail`` bytes, joined. A PDF is read once per page at dispatch
    (each page is a sheet), so only its two ends are; a video only its first box."""
    extension = extension.lower()
    if extension in VIDEO_EXTENSIONS:
        return HEAD_BYTES, 0
    if extension == ".pdf":
        return HEAD_BYTES, PDF_TAIL_BYTES
    return None


def content_check(data: bytes, *, extension: str, max_pixels: int = MAX_PIXELS) -> None:
    """Raise BadInput when the bytes cannot be the kind ``extension`` names.

    Images: the kind from the magic bytes (any image kind the readers take, whatever
    the extension), the size from the header (``IMAGE_TOO_LARGE``), a JPEG or PNG
    without its end marker (``FILE_UNREADABLE``). PDFs: the ``%PDF-`` signature and a
    final ``%%EOF``. ``.xlsx``: a zip holding ``[Content_Types].xml`` and
    ``xl/workbook.xml``. Movies: a first ISO-BMFF box, and not an image's HEIF brand.
    Other extensions (``.csv``) are left to their reader.
    """
    extension = extension.lower()
    if not data:
        raise BadInput("the file is empty", code="EMPTY_FILE")
    if extension in IMAGE_EXTENSIONS:
        _image(data, max_pixels=max_pixels)
    elif extension == ".pdf":
        _pdf(data)
    elif extension == ".xlsx":
        _workbook(data)
    elif extension in VIDEO_EXTENSIONS:
        _movie(data)


def _image(data: bytes, *, max_pixels: int) -> None:
    kind, width, height = imageio.image_size(data)  # INVALID_FORMAT / FILE_UNREADABLE from the magic
    # No pixels is RESOLUTION_TOO_LOW, more than max_pixels IMAGE_TOO_LARGE, as the
    # decoder says (the smallest readable side is each reader's own, checked later).
    imageio.check_size(width, height, max_pixels=max_pixels, min_side=1)
    if imageio.looks_truncated(data, kind):
        raise BadInput(f"the {kind} file is truncated (no end marker)", code="FILE_UNREADABLE")


def _pdf(data: bytes) -> None:
    if imageio.sniff(data) != "pdf":
        raise BadInput("the file is not a PDF (no %PDF- signature)", code="INVALID_FORMAT")
    if b"%%EOF" not in data[-PDF_TAIL_BYTES:]:
        raise BadInput("the PDF is truncated (no %%EOF at its end)", code="FILE_UNREADABLE")


def _workbook(data: bytes) -> None:
    if data.startswith(_OLE2):
        return  # a password-protected workbook (or an old .xls): the reader says which
    if not data.startswith(b"PK\x03\x04"):
        raise BadInput("an .xlsx file is a zip; this one is not", code="INVALID_FORMAT")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = {name.lower() for name in zf.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise BadInput(f"the workbook's zip cannot be read (cut short?): {exc}", code="FILE_UNREADABLE") from exc
    # Part names in an OOXML package are case-insensitive.
    if "[content_types].xml" not in names or "xl/workbook.xml" not in names:
        raise BadInput("a zip, but not an Excel workbook (no xl/workbook.xml)", code="INVALID_FORMAT")


def _movie(data: bytes) -> None:
    if len(data) < 12:
        raise BadInput("the file is too short to be a video", code="INVALID_FORMAT")
    (size,) = struct.unpack(">I", data[:4])
    box = data[4:8]
    # A box's size is its length (at least its 8-byte header), 1 (a 64-bit size
    # follows) or 0 (to the end of the file).
    if box not in _MOVIE_BOXES or 1 < size < 8:
        raise BadInput("not an MP4 or MOV video (no ISO-BMFF box at its start)", code="INVALID_FORMAT")
    if box == b"ftyp" and data[8:12] in imageio.HEIF_BRANDS:
        raise BadInput("a HEIF/AVIF image, not a video", code="INVALID_FORMAT")
