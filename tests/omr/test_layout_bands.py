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

from workers.omr import layout
from workers.omr.align import Alignment
from workers.omr.layout import fit_layout
from workers.omr.template import Template, load_template

W, H = 600, 700
RADIUS, CHOICE_GAP, ROW_GAP, ROWS = 9, 24, 26, 14
ORIGIN = (150, 200)
PAPER, INK = 252, 30


def _template(*, dx: int = 0, dy: int = 0, blocks: int = 1) -> Template:
    """The block of ``_page`` (moved by dx, dy), and ``blocks - 1`` more like it to its right."""
    data: dict[str, Any] = {
        "format": "academy-omr-template/1",
        "name": "banded-rows",
        "page": {"width": W, "height": H, "dpi": 100},
        "marker": {"size": 40, "inset": 10},
        "bubble": {"radius": RADIUS},
        "choices": ["1", "2", "3", "4", "5"],
        "question_blocks": [
            {
                "first": 1 + k * ROWS,
                "count": ROWS,
                "origin": [ORIGIN[0] + dx + 200 * k, ORIGIN[1] + dy],
                "choice_gap": CHOICE_GAP,
                "row_gap": ROW_GAP,
            }
            for k in range(blocks)
        ],
        "alignment": {"kind": "none"},
    }
    return load_template(data)


def _page(*, washed: bool = False, marks: bool = True) -> np.ndarray:
    """Rows shaded light and darker grey in turn, white bubbles with a thin grey outline
    on them (a bubble's gap to its neighbours is a third of its size), a mark in most rows.

    ``washed``: the card as a phone scanner app copies it, light greys whitened: the
    outlines are gone on the light rows and lighter than the shade on the darker ones,
    where each white bubble is a hole in the shade, and a letter is printed inside it."""
    shades, outline = ((250, 215), 235) if washed else ((236, 205), 170)
    page = np.full((H, W), PAPER, np.uint8)
    for i in range(ROWS):
        y = ORIGIN[1] + i * ROW_GAP
        shade = shades[i % 2]
        cv2.rectangle(page, (ORIGIN[0] - 40, y - ROW_GAP // 2), (ORIGIN[0] + 130, y + ROW_GAP // 2 - 1), shade, -1)
        for j in range(5):
            x = ORIGIN[0] + j * CHOICE_GAP
            cv2.circle(page, (x, y), RADIUS, 255, -1, cv2.LINE_AA)
            cv2.circle(page, (x, y), RADIUS, outline, 1, cv2.LINE_AA)
            if washed:
                cv2.putText(page, "ABCDE"[j], (x - 4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 200, 1, cv2.LINE_AA)
            if marks and j == (i * 3) % 5 and i % 4 != 3:
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


@pytest.mark.parametrize("marks", [False, True], ids=["blank", "filled"])
@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (4, -3)], ids=["on-the-print", "template-off-the-print"])
def test_white_bubbles_whose_outlines_washed_out_are_found_as_holes_in_the_shade(marks: bool, dx: int, dy: int) -> None:
    # No outline darker than its surroundings is left on any row, and a blank card has
    # no marks to centre on either: the block was read where the template put it, every
    # field sent to review. Each bubble is still paper in a darker band.
    fit = fit_layout(_page(washed=True, marks=marks), _template(dx=dx, dy=dy), Alignment(np.eye(3), 0, 1.0, INK, PAPER))
    (block,) = fit.blocks
    assert block.found
    assert abs(block.offset[0] + dx) <= 1.0
    assert abs(block.offset[1] + dy) <= 1.0


def _light_picture(*, strip: bool) -> np.ndarray:
    """A block's median bubble in darkness units (0 paper): a shade of 0.2, with either a
    white bubble in the middle or a paper strip a radius to its left, running top to
    bottom (the gap between two shaded columns)."""
    size = 27
    yy, xx = np.mgrid[:size, :size] - size // 2
    picture = np.full((size, size), 0.2, np.float32)
    if strip:
        picture[:, (xx[0] >= -7) & (xx[0] <= -4)] = 0.0
    else:
        picture[np.hypot(xx, yy) <= 5] = 0.0
    return np.asarray(cv2.GaussianBlur(picture, (0, 0), 0.7), np.float32)


@pytest.mark.parametrize("strip", [False, True], ids=["bubble", "strip"])
def test_only_a_round_light_hole_in_the_shade_is_taken_for_a_bubble(strip: bool) -> None:
    # Between columns shaded in turn, the paper strip is as light as a white bubble and
    # lies within the search's reach of it; on a public card of that kind the search took
    # it for the bubbles and placed the roll-number block a radius off. A bubble's
    # lightness falls a radius away in every direction; a strip's does not along it.
    look = layout._OutlineSearch(13, 13, (5.0, 5.0), (7.0, 7.0), (9.0, 9.0), (11.0, 11.0))
    found = layout._middle(-_light_picture(strip=strip), look, prior=layout.NEAR_PRIOR, isolated=True)
    if strip:
        assert found is None
    else:
        assert found is not None
        assert abs(found[0]) <= 0.5
        assert abs(found[1]) <= 0.5


@pytest.mark.parametrize(
    ("second", "alike"), [((1.0, -9.0), True), ((0.0, 10.0), False)], ids=["same-way-off", "half-a-row-apart"]
)
def test_blocks_lie_alike_only_where_they_lie_off_the_template_the_same_way(
    second: tuple[float, float], alike: bool
) -> None:
    # A template a half row off its print fits one block a row up and another a row
    # down, each near the edge of its search (11.7 px here): such a fit is not taken
    # for a turn the layout did not choose first (reader._first_fit).
    template = _template(blocks=2)
    names = [f.block_name for f in template.fields]
    first, other = dict.fromkeys(names)
    fits = (
        layout.BlockFit(first, (0.0, -10.0), (RADIUS, RADIUS), 0.3),
        layout.BlockFit(other, second, (RADIUS, RADIUS), 0.3),
    )
    assert layout.LayoutFit(template, fits).lies_alike(template) is alike
    unfound = (fits[0], layout.BlockFit(other, (0.0, -10.0), (RADIUS, RADIUS), 0.0, found=False))
    assert not layout.LayoutFit(template, unfound).lies_alike(template)


@pytest.mark.parametrize(
    ("dark", "taken"),
    [(None, True), ((0.5, -0.5, 0.2), True), ((-12.0, -6.4, 0.27), False)],
    ids=["nothing-dark-inside", "marks-centred-on-the-hole", "marks-half-a-bubble-away"],
)
def test_a_light_hole_places_a_block_only_where_its_marks_centre_on_it_or_nowhere(
    dark: tuple[float, float, float] | None, taken: bool
) -> None:
    # A block of true/false pairs, half its bubbles filled, on a phone photo whose faint
    # outlines showed no ring: the median bubble is half mark, and the paper between the
    # marks, half a bubble off, was the lightest hole in it. The block was placed there
    # and its marks read blank, sure of it. Its mean bubble's dark middle (the marks)
    # says where the bubbles are.
    look = layout._OutlineSearch(20, 12, (13.5, 12.2), (18.0, 9.9), (18.0, 9.9), (19.5, 10.5))
    hole = (0.0, 0.0, 0.11)
    assert layout._dark_elsewhere(hole, dark, look) is not taken
