"""What a teacher uploads, turned into sheets: image files, PDFs (a sheet a page), zips.

Pure: bytes in, :class:`Document` and :class:`Skipped` entries out, one at a time so a
large zip is never held whole. Nothing here decodes an image or draws a PDF page; that
is a worker's job, one sheet per job. Zips are read defensively: the sizes a member
claims are not trusted (reading stops one byte past the limit), nested archives and
encrypted members are refused, and the total extracted is capped, so a zip bomb costs
at most the cap.

A member's name is only a label (files are stored under their base name in a folder of
their own), but a teacher must find every sheet in it, so no member is dropped without
a trace: names are normalised (``\\`` to ``/``; ``.``, ``..``, empty parts, a leading
``/`` and a drive letter removed), a second member with the same normalised name is
read as ``name (2).jpg``, and members that yield no sheet (hidden and macOS metadata
files, links, nested archives, non-images, names with nothing left) are listed as
:class:`Skipped` with a code. Only directory entries, which hold no file, are passed over.
"""

from __future__ import annotations

import io
import posixpath
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from workers.imageio import sniff
from workers.omr.errors import FILE_TOO_LARGE, FILE_UNREADABLE, INVALID_FORMAT, INVALID_PATH, OmrError
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
        members = [(safe_member_name(m.filename), m) for m in zf.infolist() if not _is_directory(m)]
        if len(members) > MAX_ZIP_MEMBERS:
            yield Skipped(archive, FILE_TOO_LARGE, f"{len(members)} files; at most {MAX_ZIP_MEMBERS}")
            return
        budget = MAX_ZIP_TOTAL_BYTES
        seen: dict[str, int] = {}
        for name, member in sorted(members, key=lambda pair: (_natural_key(pair[0]), pair[1].filename)):
            if not name:
                yield Skipped(f"{archive}/{member.filename}", INVALID_PATH, "the member's name has no file name in it")
                continue
            label = f"{archive}/{_unique(name, seen)}"
            why = _not_a_sheet(name, member)
            if why is not None:
                yield Skipped(label, *why)
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
            if content[:4] == b"PK\x03\x04":  # an archive under another name
                yield Skipped(label, INVALID_FORMAT, "a zip inside a zip is not opened")
                continue
            yield _document(label, content)


_SYSTEM_FILES: Final = frozenset({"thumbs.db", "desktop.ini"})


def safe_member_name(raw: str) -> str:
    """A zip member's name as a relative POSIX path with nothing that climbs or hides.

    ``./3-1/scan-2.jpg`` is ``3-1/scan-2.jpg``, ``../scan-3.jpg`` and ``/scan-3.jpg`` are
    ``scan-3.jpg``, ``a\\b.jpg`` is ``a/b.jpg``; empty when no name is left.
    """
    path = raw.replace("\\", "/")
    if len(path) >= 2 and path[1] == ":" and path[0].isalpha():  # a Windows drive letter
        path = path[2:]
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append("".join(ch for ch in part if ch.isprintable()).strip())
    return "/".join(p for p in parts if p)


def _is_directory(member: zipfile.ZipInfo) -> bool:
    return member.filename.replace("\\", "/").endswith("/") and member.file_size == 0


def _unique(name: str, seen: dict[str, int]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... for the next members with the same name."""
    count = seen.get(name.lower(), 0) + 1
    seen[name.lower()] = count
    if count == 1:
        return name
    stem, extension = posixpath.splitext(name)
    return f"{stem} ({count}){extension}"


def _not_a_sheet(name: str, member: zipfile.ZipInfo) -> tuple[str, str] | None:
    """(code, detail) for a member that is no sheet whatever its bytes, else None."""
    parts = name.split("/")
    if parts[0] == "__MACOSX" or parts[-1].lower() in _SYSTEM_FILES or parts[-1] == ".DS_Store":
        return INVALID_FORMAT, "system metadata (macOS or Windows), not a sheet"
    if any(part.startswith(".") for part in parts):
        return INVALID_FORMAT, "a hidden file, not a sheet"
    if stat.S_ISLNK(member.external_attr >> 16):
        return INVALID_PATH, "a link inside the zip is not followed"
    if member.flag_bits & 0x1:
        return INVALID_FORMAT, "encrypted zip members cannot be read"
    if posixpath.splitext(name)[1].lower() == ".zip":
        return INVALID_FORMAT, "a zip inside a zip is not opened"
    return None
