"""The one-image PDF (a printable sheet, a scan made into a PDF) is the image, page for pixel."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pypdfium2 as pdfium

from tests.omr.corpus import clean, fill_sheet
from workers.omr.pdf import image_to_pdf, pdf_pages
from workers.omr.render import render_sheet
from workers.omr.template import Template


def test_the_page_is_the_image_at_its_dpi(template: Template) -> None:
    image = render_sheet(template)
    doc = pdfium.PdfDocument(image_to_pdf(image, template.dpi))
    try:
        assert len(doc) == 1
        width_pt, height_pt = doc[0].get_size()
    finally:
        doc.close()
    height, width = image.shape
    assert abs(width_pt - width * 72 / template.dpi) < 0.01
    assert abs(height_pt - height * 72 / template.dpi) < 0.01


def test_a_scan_drawn_back_from_its_pdf_keeps_its_pixels(template: Template) -> None:
    page, _ = fill_sheet(template, random.Random(7))
    decoded = cv2.imdecode(np.frombuffer(clean(page), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert decoded is not None
    grey = decoded.astype(np.uint8)
    (drawn,) = pdf_pages(image_to_pdf(grey, template.dpi))
    height, width = grey.shape
    # The page is drawn at the same DPI; PDFium may round its width up by one pixel.
    assert drawn.shape[0] == height
    assert width <= drawn.shape[1] <= width + 1
    difference = np.abs(drawn[:, :width].astype(np.int16) - grey.astype(np.int16))
    assert float(difference.mean()) < 3.0
    assert float(np.percentile(difference, 99)) < 40
