"""A card that prints no bubble outlines, only each bubble's value where the bubble is (a
digit to blacken), is the template's card: the check that the template's bubbles are
printed on the sheet counts print inside the bubble's place, not only an outline. With
no outline to fit its blocks to, each block is placed by what is printed and marked inside
its bubbles (workers/omr/layout.py)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from tests.omr import cards as C
from workers.omr.omrchecker import load_omrchecker_template
from workers.omr.reader import read_sheet


def test_a_card_printing_only_the_digits_is_read_not_refused_as_another_template(tmp_path: Path) -> None:
    card = replace(C.grey_card(), outline=(255, 255, 255), digit=(70, 70, 70))
    sheet = C.fill_card(card, random.Random("digits only"))
    scan = C.scan_cropped(sheet.page, random.Random("digits only"))
    template = load_omrchecker_template(C.write_omrchecker(card, tmp_path, values="digits")).template
    reading = read_sheet(scan, template)
    flagged = set(reading.review)
    for label, want in sheet.truth.answers.items():
        assert label in flagged or sorted(reading.answers[label]) == sorted(want), label
    assert reading.student_id in (sheet.truth.student_id, "?" * len(sheet.truth.student_id)) or "student_id" in flagged


def test_a_card_printing_only_the_digits_is_placed_by_them_and_read_unflagged(tmp_path: Path) -> None:
    # The template sits 9 px (0.3 of a bubble) low: the block is found by its digits and
    # marks, so its answers are read, not sent to a person wholesale.
    card = replace(C.grey_card(), outline=(255, 255, 255), digit=(70, 70, 70))
    template = load_omrchecker_template(C.write_omrchecker(card, tmp_path, values="digits", off_by=(0, 9))).template
    for seed in ("digits only", "placed by its digits"):
        sheet = C.fill_card(card, random.Random(seed))
        reading = read_sheet(C.scan_cropped(sheet.page, random.Random(seed)), template)
        questions = [label for label in reading.review if label != "student_id"]
        assert len(questions) <= 3
        for label, want in sheet.truth.answers.items():
            assert sorted(reading.answers[label]) == sorted(want), label
