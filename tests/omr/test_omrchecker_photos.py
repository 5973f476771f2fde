"""OMRChecker templates that crop the page before looking for its markers (``CropPage``
then ``CropOnMarkers``), as its phone-photo samples do: the sheet lies on a desk and
covers a part of the picture, so its markers are far from the picture's corners. The
markers are looked for in the page the paper's edges outline."""

from __future__ import annotations

import random
from pathlib import Path

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
