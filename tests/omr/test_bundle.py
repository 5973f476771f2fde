"""Uploads into sheets: images, PDFs (a sheet a page) and zips, hostile ones included."""

from __future__ import annotations

import io
import zipfile

import pypdfium2 as pdfium
import pytest

from workers.omr import bundle
from workers.omr.bundle import Document, Skipped, expand_upload
from workers.omr.pdf import MAX_PAGES

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)  # the name decides here; pixels are checked later


def pdf_with_pages(count: int) -> bytes:
    doc = pdfium.PdfDocument.new()
    for _ in range(count):
        doc.new_page(595, 842)
    out = io.BytesIO()
    doc.save(out)
    doc.close()
    return out.getvalue()


def zipped(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_an_image_is_one_document() -> None:
    [entry] = expand_upload("scan.PNG", PNG)
    assert entry == Document("scan.PNG", PNG, "image")


def test_a_pdf_is_counted_without_drawing_its_pages() -> None:
    [entry] = expand_upload("class.pdf", pdf_with_pages(3))
    assert isinstance(entry, Document)
    assert (entry.kind, entry.pages) == ("pdf", 3)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (pdf_with_pages(0), "PDF_NO_PAGES"),
        (pdf_with_pages(MAX_PAGES + 1), "PDF_TOO_MANY_PAGES"),
        (b"%PDF-1.7\n garbage", "FILE_UNREADABLE"),
    ],
    ids=["no-pages", "too-many-pages", "corrupt"],
)
def test_a_pdf_that_cannot_be_a_batch_is_skipped_with_its_code(data: bytes, code: str) -> None:
    [entry] = expand_upload("class.pdf", data)
    assert isinstance(entry, Skipped)
    assert entry.code == code


def test_a_zip_yields_its_sheets_in_a_teachers_order_and_skips_the_rest() -> None:
    data = zipped(
        {
            "b/sheet10.jpg": PNG,
            "b/sheet9.jpg": PNG,
            "b/.DS_Store": b"junk",
            "__MACOSX/b/._sheet9.jpg": b"fork",
            "b/answers.docx": b"PK",
            "b/more.zip": zipped({"x.png": PNG}),
            "b/pages.pdf": pdf_with_pages(2),
        }
    )
    entries = list(expand_upload("class.zip", data))
    docs = [(e.name, e.kind, e.pages) for e in entries if isinstance(e, Document)]
    skipped = sorted((e.name, e.code) for e in entries if isinstance(e, Skipped))
    assert docs == [
        ("class.zip/b/pages.pdf", "pdf", 2),
        ("class.zip/b/sheet9.jpg", "image", 1),
        ("class.zip/b/sheet10.jpg", "image", 1),
    ]
    assert skipped == [
        ("class.zip/__MACOSX/b/._sheet9.jpg", "INVALID_FORMAT"),  # listed, never dropped without a trace
        ("class.zip/b/.DS_Store", "INVALID_FORMAT"),
        ("class.zip/b/answers.docx", "INVALID_FORMAT"),
        ("class.zip/b/more.zip", "INVALID_FORMAT"),
    ]


def test_a_zip_bomb_member_is_cut_off_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "MAX_MEMBER_BYTES", 1024 * 1024)
    bomb = zipped({"bomb.png": bytes(64 * 1024 * 1024), "ok.png": PNG})
    assert len(bomb) < 200_000  # 64 MB of zeros, deflated
    entries = list(expand_upload("class.zip", bomb))
    assert [(e.name, e.code) for e in entries if isinstance(e, Skipped)] == [("class.zip/bomb.png", "FILE_TOO_LARGE")]
    assert [e.name for e in entries if isinstance(e, Document)] == ["class.zip/ok.png"]


def test_a_zip_whose_total_exceeds_the_budget_stops_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "MAX_ZIP_TOTAL_BYTES", 150)
    entries = list(expand_upload("class.zip", zipped({f"s{i}.png": PNG for i in range(5)})))
    assert [type(e).__name__ for e in entries] == ["Document", "Document", "Skipped"]
    assert isinstance(entries[-1], Skipped)
    assert entries[-1].code == "FILE_TOO_LARGE"


def test_a_corrupt_zip_is_skipped_not_raised() -> None:
    [entry] = expand_upload("class.zip", b"PK\x03\x04" + bytes(40))
    assert isinstance(entry, Skipped)
    assert entry.code == "FILE_UNREADABLE"
