"""The vendor-style card generator (tests/omr/cards.py) agrees with the templates it writes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tests.omr import cards as C
from workers.omr.omrchecker import load_omrchecker_template
from workers.omr.template import load_template


@pytest.mark.parametrize("name", sorted(C.CARDS))
def test_the_project_template_puts_every_bubble_where_the_card_prints_it(name: str) -> None:
    card = C.CARDS[name]
    template = load_template(C.project_template(card))
    printed = {label: row for b in card.blocks for label, row in zip(b.labels, b.centres(), strict=True)}
    sizes = {label: b.size for b in card.blocks for label in b.labels}
    id_labels = list(card.id_block.labels)
    for i, f in enumerate(template.id_fields):
        assert f.centres == tuple(printed[id_labels[i]])
        assert template.bubble_size(f) == sizes[id_labels[i]]
    for f in template.questions:
        assert f.centres == tuple(printed[f"q{f.label}"])
        assert template.bubble_size(f) == sizes[f"q{f.label}"]


@pytest.mark.parametrize("name", ["red", "circle", "corner", "mixed", "q200"])
def test_the_omrchecker_template_puts_every_bubble_where_the_card_prints_it(name: str, tmp_path: Path) -> None:
    card = C.CARDS[name]
    template = load_omrchecker_template(C.write_omrchecker(card, tmp_path)).template
    # The converted frame runs between the marker centres, moved by a margin: the first
    # marker's centre gives the shift from page pixels to template pixels.
    shift = np.subtract(template.marker_centres[0], card.marker_centres[0])
    printed = {label: row for b in card.blocks for label, row in zip(b.labels, b.centres(), strict=True)}
    assert {f.label for f in template.fields} == set(printed)
    for f in template.fields:
        assert np.allclose(np.subtract(f.centres, shift), printed[f.label], atol=0.51), f.label


@pytest.mark.parametrize("name", ["red", "grey", "circle", "corner", "q200"])
def test_the_four_corner_markers_are_identical(name: str) -> None:
    card = C.CARDS[name]
    page = C.draw_card(card)
    s = card.marker_size
    crops = [
        page[round(y - s / 2) : round(y + s / 2), round(x - s / 2) : round(x + s / 2)] for x, y in card.marker_centres
    ]
    assert all(np.array_equal(crops[0], c) for c in crops[1:])
    assert crops[0].min() == 0  # printed in black


def test_a_card_without_markers_prints_none_and_a_timing_card_prints_its_track() -> None:
    bare = C.draw_card(C.CARDS["bare"])
    for x, y in C.CARDS["bare"].marker_centres:
        assert bare[round(y), round(x)].min() == 255
    timing = C.CARDS["timing"]
    page = C.draw_card(timing)
    assert len(timing.timing_marks) == 25  # 10 student-number rows and 15 question rows
    for x, y, _, _ in timing.timing_marks:
        assert page[round(y), round(x)].max() == 0
    tracks = C.timing_tracks(timing)
    assert sum(t["count"] for t in tracks) == 25


def test_a_red_card_prints_its_bubbles_in_dropout_ink_and_its_legend_in_black() -> None:
    card = C.CARDS["red"]
    page = C.draw_card(card).astype(int)
    x, y = card.question_blocks[0].centres()[0][0]
    w, _ = card.question_blocks[0].size
    outline = page[round(y), round(x - w / 2)]
    # Pink: bright in the red channel (where it drops out), darker in green.
    assert outline[2] > 200
    assert outline[1] < 200
    x0, y0, x1, y1 = card.legend_box
    legend = page[y0:y1, x0:x1]
    assert (legend.max(axis=2) < 60).sum() > 300  # the filled example and the wrong ways, in black


def test_the_truth_covers_every_question_and_a_replay_gives_the_same_sheet() -> None:
    card = C.CARDS["q200"]
    one = C.fill_card(card, random.Random("same"))
    two = C.fill_card(card, random.Random("same"))
    assert len(one.truth.answers) == 200
    assert len(one.truth.student_id) == 8
    assert np.array_equal(one.page, two.page)
