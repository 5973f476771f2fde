"""OMRChecker templates that crop the page before looking for its markers (``CropPage``
then ``CropOnMarkers``), as its phone-photo samples do: the sheet lies on a desk and
covers a part of the picture, so its markers are far from the picture's corners. The
markers are looked for in the page the paper's edges outline."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.omr import cards as C
from workers.omr.omrchecker import load_omrchecker_template
from workers.omr.reader import read_sheet


@pytest.mark.parametrize("name", ["grey", "circle"])
def test_a_card_photographed_small_on_a_desk_is_found_by_its_page_then_its_markers(name: str, tmp_path: Path) -> None:
    card = C.CARDS[name]
    template = load_omrchecker_template(
        C.write_omrchecker(card, tmp_path, crop="page+markers", values="digits")
    ).template
    assert template.alignment.options["cropPage"] == {"morphKernel": (10, 10)}
    for i in range(2):
        rng = random.Random(f"on desk:{name}:{i}")
        sheet = C.fill_card(card, rng)
        reading = read_sheet(C.on_desk(sheet.page, rng), template)
        flagged = set(reading.review)
        wrong = [q for q, want in sheet.truth.answers.items() if sorted(reading.answers[q]) != sorted(want)]
        assert not [q for q in wrong if q not in flagged], "silent misreads"
        assert len(wrong) <= 1
        assert reading.student_id == sheet.truth.student_id


def _bullseye(page: Any, centre: tuple[int, int], r: int) -> None:
    import cv2

    cv2.circle(page, centre, r, 0, max(2, r // 5), cv2.LINE_AA)
    cv2.circle(page, centre, r * 11 // 20, 0, max(2, r // 5), cv2.LINE_AA)
    cv2.circle(page, centre, r // 5, 0, -1, cv2.LINE_AA)


def test_a_flat_page_read_in_photo_mode_is_found_as_a_scan_where_a_look_alike_outscores_a_marker() -> None:
    # A page drawn from a PDF (no desk, no perspective) read in photo mode, with a copy of
    # the corner marker printed inside it (a key to the sheet) nearer the middle. A
    # photo's search takes the best match of each quarter on its own, here the copy, and
    # the four made no sheet (NO_SHEET_FOUND). Such a page's markers are then looked for
    # as on a scan, four corners of a parallelogram.
    import cv2
    import numpy as np

    from workers.omr.omrchecker import convert_template
    from workers.omr.reader import read_gray

    w, h, r = 1654, 2339, 26
    page = np.full((h, w), 255, np.uint8)
    corners = [(140, 90), (w - 140, 90), (w - 140, h - 160), (140, h - 160)]
    for c in [*corners, (1450, 1300)]:
        _bullseye(page, c, r)
    marked = {3: 1, 7: 2, 20: 0, 28: 3}
    for column, x0 in enumerate((250, 950)):
        for row in range(15):
            y = 580 + row * 97
            for k in range(4):
                x = x0 + 85 + k * 83
                cv2.circle(page, (x, y), 24, 0, 3, cv2.LINE_AA)
                cv2.putText(page, "ABCD"[k], (x - 9, y + 9), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2, cv2.LINE_AA)
                if marked.get(column * 15 + row) == k:
                    cv2.circle(page, (x, y), 20, 30, -1, cv2.LINE_AA)
    marker = np.full((2 * r + 12, 2 * r + 12), 255, np.uint8)
    _bullseye(marker, (r + 6, r + 6), r)
    frame_w, frame_h = corners[1][0] - corners[0][0], corners[3][1] - corners[0][1]
    blocks = {
        f"column{column}": {
            "fieldType": "QTYPE_MCQ4",
            "fieldLabels": [f"q{column * 15 + 1}..{column * 15 + 15}"],
            "origin": [x0 + 85 - 25 - corners[0][0], 580 - 25 - corners[0][1]],
            "bubblesGap": 83,
            "labelsGap": 97,
        }
        for column, x0 in enumerate((250, 950))
    }
    crop = {"name": "CropOnMarkers", "options": {"relativePath": "marker.png", "sheetToMarkerWidthRatio": 22}}
    data = {"pageDimensions": [frame_w, frame_h], "bubbleDimensions": [50, 50], "preProcessors": [crop]}
    template = convert_template({**data, "fieldBlocks": blocks}, marker=bytes(cv2.imencode(".png", marker)[1])).template
    want = {f"q{q + 1}": ["ABCD"[k]] for q, k in marked.items()}
    for photo in (False, True):
        reading = read_gray(page, template, photo=photo)
        assert {label: values for label, values in reading.answers.items() if values} == want
        assert reading.review == []
