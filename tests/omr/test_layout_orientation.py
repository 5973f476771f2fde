"""Which way up: the turns' layout scores, with the blocks fitted the largest first and a
clear winner over most of the bubbles taken without fitting the rest.

The block fit is replaced by a table of scores (turn, block), so each test states exactly
what the turns look like; test_bad_input, test_foreign_cards and test_accuracy read real
sheets of four identical markers scanned upside down and sideways.
"""

from __future__ import annotations

from typing import Any

import pytest

import workers.omr.layout as layout
from workers.omr.layout import DECISIVE, TIE, BlockFit, pick_orientation
from workers.omr.template import default_template

TEMPLATE = default_template()  # student_id (80 bubbles), questions[0] and [1] (100 each)


def _pick(monkeypatch: pytest.MonkeyPatch, scores: dict[str, list[float]]) -> tuple[int, list[tuple[int, str]]]:
    """The turn picked among two, given each block's score per turn, and the fits made."""
    turns = [object(), object()]
    fitted: list[tuple[int, str]] = []

    def fit(gray: Any, template: Any, alignment: Any, block: Any, *_: Any) -> BlockFit:
        turn = turns.index(alignment)
        fitted.append((turn, block.name))
        return BlockFit(block.name, (0.0, 0.0), (1.0, 1.0), scores[block.name][turn])

    monkeypatch.setattr(layout, "_fit_block", fit)
    got = pick_orientation(None, TEMPLATE, turns)  # type: ignore[arg-type]
    return turns.index(got), fitted


def test_a_turn_clearly_best_over_the_largest_blocks_is_taken_without_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    # A sheet scanned upside down: the first turn puts no block on its print.
    picked, fitted = _pick(
        monkeypatch, {"questions[0]": [0.0, 0.2], "questions[1]": [0.0, 0.2], "student_id": [0.0, 0.2]}
    )
    assert picked == 1
    # The two question blocks hold 200 of the 280 bubbles; the ID block is not fitted.
    assert sorted(fitted) == [(0, "questions[0]"), (0, "questions[1]"), (1, "questions[0]"), (1, "questions[1]")]


def test_a_layout_alike_both_ways_is_fitted_whole_and_reads_the_first_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    half = TIE / 2
    picked, fitted = _pick(
        monkeypatch,
        {"questions[0]": [0.2, 0.2 + half], "questions[1]": [0.2, 0.2 + half], "student_id": [0.2, 0.2 + half]},
    )
    assert picked == 0
    assert len(fitted) == 6


def test_a_lead_short_of_decisive_leaves_the_choice_to_every_block(monkeypatch: pytest.MonkeyPatch) -> None:
    # The question blocks fit the first turn a little better, the ID block the second
    # much better: over the whole layout the second wins.
    lead = DECISIVE / 2
    picked, fitted = _pick(
        monkeypatch, {"questions[0]": [0.2, 0.2 - lead], "questions[1]": [0.2, 0.2 - lead], "student_id": [0.0, 0.3]}
    )
    assert picked == 1
    assert len(fitted) == 6


def test_one_blocks_outline_under_a_turn_decides_nothing_early(monkeypatch: pytest.MonkeyPatch) -> None:
    # Boxes far from the printed size: the coarse look finds hardly any block's outline
    # under either turn. The wrong turn lands one large block on some print; its lead
    # over half the bubbles looked clear, and a public phone photo was read upside down
    # (refused, a field showing no print). Most of the blocks seen must show their
    # outline for an early decision: here the rest are fitted, and the right turn wins.
    picked, fitted = _pick(
        monkeypatch, {"questions[0]": [0.0, 0.3], "questions[1]": [0.0, 0.0], "student_id": [0.5, 0.0]}
    )
    assert picked == 0
    assert "student_id" in {name for _, name in fitted}
