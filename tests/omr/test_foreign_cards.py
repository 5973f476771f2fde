"""The reader on cards this project did not print: dropout-red print, four identical corner
markers, ellipses with digits printed in them, a legend, a hand-written template a little
off the print, a fold across a row.

The cards are drawn here with cv2 (a vendor's card in miniature: 150 dpi, two question
blocks, a 4-digit ID), so every case states exactly what it changes.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import cv2
import numpy as np
import pytest

from workers.omr.aligners import aligner_get, aligner_register
from workers.omr.errors import TEMPLATE_INVALID, TEMPLATE_MISMATCH, OmrError
from workers.omr.reader import read_gray
from workers.omr.template import TemplateError, load_template

PINK = (148, 104, 236)  # BGR of a dropout-red print
PENCIL = (70, 72, 75)

CARD: dict[str, Any] = {
    "format": "academy-omr-template/1",
    "name": "vendor_card",
    "page": {"width": 1240, "height": 1754, "dpi": 150},
    "marker": {"size": 50, "inset": 45},
    "bubble": {"width": 20, "height": 36},
    "student_id": {
        "digits": 4,
        "origin": [220, 330],
        "column_gap": 40,
        "row_gap": 44,
        "bubble": {"width": 18, "height": 28},
    },
    "choices": ["1", "2", "3", "4", "5"],
    "question_blocks": [
        {"first": 1, "count": 10, "origin": [260, 900], "choice_gap": 55, "row_gap": 62},
        {"first": 11, "count": 10, "origin": [760, 900], "choice_gap": 55, "row_gap": 62},
    ],
}


def _card(
    template: dict[str, Any],
    answers: dict[str, str],
    student_id: str,
    *,
    ink: tuple[int, int, int] = PINK,
    legend: bool = True,
    fold_at: float | None = None,
    seed: int = 1,
) -> np.ndarray:
    """The blank card printed in ``ink`` and filled in with pencil, scanned (a slight turn,
    blur, noise, JPEG), as a BGR image."""
    tpl = load_template(template)
    page = np.full((tpl.height, tpl.width, 3), 250, np.uint8)
    s = tpl.marker_size
    for cx, cy in tpl.marker_centres:  # four identical markers: a black square, a white one inside
        x0, y0 = round(cx - s / 2), round(cy - s / 2)
        cv2.rectangle(page, (x0, y0), (x0 + s - 1, y0 + s - 1), (0, 0, 0), -1)
        cv2.rectangle(page, (x0 + 15, y0 + 15), (x0 + s - 16, y0 + s - 16), (250, 250, 250), -1)
    for f in tpl.fields:
        w, h = tpl.bubble_size(f)
        for value, (x, y) in zip(f.values, f.centres, strict=True):
            cv2.ellipse(page, (round(x), round(y)), (round(w / 2), round(h / 2)), 0, 0, 360, ink, 2, cv2.LINE_AA)
            cv2.putText(page, value, (round(x - 5), round(y + 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, ink, 1, cv2.LINE_AA)
    for q in tpl.questions:  # rules between the rows and the question numbers
        x, y = q.centres[0]
        cv2.line(page, (round(x - 90), round(y + 31)), (round(x + 260), round(y + 31)), ink, 1)
        cv2.putText(page, q.label, (round(x - 80), round(y + 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, ink, 2)
    if legend:  # how to mark: a filled example and wrong ways, away from the fields
        for i in range(5):
            centre = (700 + 45 * i, 560)
            cv2.ellipse(page, centre, (10, 18), 0, 0, 360, ink, 2, cv2.LINE_AA)
        cv2.ellipse(page, (700, 560), (9, 17), 0, 0, 360, (40, 40, 40), -1)
        cv2.line(page, (740, 550), (750, 570), (40, 40, 40), 2)
    rng = random.Random(seed)

    def mark(x: float, y: float, w: float, h: float) -> None:
        axes = (round(w / 2 * rng.uniform(0.8, 1.05)), round(h / 2 * rng.uniform(0.8, 1.05)))
        cv2.ellipse(page, (round(x), round(y)), axes, rng.uniform(-10, 10), 0, 360, PENCIL, -1, cv2.LINE_AA)

    for f in tpl.questions:
        w, h = tpl.bubble_size(f)
        for value in answers.get(f.label, ""):
            mark(*f.centres[f.values.index(value)], w, h)
    for f, digit in zip(tpl.id_fields, student_id, strict=True):
        w, h = tpl.bubble_size(f)
        mark(*f.centres[int(digit)], w, h)
    if fold_at is not None:  # a fold's crease: a dark line across the whole sheet
        cv2.line(page, (0, round(fold_at)), (tpl.width, round(fold_at)), (150, 150, 150), 5, cv2.LINE_AA)
    turn = cv2.getRotationMatrix2D((tpl.width / 2, tpl.height / 2), 0.8, 1.0)
    scan = cv2.warpAffine(page, turn, (tpl.width, tpl.height), borderValue=(250, 250, 250))
    scan = np.asarray(cv2.GaussianBlur(scan, (3, 3), 0.8), np.uint8)
    noise = np.random.default_rng(seed).normal(0, 3, scan.shape)
    noisy = scan.astype(np.int16) + np.asarray(noise, np.float64).astype(np.int16)
    ok, buf = cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)


def _answers(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    out = {str(q): rng.choice("12345") for q in range(1, 21)}
    out["4"] = ""  # blank
    out["13"] = "25"  # two marks
    return out


def _expected(answers: dict[str, str]) -> dict[str, list[str]]:
    return {q: sorted(v) for q, v in answers.items()}


def _read(image: np.ndarray, template: dict[str, Any]) -> tuple[dict[str, list[str]], str, int, list[str]]:
    reading = read_gray(image, load_template(template))
    return reading.answers, reading.student_id, reading.rotation, reading.review


def test_a_card_printed_in_dropout_red_reads_its_pencil_marks() -> None:
    answers = _answers(3)
    got, sid, rotation, review = _read(_card(CARD, answers, "2071"), CARD)
    assert got == _expected(answers)
    assert sid == "2071"
    assert rotation == 0
    assert review == []


def test_the_same_card_in_greyscale_reads_its_marks_past_the_printed_digits() -> None:
    # No colour to drop the print with: the digits printed in every bubble darken them all
    # alike, and the sheet's own empty level takes that off.
    answers = _answers(4)
    grey = cv2.cvtColor(_card(CARD, answers, "5938", seed=4), cv2.COLOR_BGR2GRAY)
    got, sid, _, _ = _read(grey, CARD)
    assert got == _expected(answers)
    assert sid == "5938"


def test_an_upside_down_scan_of_four_identical_markers_reads_right_way_up() -> None:
    answers = _answers(5)
    card = cv2.rotate(_card(CARD, answers, "4410", seed=5), cv2.ROTATE_180)
    got, sid, rotation, _ = _read(card, CARD)
    assert rotation == 180
    assert got == _expected(answers)
    assert sid == "4410"


@pytest.mark.parametrize("shift", [(0, 12), (0, -12), (7, 0), (-6, 10)])
def test_a_template_a_third_of_a_bubble_off_the_print_still_reads_the_right_row(shift: tuple[int, int]) -> None:
    answers = _answers(6)
    card = _card(CARD, answers, "1357", seed=6)
    off = copy.deepcopy(CARD)  # the same card as a hand-written template would put it
    for block in [off["student_id"], *off["question_blocks"]]:
        block["origin"] = [block["origin"][0] + shift[0], block["origin"][1] + shift[1]]
    got, sid, _, _ = _read(card, off)
    assert got == _expected(answers)
    assert sid == "1357"


def test_a_template_that_says_circles_still_finds_the_printed_ellipses() -> None:
    # The template gives one radius; the card prints ellipses taller than that circle.
    answers = _answers(7)
    card = _card(CARD, answers, "8642", seed=7)
    circles = copy.deepcopy(CARD)
    circles["bubble"] = {"radius": 10}
    del circles["student_id"]["bubble"]
    got, sid, _, _ = _read(card, circles)
    assert got == _expected(answers)
    assert sid == "8642"


def test_a_fold_across_a_row_of_bubbles_is_not_read_as_marks() -> None:
    tpl = load_template(CARD)
    row_y = tpl.questions[5].centres[0][1]  # question 6's row, through its bubbles' middles
    answers = _answers(8)
    answers["6"] = ""
    got, _, _, review = _read(_card(CARD, answers, "1111", seed=8, fold_at=row_y + 4), CARD)
    assert got["6"] == []
    assert got == _expected(answers)
    assert "6" not in review


def test_a_card_of_another_layout_is_template_mismatch() -> None:
    # The same markers and page, but this template's second block sits where the card has
    # nothing printed.
    card = _card(CARD, _answers(9), "0000", seed=9)
    other = copy.deepcopy(CARD)
    other["question_blocks"][1]["origin"] = [760, 400]
    other["question_blocks"][1]["count"] = 6
    with pytest.raises(OmrError) as info:
        read_gray(card, load_template(other))
    assert info.value.code == TEMPLATE_MISMATCH


def test_a_card_with_more_questions_than_the_template_is_template_mismatch() -> None:
    # Every bubble of the shorter template is printed on the card; the card's extra rows
    # and its second column continue the template's grid.
    card = _card(CARD, _answers(10), "0000", seed=10, legend=False)
    short = copy.deepcopy(CARD)
    short["question_blocks"] = [{"first": 1, "count": 5, "origin": [260, 900], "choice_gap": 55, "row_gap": 62}]
    with pytest.raises(OmrError) as info:
        read_gray(card, load_template(short))
    assert info.value.code == TEMPLATE_MISMATCH


def test_template_says_bubble_size_per_block_and_the_alignment_kind() -> None:
    data = copy.deepcopy(CARD)
    data["question_blocks"][1]["bubble"] = {"width": 30, "height": 20, "shape": "rectangle"}
    data["alignment"] = {"kind": "page", "morphKernel": [10, 10]}
    tpl = load_template(data)
    assert tpl.bubble_size(tpl.questions[0]) == (20, 36)
    assert tpl.bubble_size(tpl.questions[10]) == (30, 20)
    assert tpl.questions[10].shape == "rectangle"
    assert tpl.bubble_size(tpl.id_fields[0]) == (18, 28)
    assert tpl.alignment.kind == "page"
    assert tpl.alignment.options == {"morphKernel": [10, 10]}
    assert tpl.bubble_radius == 9  # the smallest half side, for size-blind measurements
    assert load_template(CARD).alignment.kind == "markers"


@pytest.mark.parametrize(
    "change",
    [
        {"alignment": {"kind": "laser"}},
        {"bubble": {"width": 20}},
        {"bubble": {"width": 20, "height": 36, "shape": "star"}},
        {"bubble": {"width": 10, "height": 60}},
    ],
)
def test_a_bad_bubble_or_alignment_is_template_invalid(change: dict[str, Any]) -> None:
    data = {**copy.deepcopy(CARD), **change}
    with pytest.raises(TemplateError) as info:
        load_template(data)
    assert info.value.code == TEMPLATE_INVALID


def test_the_aligner_registry_dispatches_on_the_template_kind() -> None:
    calls: list[str] = []

    @aligner_register("test-kind")
    def align_test(gray: np.ndarray, template: Any, *, photo: bool) -> list[Any]:
        calls.append(template.name)
        raise OmrError("NO_SHEET_FOUND", "the test aligner finds nothing")

    data = {**copy.deepcopy(CARD), "alignment": {"kind": "markers"}}
    tpl = load_template(data)
    assert aligner_get("test-kind") is align_test
    object.__setattr__(tpl.alignment, "kind", "test-kind")
    with pytest.raises(OmrError) as info:
        read_gray(np.full((400, 300), 255, np.uint8), tpl)
    assert info.value.code == "NO_SHEET_FOUND"
    assert calls == ["vendor_card"]
    with pytest.raises(OmrError) as unknown:
        aligner_get("no-such-kind")
    assert unknown.value.code == TEMPLATE_INVALID
