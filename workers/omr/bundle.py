"""What a teacher uploads, turned into sheets: image files, PDFs (a sheet a page), zips.

Pure: bytes in, :class:`Document` and :class:`Skipped` entries out, one at a time so a
large zip is never held whole. Nothing here decodes an image or draws a PDF page; that
is a worker's job, one sheet per job. Zips are read defensively: the sizes a member
claims are not trusted (reading stops one byte past the limit), nested archives and
encrypted members are refused, and the total extracted is capped, so a zip bomb costs
at most the cap.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from workers.imageio import sniff
from workers.omr.errors import FILE_TOO_LARGE, FILE_UNREADABLE, INVALID_FORMAT, OmrError
from workers.omr.pdf import pdf_page_count

IMAGE_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
UPLOAD_EXTENSIONS: Final = IMAGE_EXTENSIONS | {".pdf", ".zip"}
MAX_MEMBER_BYTES: Final = 50 * 1024 * 1024
MAX_ZIP_TOTAL_BYTES: Final = 1024 * 1024 * 1024
MAX_ZIP_MEMBERS: Final = 2000


@dataclass(frozen=True)
class Document:
    """One file to store: an image (one sheet) or a PDF (``pages`` sheets)."""

    name: str
    data: bytes
    kind: Literal["image", "pdf"]
    pages: int = 1


@dataclass(frozen=True)
class Skipped:
    """An uploaded entry that yields no sheet, with the rejection code saying why."""

    name: str
    code: str
    detail: str


Entry = Document | Skipped


def _natural_key(name: str) -> list[object]:
    # "sheet2.png" before "sheet10.png", as a teacher numbers them.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _document(name: str, data: bytes) -> Entry:
    extension = posixpath.splitext(name)[1].lower()
    kind = sniff(data)
    if extension == ".pdf" or kind == "pdf":
        try:
            return Document(name, data, "pdf", pdf_page_count(data))
        except OmrError as exc:
            return Skipped(name, exc.code, exc.message)
    if extension not in IMAGE_EXTENSIONS:
        return Skipped(name, INVALID_FORMAT, f"{extension or 'no extension'} is not a sheet image or PDF")
    # The image itself is checked where it is read (pre-validation, then the worker);
    # here only the name decides, so one bad scan cannot stop the others.
    return Document(name, data, "image")


def expand_upload(name: str, data: bytes) -> Iterator[Entry]:
    """The sheets in one uploaded file, in a teacher's order."""
    base = posixpath.basename(name.replace("\\", "/")) or "upload"
    if posixpath.splitext(base)[1].lower() == ".zip" or data[:4] == b"PK\x03\x04":
        yield from _expand_zip(base, data)
    else:
        yield _document(base, data)


def _expand_zip(archive: str, data: bytes) -> Iterator[Entry]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield Skipped(archive, FILE_UNREADABLE, f"not a readable zip: {exc}")
        return
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and not _hidden(m.filename)]
        if len(members) > MAX_ZIP_MEMBERS:
            yield Skipped(archive, FILE_TOO_LARGE, f"{len(members)} files; at most {MAX_ZIP_MEMBERS}")
            return
        budget = MAX_ZIP_TOTAL_BYTES
        for member in sorted(members, key=lambda m: _natural_key(m.filename)):
            label = f"{archive}/{member.filename}"
            if member.flag_bits & 0x1:
                yield Skipped(label, INVALID_FORMAT, "encrypted zip members cannot be read")
                continue
            if posixpath.splitext(member.filename)[1].lower() == ".zip":
                yield Skipped(label, INVALID_FORMAT, "a zip inside a zip is not opened")
                continue
            limit = min(MAX_MEMBER_BYTES, budget)
            try:
                with zf.open(member) as fh:
                    content = fh.read(limit + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
                yield Skipped(label, FILE_UNREADABLE, f"cannot be extracted: {exc}")
                continue
            if len(content) > limit:
                yield Skipped(label, FILE_TOO_LARGE, f"expands past {limit:,} bytes")
                if limit < MAX_MEMBER_BYTES:  # the whole archive's budget is spent
                    return
                continue
            budget -= len(content)
            yield _document(label, content)


def _hidden(path: str) -> bool:
    parts = path.replace("\\", "/").split("/")
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts if p)
