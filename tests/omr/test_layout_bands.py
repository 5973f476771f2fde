"""Rows shaded in turn: many cards print a band behind every other row to guide the eye,
with the bubbles printed white on the bands and on the rows between them.

A bubble on a band and one between bands look unlike: each outline stands out against
its own row's shade, and in the block's mean bubble against neither. The page is drawn
here straight in the template frame (no scan), so what is tested is the layout's fit.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from workers.omr.align import Alignment
from workers.omr.layout import fit_layout
from workers.omr.template import Template, load_template

W, H = 600, 700
RADIUS, CHOICE_GAP, ROW_GAP, ROWS = 9, 24, 26, 14
ORIGIN = (150, 200)
PAPER, INK = 252, 30


def _template(*, dx: int = 0, dy: int = 0) -> Template:
    data: dict[str, Any] = {
        "format": "academy-omr-template/1",
        "name": "banded-rows",
        "page": {"width": W, "height": H, "dpi": 100},
        "marker": {"size": 40, "inset": 10},
        "bubble": {"radius": RADIUS},
        "choices": ["1", "2", "3", "4", "5"],
        "question_blocks": [
            {
                "first": 1,
                "count": ROWS,
                "origin": [ORIGIN[0] + dx, ORIGIN[1] + dy],
                "choice_gap": CHOICE_GAP,
                "row_gap": ROW_GAP,
            }
        ],
        "alignment": {"kind": "none"},
    }
    return load_template(data)


def _page() -> np.ndarray:
    """Rows shaded light and darker grey in turn, white bubbles with a thin grey outline
    on them (a bubble's gap to its neighbours is a third of its size), a mark in most rows."""
    page = np.full((H, W), PAPER, np.uint8)
    for i in range(ROWS):
        y = ORIGIN[1] + i * ROW_GAP
        shade = (236, 205)[i % 2]
        cv2.rectangle(page, (ORIGIN[0] - 40, y - ROW_GAP // 2), (ORIGIN[0] + 130, y + ROW_GAP // 2 - 1), shade, -1)
        for j in range(5):
            x = ORIGIN[0] + j * CHOICE_GAP
            cv2.circle(page, (x, y), RADIUS, 255, -1, cv2.LINE_AA)
            cv2.circle(page, (x, y), RADIUS, 170, 1, cv2.LINE_AA)
            if j == (i * 3) % 5 and i % 4 != 3:
                cv2.circle(page, (x, y), RADIUS - 2, 40, -1, cv2.LINE_AA)
    return np.asarray(cv2.GaussianBlur(page, (0, 0), 0.7), np.uint8)


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (4, -3)], ids=["on-the-print", "template-off-the-print"])
def test_a_block_whose_rows_are_shaded_in_turn_is_found_on_its_print(dx: int, dy: int) -> None:
    # The block's mean bubble averages a bubble on the darker band with one on the light
    # row: no outline stands out in it, and the block was read where the template put it,
    # every field sent to review. Every other row on its own shows the outline.
    fit = fit_layout(_page(), _template(dx=dx, dy=dy), Alignment(np.eye(3), 0, 1.0, INK, PAPER))
    (block,) = fit.blocks
    assert block.found
    assert fit.unfound == frozenset()
    # Where the print lies relative to the template: back by the template's move.
    assert abs(block.offset[0] + dx) <= 1.0
    assert abs(block.offset[1] + dy) <= 1.0
