"""A sheet whose bubbles are nearly all filled goes to a person whole.

The thresholds set every mark against the sheet's empty bubbles. Where most bubbles are
filled there is no paper left to set them against, and every field read blank, sure of
it: on a public stress card ("fully bubbled"), fields with two to four marks and digit
columns filled from top to bottom came back empty, unflagged.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tests.omr import cards as C
from tests.omr import corpus
from workers.omr.cli import _load
from workers.omr.decode import decode_for
from workers.omr.reader import filled_throughout, read_gray, read_sheet
from workers.omr.render import render_sheet
from workers.omr.template import default_template


@pytest.mark.parametrize("photo", [False, True], ids=["scan", "photo"])
def test_a_sheet_with_nearly_every_bubble_filled_goes_to_review_whole(photo: bool) -> None:
    template = default_template()
    rng = random.Random("filled-throughout")
    page = np.asarray(render_sheet(template).astype(np.float32) / 255, np.float32)
    for f in (*template.id_fields, *template.questions):
        # Every bubble filled, but for one left empty in about half the fields.
        spared = rng.randrange(len(f.values)) if rng.random() < 0.5 else None
        for k, (x, y) in enumerate(f.centres):
            if k != spared:
                corpus._apply(page, x, y, corpus._mark_mask(rng, template.bubble_radius, "solid"), 0.85)
    data = corpus.photograph(page, random.Random("photo")) if photo else corpus.degrade(page, random.Random("scan"))[0]
    reading = read_sheet(data, template, photo=photo)
    assert filled_throughout(reading.levels)
    assert [q.label for q in reading.questions if not q.review] == []
    assert set(reading.student_id) == {"?"}


def test_a_blank_card_printed_as_dark_as_pencil_is_not_taken_for_one_filled_throughout(tmp_path: Path) -> None:
    # Black rings and bold digits inside every bubble: the darkest print a card has.
    card = C.CARDS["dark"]
    template, _, _ = _load(C.write_omrchecker(card, tmp_path))
    page = C.fill_card(card, random.Random("blank-dark"), blank=True).page
    data = corpus.degrade(page, random.Random("blank-dark-scan"), upside_down=False)[0]
    image, by = decode_for(data, template, photo=False)
    reading = read_gray(image, by)
    assert reading.levels.references == 0
    assert not filled_throughout(reading.levels)
