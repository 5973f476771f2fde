"""PDF in and out: a minimal one-page writer, and a page rasteriser over pypdfium2.

The writer embeds one greyscale image as a Flate-compressed XObject that fills the
page; that is all a printable blank sheet needs, and it keeps us off any PDF library.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from workers.omr.errors import FILE_UNREADABLE, INVALID_PAYLOAD, PDF_NO_PAGES, PDF_TOO_MANY_PAGES, OmrError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pypdfium2 as pdfium

MAX_PAGES: Final = 300
RASTER_DPI: Final = 200
#: rasterising never makes a page bigger than this, whatever size the PDF claims: an A3
#: page at 200 dpi is 7.8 MP, so a page box far past that (a "bomb" page of 200 x 200
#: inches) is drawn at a lower DPI instead of as a gigabyte bitmap.
MAX_PAGE_PIXELS: Final = 16_000_000
#: a page tree that says it has no pages (PDFium refuses such a document outright).
_NO_PAGES: Final = re.compile(rb"/Count\s+0(?![0-9.])")
_A_PAGE: Final = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def image_to_pdf(image: npt.NDArray[np.uint8], dpi: int) -> bytes:
    """A single-page PDF showing ``image`` (2-D uint8) at ``dpi``."""
    h, w = image.shape[:2]
    pw, ph = w * 72 / dpi, h * 72 / dpi
    pixels = zlib.compress(image.tobytes(), 6)
    content = f"q {pw:.2f} 0 0 {ph:.2f} 0 0 cm /Im0 Do Q".encode()
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.2f} {ph:.2f}] "
            "/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>"
        ).encode(),
        _stream(
            f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
            f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(pixels)} >>",
            pixels,
        ),
        _stream(f"<< /Length {len(content)} >>", content),
    ]
    return pdf_from_objects(objects)


def pdf_from_objects(objects: list[bytes]) -> bytes:
    """A PDF file from its numbered objects (object 1 is the catalog), with its xref table."""
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


def _stream(header: str, data: bytes) -> bytes:
    return header.encode() + b"\nstream\n" + data + b"\nendstream"


def page_scale(width_pt: float, height_pt: float) -> float:
    """Pixels per PDF point for a page: RASTER_DPI, less where that passes MAX_PAGE_PIXELS."""
    scale = RASTER_DPI / 72
    if width_pt * height_pt * scale * scale > MAX_PAGE_PIXELS:
        # A huge page box would make a huge bitmap; draw it smaller instead.
        scale = (MAX_PAGE_PIXELS / (width_pt * height_pt)) ** 0.5
    return scale


def _has_no_pages(data: bytes, err_code: object) -> bool:
    """Whether a PDF that PDFium refused is one whose page tree is empty.

    PDFium parses such a file, then refuses it without setting an error, so its last
    error is still "success" (0) - or whatever an earlier, unrelated failure in this
    process left there, which is why the file is also looked at: a page tree saying
    ``/Count 0`` and no page object anywhere.
    """
    return err_code == 0 or (_NO_PAGES.search(data) is not None and _A_PAGE.search(data) is None)


@contextmanager
def _opened(data: bytes) -> Iterator[tuple[pdfium.PdfDocument, int]]:
    """The document and its page count, checked against the limits; closed on exit."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if _has_no_pages(data, getattr(exc, "err_code", None)):
            raise OmrError(PDF_NO_PAGES, "PDF has no pages") from exc
        raise OmrError(FILE_UNREADABLE, f"PDF cannot be opened: {exc}") from exc
    try:
        count = len(doc)
        if count == 0:
            raise OmrError(PDF_NO_PAGES, "PDF has no pages")
        if count > MAX_PAGES:
            raise OmrError(PDF_TOO_MANY_PAGES, f"PDF has {count} pages; at most {MAX_PAGES} are read")
        yield doc, count
    finally:
        doc.close()


def pdf_page_count(data: bytes) -> int:
    """Pages in a PDF, checked against the limits without drawing any. Raises OmrError."""
    with _opened(data) as (_, count):
        return count


def _render(doc: pdfium.PdfDocument, index: int) -> npt.NDArray[np.uint8]:
    import numpy as np
    import pypdfium2 as pdfium

    page = doc[index]
    try:
        w, h = page.get_size()
        if not (w > 0 and h > 0):
            raise OmrError(FILE_UNREADABLE, f"PDF page {index + 1} has no size")
        try:
            bitmap = page.render(scale=page_scale(w, h), grayscale=True)
        except pdfium.PdfiumError as exc:
            raise OmrError(FILE_UNREADABLE, f"PDF page {index + 1} cannot be drawn: {exc}") from exc
        try:
            pixels = bitmap.to_numpy().reshape(bitmap.height, bitmap.width, -1)[:, :, 0]
            # One channel, copied out of PDFium's buffer before it is freed.
            return np.array(pixels, dtype=np.uint8, order="C", copy=True)
        finally:
            bitmap.close()
    finally:
        page.close()


def pdf_page(data: bytes, number: int) -> npt.NDArray[np.uint8]:
    """Page ``number`` (1-based) rasterised to greyscale: what one batch job reads."""
    with _opened(data) as (doc, count):
        if not 1 <= number <= count:
            raise OmrError(INVALID_PAYLOAD, f"page {number} is not in this {count}-page PDF")
        return _render(doc, number - 1)


def pdf_pages(data: bytes) -> Iterator[npt.NDArray[np.uint8]]:
    """Rasterise each page to greyscale at RASTER_DPI (one sheet per page).

    Raises OmrError for an unreadable PDF, one with no pages or more than MAX_PAGES;
    the page count is checked before any page is drawn.
    """
    with _opened(data) as (doc, count):
        for index in range(count):
            yield _render(doc, index)
