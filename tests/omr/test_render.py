from __future__ import annotations

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

from workers.omr.reader import read_sheet
from workers.omr.render import render_sheet, sheet_pdf, sheet_png
from workers.omr.template import Template


def test_rendered_sheet_has_page_size_and_solid_corner_markers(template: Template) -> None:
    img = render_sheet(template)
    assert img.shape == (template.height, template.width)
    assert img.dtype == np.uint8
    for i, (x, y) in enumerate(template.marker_centres):
        edge = round(template.marker_size * 0.4)
        assert img[round(y) + edge, round(x)] == 0  # inside the frame: ink
        assert img[round(y), round(x)] == (255 if i == 0 else 0)  # only the first is hollow


def test_png_output_decodes_to_the_rendered_sheet(template: Template) -> None:
    decoded = cv2.imdecode(np.frombuffer(sheet_png(template), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert decoded is not None
    assert np.array_equal(decoded, render_sheet(template))


def test_pdf_output_is_one_a4_page_that_pdfium_opens(template: Template) -> None:
    doc = pdfium.PdfDocument(sheet_pdf(template))
    try:
        assert len(doc) == 1
        w, h = doc[0].get_size()
        assert w == pytest.approx(595.3, abs=1)  # A4 in points
        assert h == pytest.approx(842.0, abs=1)
    finally:
        doc.close()


def test_blank_rendered_sheet_reads_all_blank_without_review(template: Template) -> None:
    reading = read_sheet(sheet_png(template), template)
    assert all(v == [] for v in reading.answers.values())
    assert [q.label for q in reading.questions if q.review] == []
    assert reading.student_id == "????????"  # no ID marked: a person must fill it in
    assert reading.review == ["student_id"]
