"""PDF in and out: a one-page writer over Pillow, and a page rasteriser over pypdfium2."""

from __future__ import annotations

import re
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


#: Pillow stores a greyscale page as a JPEG (its PDF writer has no lossless filter for
#: grey). At this quality the blank sheet, drawn back at its DPI, differs from its image
#: by about one grey level on average (0.98; 0.88 when it was stored losslessly, the rest
#: being the drawing's own resampling): far under what the reader's thresholds tell apart.
PDF_JPEG_QUALITY: Final = 95


def image_to_pdf(image: npt.NDArray[np.uint8], dpi: int) -> bytes:
    """A single-page PDF showing ``image`` (2-D uint8) at ``dpi``: the page is the image."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image, mode="L").save(out, format="PDF", resolution=float(dpi), quality=PDF_JPEG_QUALITY)
    return out.getvalue()


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
