"""OMRChecker templates that crop the page before looking for its markers (``CropPage``
then ``CropOnMarkers``), as its phone-photo samples do: the sheet lies on a desk and
covers a part of the picture, so its markers are far from the picture's corners. The
markers are looked for in the page the paper's edges outline."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Final

import pytest

from tests.omr import cards as C
from workers.omr.omrchecker import load_omrchecker_template
from workers.omr.reader import read_sheet
from workers.omr.template import Template


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


#: the ringed card below: its answers marked (question index -> choice index).
RINGED_MARKS: Final = {3: 1, 7: 2, 20: 0, 28: 3}


def _ringed_card(*, look_alike: bool) -> tuple[Any, Template, dict[str, list[str]]]:
    """A 200-dpi page with four bullseye corner markers (26 px radius) and 30 questions
    of ringed, lettered bubbles about the marker's size, its OMRChecker template and the
    answers marked. ``look_alike``: a copy of the marker printed inside the page too."""
    import cv2
    import numpy as np

    from workers.omr.omrchecker import convert_template

    w, h, r = 1654, 2339, 26
    page = np.full((h, w), 255, np.uint8)
    corners = [(140, 90), (w - 140, 90), (w - 140, h - 160), (140, h - 160)]
    for c in [*corners, *([(1450, 1300)] if look_alike else [])]:
        _bullseye(page, c, r)
    for column, x0 in enumerate((250, 950)):
        for row in range(15):
            y = 580 + row * 97
            for k in range(4):
                x = x0 + 85 + k * 83
                cv2.circle(page, (x, y), 24, 0, 3, cv2.LINE_AA)
                cv2.putText(page, "ABCD"[k], (x - 9, y + 9), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2, cv2.LINE_AA)
                if RINGED_MARKS.get(column * 15 + row) == k:
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
    return page, template, {f"q{q + 1}": ["ABCD"[k]] for q, k in RINGED_MARKS.items()}


def test_a_flat_page_read_in_photo_mode_is_found_as_a_scan_where_a_look_alike_outscores_a_marker() -> None:
    # A page drawn from a PDF (no desk, no perspective) read in photo mode, with a copy of
    # the corner marker printed inside it (a key to the sheet) nearer the middle. A
    # photo's search takes the best match of each quarter on its own, here the copy, and
    # the four made no sheet (NO_SHEET_FOUND). Such a page's markers are then looked for
    # as on a scan, four corners of a parallelogram.
    from workers.omr.reader import read_gray

    page, template, want = _ringed_card(look_alike=True)
    for photo in (False, True):
        reading = read_gray(page, template, photo=photo)
        assert {label: values for label, values in reading.answers.items() if values} == want
        assert reading.review == []


def test_a_photo_taken_at_a_slant_finds_ringed_markers_of_two_sizes() -> None:
    # The card photographed from below its bottom edge: its top markers come out a
    # fifth smaller than its bottom ones. A bullseye matches at one size only, and no
    # one size of the photo search's steps showed all four (NO_SHEET_FOUND); each corner
    # may now match a step off the others.
    import cv2
    import numpy as np

    from workers.omr.reader import read_gray

    page, template, want = _ringed_card(look_alike=False)
    h, w = page.shape
    src = np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float32)
    dst = np.array([(430, 300), (1970, 300), (2150, 2500), (250, 2500)], np.float32)
    desk = np.full((2800, 2400), 235, np.uint8)
    photo = cv2.warpPerspective(
        page, cv2.getPerspectiveTransform(src, dst), (2400, 2800), dst=desk, borderMode=cv2.BORDER_TRANSPARENT
    )
    reading = read_gray(np.asarray(photo, np.uint8), template, photo=True)
    assert {label: values for label, values in reading.answers.items() if values} == want
    assert reading.review == []


def test_a_marker_is_made_exact_where_the_search_found_it_not_on_the_desk_corner_beside_it(tmp_path: Path) -> None:
    # A 200-question card photographed far off and tilted on a dark desk: its top right
    # marker lies about its own size from the page's corner. The search found the
    # marker; its full-resolution match then took the desk's dark corner round the
    # page's for a hollow square, and the sheet was read through a frame turned by two
    # degrees: 148 of 200 answers wrong, 31 of them unflagged.
    card = C.CARDS["q200"]
    sheet = C.crossed_scans(card, 1, "x1", photo=True)[0]
    template = load_omrchecker_template(C.write_omrchecker(card, tmp_path / "omrchecker")).template
    reading = read_sheet(sheet.data, template, photo=True)
    letter = dict(zip(C.MCQ5_LETTERS, C.CHOICES, strict=True))
    wrong = [
        label
        for label, values in reading.answers.items()
        if sorted(letter[v] for v in values) != sorted(sheet.truth.answers[label])
    ]
    # Only the changed answers (a filled bubble struck out beside the one chosen) read
    # otherwise than the truth, and every one of them goes to a person.
    assert {sheet.truth.kinds[label] for label in wrong} <= {"crossed"}
    assert set(wrong) <= set(reading.review)


def _reads_as_filled(sheet: C.CardScan, template: Template) -> None:
    reading = read_sheet(sheet.data, template, photo=True)
    letter = dict(zip(C.MCQ5_LETTERS, C.CHOICES, strict=True))
    assert {label: sorted(letter[v] for v in values) for label, values in reading.answers.items()} == {
        label: sorted(want) for label, want in sheet.truth.answers.items()
    }
    assert reading.student_id == sheet.truth.student_id


@pytest.mark.parametrize(("name", "index"), [("grey", 2), ("circle", 0)])
def test_a_photo_whose_filled_bubbles_match_the_marker_picture_best_is_read_through_its_markers(
    name: str, index: int, tmp_path: Path
) -> None:
    # Filled bubbles about the size of a small marker match its picture as well as the
    # markers do at their own size. On the grey card's photo four of them scored 1.4 %
    # better than the small solid squares, and the sheet was refused as another card; on
    # the round-marker card's, two quadrants' best match was the same filled bubble.
    card = C.CARDS[name]
    sheet = list(C.make_cards(card, index + 1, "x5", how="photo"))[index]
    _reads_as_filled(sheet, load_omrchecker_template(C.write_omrchecker(card, tmp_path / "omrchecker")).template)


def test_a_page_photographed_off_centre_is_read_in_its_own_corners_through_boxes_half_its_bubbles(
    tmp_path: Path,
) -> None:
    # The page lies in the top of the picture, three of its markers in its top half; the
    # marker search takes four knots of the desk's pattern that make a sheet, the
    # layout refuses them, and both looks (the template's size, and the wide one its
    # small boxes need) are taken again with the markers looked for in the page's
    # corners.
    card = C.CARDS["mixed"]
    sheet = list(C.make_cards(card, 2, "x1", how="photo"))[1]
    path = C.write_omrchecker(card, tmp_path / "omrchecker", box_share=0.5)
    _reads_as_filled(sheet, load_omrchecker_template(path).template)
