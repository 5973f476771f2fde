"""The template's blocks fitted to the print: a hand-written bubble gap a few per cent off
the print (on dark and on light print, with the template moved off it too), a block
with no print where the template puts it, a block placed by its marks on rows that
drift off the template, blocks of four questions placed by their marks, and blocks of
one row each.

The card is the vendor card of test_foreign_cards (drawn here with cv2), read through a
template that differs from its print in exactly the way each test names; the last two
draw their own page straight in the template frame.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.omr.test_foreign_cards import CARD, _answers, _card, _expected, _read

if TYPE_CHECKING:
    from workers.omr.template import Template


@pytest.mark.parametrize("stretch", [1.07, 0.94])
def test_a_block_printed_wider_or_narrower_than_its_template_still_reads_each_column(stretch: float) -> None:
    # The template's bubble gap is the printed one divided by ``stretch``: its last column
    # sits most of a bubble off the print (55 px print, 51.4 px template: 14 px at column
    # five, 0.7 of a bubble), so the block's print must be fitted in scale, not only moved.
    answers = _answers(8)
    card = _card(CARD, answers, "3141", seed=8)
    narrow = copy.deepcopy(CARD)
    for block in narrow["question_blocks"]:
        block["choice_gap"] = block["choice_gap"] / stretch
    got, sid, _, review = _read(card, narrow)
    assert got == _expected(answers)
    assert sid == "3141"
    assert set(review) <= {"13"}  # the two-mark answer may be looked at; nothing else


@pytest.mark.parametrize(("stretch", "left", "high"), [(1.03, 6, 10), (1.05, 0, 0)])
def test_light_print_wider_than_its_template_and_off_it_is_found_at_its_outer_columns(
    stretch: float, left: int, high: int
) -> None:
    # Light-grey print, a choice gap a few per cent short of it and the whole template
    # moved up and left: the outer columns' bubbles lie more than their 10 px half width
    # across from the template's, so a profile down the template's place misses their
    # top and bottom; they are searched again from a half width either side.
    answers = _answers(8)
    card = _card(CARD, answers, "3141", ink=(225, 225, 225), seed=8)
    off = copy.deepcopy(CARD)
    for block in [*off["question_blocks"], off["student_id"]]:
        block["origin"][0] -= left
        block["origin"][1] -= high
    for block in off["question_blocks"]:
        block["choice_gap"] = block["choice_gap"] / stretch
    got, sid, _, review = _read(card, off)
    assert got == _expected(answers)
    assert sid == "3141"
    assert set(review) <= {"13"}


def test_a_block_with_no_print_where_the_template_puts_it_is_flagged_not_read_blindly() -> None:
    # The template lists one more question than the card prints: there is nothing at its
    # place, so no outline is found there and its (blank) reading cannot be trusted.
    answers = _answers(9)
    card = _card(CARD, answers, "2718", seed=9)
    more = copy.deepcopy(CARD)
    more["question_blocks"].append({"first": 21, "count": 1, "origin": [760, 1560], "choice_gap": 55, "row_gap": 62})
    got, sid, _, review = _read(card, more)
    assert "21" in review
    assert {q: v for q, v in got.items() if q != "21"} == _expected(answers)
    assert sid == "2718"


def test_light_grey_print_a_third_of_a_bubble_off_the_template_is_found_and_read() -> None:
    # Outlines and digits printed light grey (225 on 250 paper) and a template 14 px low
    # (0.4 of the 36 px bubble): the outline is faint and the pull towards the template's
    # place must only choose among outlines, not decide whether one is there at all.
    answers = _answers(3)
    card = _card(CARD, answers, "4071", ink=(225, 225, 225), seed=3)
    low = copy.deepcopy(CARD)
    for block in low["question_blocks"]:
        block["origin"][1] += 14
    low["student_id"]["origin"][1] += 14
    got, sid, _, review = _read(card, low)
    assert got == _expected(answers)
    assert sid == "4071"
    assert set(review) <= {"13"}


def test_a_template_row_the_sheet_does_not_print_refuses_the_sheet_naming_it() -> None:
    # The template's first column lists an eleventh row the card does not print. The
    # same sign (a row of a block with no print at all, the rest printed) is what a
    # sheet read the wrong way up shows, when its layout looks alike turned round
    # (columns of 9 and 8 rows): there every mark is read as another answer. Such a
    # sheet is refused, naming the row, not read with that row blank.
    from workers.omr.errors import TEMPLATE_MISMATCH, OmrError
    from workers.omr.reader import read_gray
    from workers.omr.template import load_template

    card = _card(CARD, _answers(4), "1618", seed=4)
    longer = copy.deepcopy(CARD)
    longer["question_blocks"][0]["count"] = 11
    longer["question_blocks"][1]["first"] = 12
    with pytest.raises(OmrError) as info:
        read_gray(card, load_template(longer))
    assert info.value.code == TEMPLATE_MISMATCH
    assert "'11'" in info.value.message
    assert "does not print" in info.value.message


def test_a_block_placed_by_its_marks_whose_rows_drift_off_the_template_is_not_trusted() -> None:
    # Faint outlines and a sheet whose rows run 14 % further apart than the alignment
    # says (a perspective fitted wrong): the rows' drift smears the block's mean bubble,
    # so no outline stands out, and the marks inside the bubbles place the block where
    # its first rows fit and its last ones sit a row off. The block must not be read as
    # found there: its first and last half of rows centre apart.
    import cv2
    import numpy as np

    from tests.omr import test_alignment_kinds as kinds
    from workers.omr.align import Alignment
    from workers.omr.layout import fit_layout

    template = kinds._template("none")
    marks = kinds._marks(template)
    page = np.full((kinds.H, kinds.W), 250, np.uint8)
    for q in template.questions:
        for value, (x, y) in zip(q.values, q.centres, strict=True):
            cv2.circle(page, (round(x), round(y)), kinds.RADIUS, 200, 1, cv2.LINE_AA)
            if value in marks[q.label]:
                cv2.circle(page, (round(x), round(y)), kinds.RADIUS - 3, 25, -1, cv2.LINE_AA)
    first_row = template.questions[0].centres[0][1]
    drift = np.array([[1, 0, 0], [0, 1.14, -0.14 * first_row], [0, 0, 1]], np.float64)
    sheet = np.asarray(cv2.warpPerspective(page, drift, (kinds.W, kinds.H), borderValue=250), np.uint8)
    fit = fit_layout(sheet, template, Alignment(np.eye(3), 0, 1.0, 25.0, 250.0))
    placed_by_marks = [b for b in fit.blocks if b.score > 0 and not b.measured]
    assert placed_by_marks, "no block is placed by its marks: the sheet no longer shows the case"
    assert not any(b.found for b in placed_by_marks)
    assert {q.label for q in template.questions if q.block == placed_by_marks[0].name} <= fit.unfound


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocks_of_four_questions_placed_by_their_marks_are_trusted(seed: int) -> None:
    # Twelve blocks of four questions with outlines all but invisible, so most blocks are
    # placed by the marks inside their bubbles. A half of such a block is two rows with a
    # mark or two: too few to centre on (a public scan of 45 such blocks had 103 of its
    # 183 fields sent to review for it), and too short for a perspective fitted wrong to
    # move its rows apart. Each block is found, on its print.
    import cv2
    import numpy as np

    from workers.omr.align import Alignment
    from workers.omr.layout import fit_layout

    radius, gap = 7, 28
    blocks = [
        {
            "first": 1 + 4 * k,
            "count": 4,
            "origin": [100 + 150 * (k % 4), 150 + 120 * (k // 4)],
            "choice_gap": gap,
            "row_gap": gap,
        }
        for k in range(12)
    ]
    template = _straight_template("small-blocks", (700, 900), radius, ["1", "2", "3", "4"], blocks)
    rng = np.random.default_rng(seed)
    page = np.full((900, 700), 250, np.uint8)
    for i, q in enumerate(template.questions):
        pick = int(rng.integers(0, 4))
        for j, (x, y) in enumerate(q.centres):
            cv2.circle(page, (round(x), round(y)), radius, 246, 1, cv2.LINE_AA)
            if j == pick and i % 7 != 3:  # a few questions left blank
                at = (round(x + rng.uniform(-1.5, 1.5)), round(y + rng.uniform(-1.5, 1.5)))
                cv2.circle(page, at, round(radius - 2 + rng.uniform(-1, 1)), 40, -1, cv2.LINE_AA)
    page = np.asarray(cv2.GaussianBlur(page, (0, 0), 0.8), np.uint8)
    fit = fit_layout(page, template, Alignment(np.eye(3), 0, 1.0, 25.0, 250.0))
    assert any(not b.measured for b in fit.blocks), (
        "no block is placed by its marks: the sheet no longer shows the case"
    )
    assert fit.unfound == frozenset()
    assert all(abs(b.offset[0]) <= 1.5 and abs(b.offset[1]) <= 1.5 for b in fit.blocks)


def test_a_block_of_one_row_is_searched_within_the_spacing_of_the_rows_beside_it() -> None:
    # A template giving every question a block of its own, on a card that prints each
    # choice's letter just above its bubble: a row's own spacing says nothing of how far
    # the next row is, and the search looked for outlines up to a bubble and a half
    # tall. The letter and the bubble's far side paired up: blank rows were placed a
    # quarter bubble high at a bubble and a half's height, and their blank bubbles read
    # in doubt (on a public card's phone photo, 8 of 80 rows in review, 30 read as a
    # scan). The rows beside a row bound its search as a block's own rows do.
    import cv2
    import numpy as np

    from workers.omr.align import Alignment
    from workers.omr.layout import fit_layout

    radius, gap, pitch, rows = 10, 30, 36, 12
    rows_alone = [
        {"first": 1 + i, "count": 1, "origin": [200, 150 + i * pitch], "choice_gap": gap, "row_gap": pitch}
        for i in range(rows)
    ]
    template = _straight_template("a-block-a-row", (600, 800), radius, ["A", "B", "C", "D"], rows_alone)
    page = np.full((800, 600), 252, np.uint8)
    for i, q in enumerate(template.questions):
        for j, (x, y) in enumerate(q.centres):
            at = (round(x), round(y))
            cv2.circle(page, at, radius, 90, 2, cv2.LINE_AA)
            cv2.putText(page, "ABCD"[j], (at[0] - 4, at[1] - radius - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 40, 1)
            if j == i % 4 and i % 3 == 0:  # most rows left blank
                cv2.circle(page, at, radius - 2, 40, -1, cv2.LINE_AA)
    page = np.asarray(cv2.GaussianBlur(page, (0, 0), 0.7), np.uint8)
    fit = fit_layout(page, template, Alignment(np.eye(3), 0, 1.0, 30.0, 252.0))
    assert len(fit.blocks) == rows
    for block in fit.blocks:
        assert max(abs(block.offset[0]), abs(block.offset[1])) <= 1.0, block
        assert max(abs(block.radii[0] - radius), abs(block.radii[1] - radius)) <= 1.0, block


def test_a_block_found_only_from_a_side_that_reads_all_blank_goes_to_review(tmp_path: Path) -> None:
    # A block found only in a second search may lie between its print's columns: on a
    # public card's scan a candidate number's ten columns of small touching ellipses were
    # fitted a fifth of a column off, and every pencil dot read as paper, unflagged.
    from tests.omr import cards as C
    from workers.omr.classify import FieldReading
    from workers.omr.layout import BlockFit, LayoutFit
    from workers.omr.omrchecker import load_omrchecker_template
    from workers.omr.reader import BLANK_BLOCK_MIN, blank_side_found

    template = load_omrchecker_template(C.write_omrchecker(C.CARDS["grey"], tmp_path)).template
    names = list(dict.fromkeys(f.block_name for f in template.fields))
    side = next(n for n in names if sum(f.block_name == n for f in template.fields) >= BLANK_BLOCK_MIN)
    in_side = [f.label for f in template.fields if f.block_name == side]

    def fit(indirect: bool) -> LayoutFit:
        blocks = tuple(BlockFit(n, (0.0, 0.0), (5.0, 5.0), 0.1, indirect=indirect and n == side) for n in names)
        return LayoutFit(template, blocks)

    def readings(marked: set[str]) -> list[FieldReading]:
        return [
            FieldReading(f.label, f.values[:1] if f.label in marked else (), (0.0,) * len(f.values), 1.0, False)
            for f in template.fields
        ]

    others = {f.label for f in template.fields if f.block_name != side}
    assert blank_side_found(fit(True), template, readings(others)) == set(in_side)
    # Found where the template puts it, a blank block is the student's.
    assert blank_side_found(fit(False), template, readings(others)) == frozenset()
    # One mark in it says where the block lies.
    assert blank_side_found(fit(True), template, readings(others | {in_side[0]})) == frozenset()


def test_a_block_whose_questions_are_mostly_in_doubt_goes_to_review_whole(tmp_path: Path) -> None:
    # A block is placed on the sheet as one. On a public card's phone photo a column of
    # 17 questions lay half a bubble right of its print: 14 went to review, and two marks
    # straddling two bubbles read as the choice beside them, unflagged.
    from tests.omr import cards as C
    from workers.omr.omrchecker import load_omrchecker_template
    from workers.omr.reader import DOUBTED_BLOCK_MIN, doubted_blocks

    template = load_omrchecker_template(C.write_omrchecker(C.CARDS["grey"], tmp_path)).template
    questions = template.fields[len(template.id_fields) :]
    name = questions[0].block_name
    block = [f.label for f in questions if f.block_name == name]
    assert len(block) >= DOUBTED_BLOCK_MIN
    most = frozenset(block[: len(block) // 2 + 1])
    assert doubted_blocks(questions, most) == set(block)
    # Half or fewer in doubt: each field keeps its own verdict.
    assert doubted_blocks(questions, frozenset(block[: len(block) // 2])) == frozenset()
    # The student number's digits are not a block of questions.
    ids = frozenset(f.label for f in template.id_fields)
    assert doubted_blocks(questions, ids) == frozenset()


def _straight_template(
    name: str, size: tuple[int, int], radius: int, choices: list[str], blocks: list[dict[str, Any]]
) -> Template:
    """A template in this project's format whose page is the picture itself (no markers
    looked for): for pages drawn straight in the template frame."""
    from workers.omr.template import load_template

    return load_template(
        {
            "format": "academy-omr-template/1",
            "name": name,
            "page": {"width": size[0], "height": size[1], "dpi": 100},
            "marker": {"size": 40, "inset": 10},
            "bubble": {"radius": radius},
            "choices": choices,
            "question_blocks": blocks,
            "alignment": {"kind": "none"},
        }
    )
