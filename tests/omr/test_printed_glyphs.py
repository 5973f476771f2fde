"""Letters or digits printed inside the bubbles darken each choice by its own amount ("E"
more than "C"). On a short sheet marked lightly that spread is as wide as the gap between
empty and marked; each bubble is measured against the same choice in the block's other
fields (classify.without_print), so the marks stand out again."""

from __future__ import annotations

from typing import Final

import numpy as np

from workers.omr.classify import (
    CIRCLED_BLANK,
    COVERED_BLANK,
    HIDDEN_RING,
    LONE_LIGHT_GAP,
    REVIEW_BELOW,
    SHADED_BLANK,
    FieldReading,
    all_marked,
    lone_light_marks,
    marked_round_blanks,
    print_taken_off,
    read_field,
    read_fields,
    sheet_levels,
    stroked_blanks,
    under_print,
    without_print,
)
from workers.omr.template import Field

#: each choice's empty fill: what its printed letter adds to the paper.
GLYPHS = (0.22, 0.32, 0.25, 0.36, 0.24)
MARK = 0.22  # a light grey mark: about as much again


def _sheet(
    marked: list[int], glyphs: tuple[float, ...] = GLYPHS
) -> tuple[np.ndarray, tuple[tuple[int, ...], ...], list[Field]]:
    rng = np.random.default_rng(7)
    fill: list[float] = []
    index: list[tuple[int, ...]] = []
    fields: list[Field] = []
    for q, choice in enumerate(marked):
        row = [g + rng.normal(0, 0.01) + (MARK if c == choice else 0.0) for c, g in enumerate(glyphs)]
        index.append(tuple(range(len(fill), len(fill) + 5)))
        fill += row
        centres = tuple((100.0 + 40 * c, 100.0 + 50 * q) for c in range(5))
        fields.append(Field(f"q{q + 1}", ("A", "B", "C", "D", "E"), centres, block="MCQ"))
    return np.array(fill), tuple(index), fields


def _read(
    fill: np.ndarray, index: tuple[tuple[int, ...], ...], fields: list[Field]
) -> list[tuple[tuple[str, ...], bool]]:
    levels = sheet_levels(fill, index)
    return [
        (r.values, r.review)
        for r in (read_field(f, [fill[i] for i in idx], levels) for f, idx in zip(fields, index, strict=True))
    ]


def test_light_marks_on_letters_printed_in_the_bubbles_are_read_without_review() -> None:
    marked = [1, 4, 0, 2, 1]
    fill, index, fields = _sheet(marked)
    clean = without_print(fill, index, [f.block for f in fields])
    assert _read(clean, index, fields) == [(("ABCDE"[c],), False) for c in marked]


def test_a_choice_most_fields_mark_keeps_its_marks() -> None:
    # Four of five questions answer "D": too few empty "D"s to tell what its print adds,
    # so its fills are left as they are, and the marks are not taken off as print.
    marked = [3, 3, 3, 0, 3]
    fill, index, fields = _sheet(marked)
    clean = without_print(fill, index, [f.block for f in fields])
    assert [clean[idx[3]] for idx in index] == [fill[idx[3]] for idx in index]
    assert [values for values, _ in _read(clean, index, fields)] == [("ABCDE"[c],) for c in marked]


def test_a_blank_sheet_of_noisy_print_reads_blank_without_review() -> None:
    # Small bubbles with bold letters in them under uneven light: after the print is taken
    # off, the empty bubbles still scatter by a few hundredths, more than a quarter of the
    # way to a mark once measured against that spread. No bubble stands clear of it, so the
    # sheet has no mark level of its own, and none of that scatter may be read as a mark.
    rng = np.random.default_rng(11)
    n = 60
    fill = np.array([g + rng.normal(0, 0.05) for _ in range(n) for g in GLYPHS])
    index = tuple(tuple(range(5 * q, 5 * q + 5)) for q in range(n))
    fields = [
        Field(f"q{q + 1}", ("A", "B", "C", "D", "E"), tuple((100.0 + 40 * c, 100.0 + 50 * q) for c in range(5)))
        for q in range(n)
    ]
    clean = without_print(fill, index, ["MCQ"] * n)
    levels = sheet_levels(clean, index)
    assert levels.references == 0
    read = _read(clean, index, fields)
    assert [values for values, _ in read] == [()] * n
    # A bubble some three spreads over the empty level may be a light mark: a person looks.
    assert sum(review for _, review in read) <= n // 20


def test_a_glyph_darker_than_the_rest_is_no_answer_in_blocks_left_blank() -> None:
    # "D" prints darkest, a little darker than "B": in a block nobody marked it is every
    # field's darkest bubble, so its own print cannot be measured there (as for an answer
    # most questions share). On a sheet with no other marks those "D"s must not become
    # the sheet's marks and be read as answers without review.
    fill, index, fields = _sheet([-1] * 10, glyphs=(0.22, 0.33, 0.25, 0.35, 0.24))
    blocks = ["MCQ1"] * 5 + ["MCQ2"] * 5
    clean, ceiling = print_taken_off(fill, index, blocks)
    assert clean.tobytes() == without_print(fill, index, blocks).tobytes()
    assert np.isfinite(ceiling.reshape(10, 5)[:, 3]).all()
    assert np.isfinite(ceiling).sum() == 10
    levels = sheet_levels(clean, index, ceiling=ceiling)
    assert levels.references == 0
    for f, idx in zip(fields, index, strict=True):
        r = read_field(f, [clean[i] for i in idx], levels)
        assert r.values == () or r.review, r


def test_marks_elsewhere_still_read_a_block_that_answers_one_choice_throughout() -> None:
    # Every question of the second block answers "D": its print there is not measured
    # either, but those marks stand clear of the glyphs measured beside them, so they are
    # the sheet's marks as much as the first block's, and all are read.
    fill, index, fields = _sheet([1, 4, 0, 2, 1, 3, 3, 3, 3, 3])
    blocks = ["MCQ1"] * 5 + ["MCQ2"] * 5
    clean, ceiling = print_taken_off(fill, index, blocks)
    levels = sheet_levels(clean, index, ceiling=ceiling)
    assert levels.references == 10
    read = [read_field(f, [clean[i] for i in idx], levels) for f, idx in zip(fields, index, strict=True)]
    assert [r.values for r in read] == [("ABCDE"[c],) for c in (1, 4, 0, 2, 1, 3, 3, 3, 3, 3)]
    assert under_print(fields, read, clean, index, levels, ceiling) == frozenset()


#: the glyphs of a small bubble's sample ("A" where it lands on the stroke, "C" where it
#: lands in the bowl), and the answers of the two answered blocks of ``_third_left_blank``.
SMALL_PRINT: Final = (0.33, 0.35, 0.03, 0.25)
ANSWERED: Final = (1, 3, 0, 2, 1, 0, 3, 2, 2, 1)


def _third_left_blank(
    blank: tuple[float, ...], *, noise: float, mark: float, seed: int
) -> tuple[list[Field], tuple[tuple[int, ...], ...], np.ndarray]:
    """Three blocks of five four-choice questions: two answered (ANSWERED, marks adding
    ``mark``), the third left blank and printed with the glyphs ``blank``."""
    rng = np.random.default_rng(seed)
    fields = [
        Field(
            f"q{q + 1}",
            ("A", "B", "C", "D"),
            tuple((100.0 + 40 * c, 100.0 + 50 * q) for c in range(4)),
            block=f"Q{q // 5 + 1}",
        )
        for q in range(15)
    ]
    index = tuple(tuple(range(4 * q, 4 * q + 4)) for q in range(15))
    rows = [[g + rng.normal(0, noise) + (mark if c == m else 0.0) for c, g in enumerate(SMALL_PRINT)] for m in ANSWERED]
    rows += [[g + rng.normal(0, noise) for g in blank] for _ in range(5)]
    return fields, index, np.array(rows).ravel()


def test_a_bold_glyph_in_a_block_left_blank_goes_to_review_on_a_marked_sheet() -> None:
    # Small bubbles with letters in them. Two blocks are answered, with marks as dark as
    # ink; the third is left blank, and there "A" prints darker than any other glyph.
    # The answered blocks set the mark level, and the blank block's "A"s reach past its
    # midpoint: read by the thresholds alone, every one of its questions answers "A"
    # without doubt. Their print cannot be measured in their block, and they stand no
    # clearer of the glyphs measured beside them than print does, as a reference mark
    # must (sheet_levels): a person decides.
    for seed in range(8):
        fields, index, fill = _third_left_blank((0.68, 0.45, 0.07, 0.17), noise=0.04, mark=0.55, seed=seed)
        clean, ceiling = print_taken_off(fill, index, [f.block_name for f in fields])
        levels = sheet_levels(clean, index, ceiling=ceiling)
        assert levels.references == 10
        read = read_fields(fields, clean, index, levels, 0)
        assert [r.values for r in read] == [("ABCD"[m],) for m in ANSWERED] + [("A",)] * 5
        assert not any(r.review for r in read[:10])
        assert sum(r.review for r in read[10:]) <= 1  # a "B" a little dark brings one doubt
        assert all(clean[idx[0]] <= ceiling[idx[0]] + 6 * levels.noise for idx in index[10:])
        assert under_print(fields, read, clean, index, levels, ceiling) == {f"q{q}" for q in range(11, 16)}


def test_a_glyph_printed_far_darker_than_its_blocks_others_goes_to_review_too() -> None:
    # As above, but the blank block's "A" samples far darker than any glyph measured
    # beside it, past the reference bar over them: it could be a mark by that measure.
    # Every field of the block reads that one answer, at a place whose print is unknown,
    # and well short of the sheet's marks: a block answered alike throughout would carry
    # marks like the others.
    for seed in range(8):
        fields, index, fill = _third_left_blank((0.70, 0.40, 0.07, 0.17), noise=0.02, mark=0.6, seed=seed)
        clean, ceiling = print_taken_off(fill, index, [f.block_name for f in fields])
        levels = sheet_levels(clean, index, ceiling=ceiling)
        read = read_fields(fields, clean, index, levels, 0)
        assert [r.values for r in read[10:]] == [("A",)] * 5
        assert not any(r.review for r in read)
        # Clear of the glyphs measured beside it by the reference bar ...
        assert all(clean[idx[0]] > ceiling[idx[0]] + 6 * levels.noise for idx in index[10:])
        # ... and still no answer without a person.
        assert under_print(fields, read, clean, index, levels, ceiling) == {f"q{q}" for q in range(11, 16)}


def test_rows_read_marked_throughout_go_to_review_and_a_double_mark_does_not() -> None:
    # A blank sheet whose second block was fitted onto the letters printed beside its
    # bubbles: every bubble there is as dark as the letters, evenly, so no print is taken
    # off. Those rows stand clear of the first block's empty bubbles and set the mark
    # level themselves; every bubble of them reads as marked. A student who marks two
    # choices is read as such, without review.
    rng = np.random.default_rng(3)
    rows = [[0.1 + rng.normal(0, 0.01) for _ in range(5)] for _ in range(20)]
    rows[4][1] += 0.6
    rows[4][3] += 0.6
    rows += [[0.35 + rng.normal(0, 0.01) for _ in range(5)] for _ in range(10)]
    fill = np.array(rows).ravel()
    index = tuple(tuple(range(5 * q, 5 * q + 5)) for q in range(30))
    fields = [
        Field(f"q{q + 1}", ("A", "B", "C", "D", "E"), tuple((100.0 + 40 * c, 100.0 + 50 * q) for c in range(5)))
        for q in range(30)
    ]
    clean, ceiling = print_taken_off(fill, index, ["Q1"] * 20 + ["Q2"] * 10)
    levels = sheet_levels(clean, index, ceiling=ceiling)
    read = read_fields(fields, clean, index, levels, 0)
    assert read[4].values == ("B", "D")
    assert [r.values for r in read[20:]] == [("A", "B", "C", "D", "E")] * 10
    assert not any(r.review for r in read[20:])
    assert all_marked(fields, read) == {f"q{q}" for q in range(21, 31)}


def test_a_bubble_read_blank_whose_surroundings_a_mark_covers_sends_its_field_to_review() -> None:
    # A bold digit measured as the bubble: its middle is the digit whether marked or not,
    # so every bubble reads alike (blank), and the mark shows only round it, where the
    # reader looks for paper. A shadow over a whole row darkens every bubble's
    # surroundings alike and sends nothing to review.
    fields = [
        Field(f"q{q + 1}", ("A", "B", "C", "D", "E"), tuple((100.0 + 40 * c, 100.0 + 50 * q) for c in range(5)))
        for q in range(3)
    ]
    index = tuple(tuple(range(5 * q, 5 * q + 5)) for q in range(3))
    shade = np.array(
        [
            *(0.02, 0.6, 0.03, 0.01, 0.02),  # q1: B covered round its digit, read blank
            *(0.45, 0.47, 0.46, 0.44, 0.48),  # q2: in a shadow, blank
            *(0.02, 0.03, 0.01, 0.7, 0.02),  # q3: D covered, and read as marked
        ]
    )
    fill = np.full(15, 0.1)
    fill[13] = 0.9
    clean, ceiling = print_taken_off(fill, index, ["MCQ"] * 3)
    levels = sheet_levels(clean, index, ceiling=ceiling)
    read = read_fields(fields, clean, index, levels, 0)
    assert [r.values for r in read] == [(), (), ("D",)]
    band = np.full(15, 0.2)  # every outline's print alike
    ring = np.full(15, 0.5)
    assert marked_round_blanks(fields, read, index, shade=shade, band=band, ring=ring) == {"q1"}
    # Just under the bar over the field's typical bubble, it is no mark's.
    shade[1] = 0.02 + COVERED_BLANK - 0.01
    assert marked_round_blanks(fields, read, index, shade=shade, band=band, ring=ring) == frozenset()


def test_a_bubble_read_blank_with_a_ring_drawn_round_it_sends_its_field_to_review() -> None:
    # A student who circles a choice: its middle stays paper, its outline's band darkens.
    fields = [Field("q1", ("A", "B", "C", "D", "E"), tuple((100.0 + 40 * c, 100.0) for c in range(5)))]
    index = ((0, 1, 2, 3, 4),)
    clean, ceiling = print_taken_off(np.full(5, 0.05), index, ["MCQ"])
    read = read_fields(fields, clean, index, sheet_levels(clean, index, ceiling=ceiling), 0)
    shade = np.zeros(5)
    band = np.array([0.2, 0.2, 0.2 + CIRCLED_BLANK + 0.05, 0.21, 0.19])
    ring = np.full(5, 0.5)
    assert read[0].values == ()
    assert marked_round_blanks(fields, read, index, shade=shade, band=band, ring=ring) == {"q1"}
    band[2] = 0.2 + CIRCLED_BLANK - 0.05
    assert marked_round_blanks(fields, read, index, shade=shade, band=band, ring=ring) == frozenset()


def test_a_bubble_read_blank_under_a_shade_that_hides_its_outline_sends_its_field_to_review() -> None:
    # A grey box printed or drawn over a choice is the bubble's own paper: its middle
    # reads blank, its surroundings are shaded, and its outline no longer shows.
    fields = [Field("Nr", ("A", "B", "C", "D"), tuple((100.0 + 40 * c, 100.0) for c in range(4)))]
    index = ((0, 1, 2, 3),)
    clean, ceiling = print_taken_off(np.full(4, 0.05), index, ["Nr"])
    read = read_fields(fields, clean, index, sheet_levels(clean, index, ceiling=ceiling), 0)
    assert read[0].values == ()
    band = np.full(4, 0.25)
    shade = np.array([SHADED_BLANK + 0.1, 0.0, 0.01, 0.0])
    ring = np.array([0.5 * HIDDEN_RING * 0.6, 0.6, 0.58, 0.61])
    assert marked_round_blanks(fields, read, index, shade=shade, band=band, ring=ring) == {"Nr"}
    # A shaded bubble whose outline still shows is a white bubble on a shaded row ...
    shaded_row = ring.copy()
    shaded_row[0] = 0.59
    assert marked_round_blanks(fields, read, index, shade=shade, band=band, ring=shaded_row) == frozenset()
    # ... and a faint outline on bare paper is faint print.
    bare = shade.copy()
    bare[0] = SHADED_BLANK - 0.05
    assert marked_round_blanks(fields, read, index, shade=bare, band=band, ring=ring) == frozenset()


def test_a_blank_row_with_one_bubble_standing_out_goes_to_review_and_an_even_grey_row_does_not() -> None:
    def blank(label: str, scores: tuple[float, ...]) -> FieldReading:
        confidence = min(abs(v - 0.5) / 0.5 for v in scores)
        return FieldReading(label, (), scores, round(confidence, 3), False)

    quiet = [blank(f"q{n}", (0.01, 0.02, 0.0, 0.01)) for n in range(5, 9)]
    rows = [
        blank("stroke", (-0.09, 0.21, 0.07, -0.07)),  # one bubble lifted: a stroke or erasure
        blank("grey", (0.18, 0.13, 0.21, 0.16)),  # all a little grey alike: a shadow
        blank("faint", (0.0, 0.12, 0.01, 0.0)),  # stands out, but too faint to be anything
        FieldReading("marked", ("B",), (0.0, 0.9, 0.2, 0.0), 0.6, False),  # read, not blank
        *quiet,
    ]
    fields = [
        Field(r.label, ("A", "B", "C", "D"), tuple((40.0 * c, 50.0 * q) for c in range(4)), block="MCQ")
        for q, r in enumerate(rows)
    ]
    assert lone_light_marks(fields, rows) == {"stroke"}
    # Just under the gap, the row is noise.
    near = [blank("near", (0.2, 0.2 - LONE_LIGHT_GAP + 0.01, 0.0, 0.0)), *quiet]
    assert lone_light_marks(fields[: len(near)], near) == frozenset()
    # A bubble as grey in every field of its block is print (a glyph bolder than the
    # others), not a stroke in one of them.
    bold = [blank(f"q{n}", (0.22 + 0.01 * (n % 3), 0.02, 0.0, 0.01)) for n in range(8)]
    assert lone_light_marks(fields, bold) == frozenset()


def test_a_blank_row_with_several_bubbles_crossed_by_strokes_stays_in_doubt_and_an_even_grey_row_does_not() -> None:
    # An X over one choice, a tick over another and a scribble over a third: each bubble
    # darkened under the midpoint. The thresholds doubt the field; the learned classifier
    # reads every bubble unmarked with certainty. The field stays with a person.
    def blank(label: str, scores: tuple[float, ...]) -> FieldReading:
        confidence = min(abs(v - 0.5) / 0.5 for v in scores)
        return FieldReading(label, (), scores, round(confidence, 3), confidence < REVIEW_BELOW)

    quiet = [blank(f"q{n}", (0.01, 0.02, 0.0, 0.01, 0.0)) for n in range(5, 9)]
    rows = [
        blank("strokes", (0.4, 0.0, 0.4, 0.03, 0.43)),  # three bubbles crossed
        blank("two", (0.31, 0.02, 0.0, 0.29, 0.01)),  # two
        blank("grey", (0.3, 0.28, 0.33, 0.3, 0.29)),  # all alike: a shadow or print
        blank("light", (0.12, 0.0, 0.13, 0.01, 0.0)),  # two lifted, in no doubt
        blank("one", (0.0, 0.35, 0.02, 0.0, 0.01)),  # one: lone_light_marks' to judge
        FieldReading("marked", ("B",), (0.0, 0.9, 0.4, 0.0, 0.0), 0.2, True),  # read, not blank
        *quiet,
    ]
    fields = [
        Field(r.label, ("A", "B", "C", "D", "E"), tuple((40.0 * c, 50.0 * q) for c in range(5)), block="MCQ")
        for q, r in enumerate(rows)
    ]
    assert stroked_blanks(fields, rows) == {"strokes", "two"}
    # Places as grey in every field of their block are print, not strokes.
    bold = [blank(f"q{n}", (0.3, 0.02, 0.31, 0.0, 0.01)) for n in range(8)]
    assert stroked_blanks(fields[:8], bold) == frozenset()
