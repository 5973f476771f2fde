"""A scan whose bubbles stay big enough at half size is decoded and read at half size
(workers/omr/decode.py, ``decode_for``): the same answers, and the resolution checks judge
the scan as it was made, not the half-size copy."""

from __future__ import annotations

import random
from dataclasses import replace

import cv2
import numpy as np

from tests.omr.corpus import clean, fill_sheet
from workers.omr.decode import decode_for, decode_image, reading_reduction
from workers.omr.reader import read_sheet
from workers.omr.template import AlignmentSpec, Template


def _scan(
    template: Template, seed: int, *, scale: float, quality: int = 90
) -> tuple[bytes, dict[str, tuple[str, ...]], str]:
    """A clean page put on a white scanner bed at ``scale`` of the template's DPI, as a JPEG."""
    page, truth = fill_sheet(template, random.Random(seed))
    h, w = page.shape[:2]
    out = (round((w + 120) * scale), round((h + 120) * scale))
    m = np.array([[scale, 0, 60 * scale], [0, scale, 60 * scale]], np.float64)
    img = cv2.warpAffine(np.clip(page * 255, 0, 255).astype(np.uint8), m, out, borderValue=255)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf), truth.answers, truth.student_id


def test_a_200_dpi_scan_of_large_bubbles_is_decoded_at_half_size_and_read_right(template: Template) -> None:
    data, answers, student_id = _scan(template, 7, scale=1.0)
    image, by = decode_for(data, template, photo=False)
    assert by.dpi == 2 * template.dpi
    full = decode_image(data)
    assert image.shape[:2] == ((full.shape[0] + 1) // 2, (full.shape[1] + 1) // 2)
    reading = read_sheet(data, template)
    assert reading.student_id == student_id
    assert {k: tuple(v) for k, v in reading.answers.items()} == answers


def test_a_scan_shrunk_to_170_dpi_read_at_half_size_is_not_refused_as_too_coarse(template: Template) -> None:
    # At half size the copy holds 85 template-dpi, under the reader's 90 dpi floor; the
    # scan itself has 170 and its bubbles are 14 px wide there: it must be read.
    data, answers, student_id = _scan(template, 8, scale=0.85)
    image, by = decode_for(data, template, photo=False)
    assert image.shape[1] < 0.6 * decode_image(data).shape[1]
    assert by.dpi == 2 * template.dpi
    reading = read_sheet(data, template)
    assert reading.student_id == student_id
    assert {k: tuple(v) for k, v in reading.answers.items()} == answers


def test_small_bubbles_photos_and_lossless_files_are_read_whole(template: Template) -> None:
    # Bubbles under the floor at half size: a 100 dpi scan of this sheet (17 px radius).
    assert reading_reduction(round(template.width * 0.55), round(template.height * 0.55), template, photo=False) == 1
    assert reading_reduction(template.width, template.height, template, photo=False) == 2
    # A photo shows the page at any size: always whole.
    assert reading_reduction(template.width * 2, template.height * 2, template, photo=True) == 1
    # So may a page found by its edges (a scan of the whole bed): whole too.
    by_edges = replace(template, alignment=AlignmentSpec("page"))
    assert reading_reduction(template.width, template.height, by_edges, photo=False) == 1
    page, _ = fill_sheet(template, random.Random(9))
    png = clean(page)
    image, by = decode_for(png, template, photo=False)
    assert image.shape[:2] == page.shape[:2]
    assert by is template


def test_two_templates_alike_but_for_their_marker_picture_each_read_with_its_own(template: Template) -> None:
    # Equality leaves the marker picture out: the half-size copy of one must not serve
    # the other (a card with L-shaped markers, then one of the same layout with squares).
    from workers.omr.template import MarkerImage

    data, _, _ = _scan(template, 7, scale=1.0)
    ell = replace(template, marker_image=MarkerImage(b"L-picture", 66, 66))
    square = replace(template, marker_image=MarkerImage(b"square-picture", 66, 66))
    assert ell == square  # what makes an equality-keyed cache hand one's copy to the other
    _, by_ell = decode_for(data, ell, photo=False)
    _, by_square = decode_for(data, square, photo=False)
    assert by_ell.dpi == by_square.dpi == 2 * template.dpi
    assert by_ell.marker_image is ell.marker_image
    assert by_square.marker_image is square.marker_image


def test_an_oval_bubble_counts_by_its_area_for_the_half_size_decision(template: Template) -> None:
    # Ovals 18 x 27 px on a page scanned at the template's size: 4.5 px of half width at
    # half size, under the floor, but 5.5 px of radius by area (the circle of the same
    # area), over it; 16 x 24 px ovals stay under it either way (4.9 px).
    def with_size(size: tuple[float, float]) -> Template:
        return replace(template, questions=tuple(replace(q, size=size) for q in template.questions))

    assert reading_reduction(template.width, template.height, with_size((18.0, 27.0)), photo=False) == 2
    assert reading_reduction(template.width, template.height, with_size((16.0, 24.0)), photo=False) == 1
