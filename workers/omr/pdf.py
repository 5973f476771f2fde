"""PDF in and out: a minimal one-page writer, and a page rasteriser over pypdfium2.

The writer embeds one greyscale image as a Flate-compressed XObject that fills the
page; that is all a printable blank sheet needs, and it keeps us off any PDF library.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from workers.omr.errors import FILE_UNREADABLE, PDF_NO_PAGES, PDF_TOO_MANY_PAGES, OmrError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MAX_PAGES: Final = 300
RASTER_DPI: Final = 200
#: rasterising never makes a page bigger than this, whatever size the PDF claims.
MAX_PAGE_PIXELS: Final = 60_000_000


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


def pdf_pages(data: bytes) -> Iterator[npt.NDArray[np.uint8]]:
    """Rasterise each page to greyscale at RASTER_DPI (one sheet per page).

    Raises OmrError for an unreadable PDF, one with no pages or more than MAX_PAGES;
    the page count is checked before any page is drawn.
    """
    import numpy as np
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        # PDFium parses a page tree with no pages, then refuses the document while
        # reporting "success" (error code 0); every broken file gives another code.
        if getattr(exc, "err_code", None) == 0:
            raise OmrError(PDF_NO_PAGES, "PDF has no pages") from exc
        raise OmrError(FILE_UNREADABLE, f"PDF cannot be opened: {exc}") from exc
    try:
        count = len(doc)
        if count == 0:
            raise OmrError(PDF_NO_PAGES, "PDF has no pages")
        if count > MAX_PAGES:
            raise OmrError(PDF_TOO_MANY_PAGES, f"PDF has {count} pages; at most {MAX_PAGES} are read")
        for index in range(count):
            page = doc[index]
            try:
                w, h = page.get_size()
                scale = RASTER_DPI / 72
                if w * h * scale * scale > MAX_PAGE_PIXELS:
                    # A huge page box would make a huge bitmap; draw it smaller instead.
                    scale = (MAX_PAGE_PIXELS / max(w * h, 1.0)) ** 0.5
                bitmap = page.render(scale=scale, grayscale=True)
                try:
                    yield np.array(bitmap.to_numpy(), dtype=np.uint8).reshape(bitmap.height, bitmap.width, -1)[:, :, 0]
                finally:
                    bitmap.close()
            finally:
                page.close()
    finally:
        doc.close()
