"""Decide which bubbles are marked, from the sheet's own statistics.

There is no global darkness threshold. Each sheet gives two levels:

- *empty*: the median fill of its bubbles other than each field's darkest (those are
  empty on any sheet but a few multiple marks), and its noise from their spread;
- *mark*: the median, over the fields whose darkest bubble stands clear of the empty
  level's noise, of that darkest bubble's fill - what this student's pencil does to a
  bubble on this scan.

A bubble's score ``s`` is its fill rescaled so that empty = 0 and mark = 1; it is marked
when ``s >= 0.5``, the midpoint. A blank sheet has no mark level of its own: there the
mark level is put twice the reference bar (NOISE_SIGMAS of the noise) above the empty
one, so that the midpoint is that bar and scatter under it is never a mark.
``MIN_CONTRAST`` only keeps the two levels apart on a sheet with almost no marks; it is
not the threshold.

Certainty of one bubble is its distance from the midpoint (0 on it, 1 at either level).
Two facts from the bubble's own row can raise it:

- a smudge well under half as dark as a dark mark in the same row is an erasure;
- a lone mark in an otherwise clean row is a (partial or light) mark once it is clearly
  past the midpoint;
- in a field that holds exactly one mark by its nature (a student-ID digit), a lone
  darkest bubble standing clear of a clean row is the mark even below the midpoint
  (a light pencil); a row with two candidates still goes to a person.
- in a question, the same lone bubble below the midpoint (a half-filled or light mark)
  is read as the answer but stays with a person: a question may be left blank, so only
  a person can tell a half-hearted mark from a smudge. The review page then shows the
  likely answer instead of an empty one. An erasure's residue stays far below
  SINGLE_MIN.

A field's confidence is the lowest certainty of its bubbles; below ``REVIEW_BELOW`` it
goes to a person.

In photo mode a learned classifier (``workers.omr.learned``) also scores every bubble,
and ``combine_field`` joins the two readings. The classifier never picks an answer on
its own: when both read the same marks and the classifier is sure of every bubble, the
field takes the higher of the two confidences (this is what clears the light-pencil
flags); when they read different marks, the field goes to a person whatever either
said. A silent wrong answer then needs both readers wrong in the same way.

Before that, ``classifier_fits`` checks the classifier on the sheet itself: where it
reads other marks than the thresholds on the fields the thresholds read beyond doubt
(OFF_SHEET_SHARE of them), it is seeing print it never learned, not a few hard bubbles;
it is set aside and the sheet is read as a scan is, by the thresholds alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import compress
from typing import TYPE_CHECKING, Final

from workers.omr.template import Field

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

REVIEW_BELOW: Final = 0.5
MIN_CONTRAST: Final = 0.25  # in fill units: a quarter of the way from paper to marker ink
NOISE_SIGMAS: Final = 6.0
MIN_REFERENCES: Final = 3  # fewer reference marks than this and marks are not trusted
#: a field of at least this many bubbles with every one read as marked goes to a person.
ALL_MARKED_MIN: Final = 3
#: a bubble read as unmarked whose surroundings are this much darker (0 paper .. 1 ink)
#: than its field's typical bubble's sends its field to a person (``marked_round_blanks``) ...
COVERED_BLANK: Final = 0.4
#: ... and so does one whose outline's band is this much darker: a ring drawn round it.
CIRCLED_BLANK: Final = 0.25
#: ... and one whose surroundings are SHADED_BLANK darker while its printed outline shows
#: under HIDDEN_RING of its field's typical outline: a shade laid over the bubble (a
#: box printed or drawn over it) hides its outline and is its own paper.
SHADED_BLANK: Final = 0.15
HIDDEN_RING: Final = 0.6
#: a field read blank under LONE_LIGHT_BELOW confidence (its darkest bubble past 0.175
#: of the way to a mark) whose darkest bubble stands LONE_LIGHT_GAP (score units) above
#: the rest of its row may hold a light stroke or an erasure (``lone_light_marks``).
LONE_LIGHT_BELOW: Final = 0.65
LONE_LIGHT_GAP: Final = 0.1
#: a bubble place's own empty level (without_print) is measured on at least this many fields.
MIN_PRINT_SAMPLES: Final = 3
#: the others in a row all at most this (score units) leave its darkest bubble alone.
LONE_REST: Final = 0.15
#: a lone darkest bubble: it reaches SINGLE_MIN, stands SINGLE_GAP clear of the rest of
#: its row and the rest are at most SINGLE_REST. A single-mark field (an ID digit) takes it
#: as its mark; a question reads it as its answer and leaves it to a person.
SINGLE_MIN: Final = 0.35
SINGLE_GAP: Final = 0.3
SINGLE_REST: Final = 0.25
#: the classifier vouches for a field only when every bubble's P(marked) is this far
#: from 0.5 on the 0..1 certainty scale, |2p - 1| (0.9: p <= 0.05 or p >= 0.95).
CLASSIFIER_SURE: Final = 0.9
#: the classifier is set aside on a sheet when it reads other marks than the thresholds
#: on more than this share of the fields the thresholds read beyond doubt (confidence at
#: least CLASSIFIER_SURE), and on at least OFF_SHEET_MIN of them: a sheet whose print is
#: unlike every sheet it learned from (black rings and digits as dark as the marks), not
#: a few misread bubbles. On the sheets it was made for it contradicts none of them.
OFF_SHEET_SHARE: Final = 0.1
OFF_SHEET_MIN: Final = 3


@dataclass(frozen=True)
class Levels:
    empty: float
    mark: float
    noise: float
    references: int

    @property
    def threshold(self) -> float:
        return (self.empty + self.mark) / 2


@dataclass(frozen=True)
class FieldReading:
    label: str
    values: tuple[str, ...]  # the marked values, in template order
    scores: tuple[float, ...]  # s per bubble: 0 = empty level, 1 = mark level
    confidence: float
    review: bool
    #: what the classifier did: "" not run, "agree", "lifted" (it cleared a doubt the
    #: thresholds had), "unsure", "disagree" (sent to a person), "off" (set aside on this
    #: sheet: ``classifier_fits``).
    classifier: str = ""


def without_print(
    fill: npt.NDArray[np.float64], index: Sequence[Sequence[int]], blocks: Sequence[str]
) -> npt.NDArray[np.float64]:
    """The fills with what is printed inside each bubble taken off.

    A letter or digit printed inside a bubble darkens its middle, and "E" more than "C":
    on a light-marking sheet that spread across the choices is as wide as the gap between
    empty and marked. Within one block the bubble at the same place of every field (every
    question's "B", every ID column's "7") prints the same glyph, so its own empty level is
    the median, over the block's fields, of that bubble where it is not its field's darkest;
    each bubble is measured against its glyph's level, moved to the block's. A place with
    fewer than MIN_PRINT_SAMPLES such bubbles keeps its fill. ``blocks``: each field's block.

    A block's fields are one (fields, places) matrix: the medians of every place at once
    from one sort down its columns, the values left out sorted past the others. Each is
    np.median's own (the same two middle values, halved as it does), for finite fills.
    """
    return print_taken_off(fill, index, blocks)[0]


def print_taken_off(
    fill: npt.NDArray[np.float64], index: Sequence[Sequence[int]], blocks: Sequence[str]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``without_print``'s fills, and with them, in the same pass, each bubble's print
    ceiling: for a bubble whose own place could not be measured while others of its
    block were (the place was its field's darkest in all but MIN_PRINT_SAMPLES - 1 of the
    block's fields), the empty level of the darkest glyph measured there; -inf for
    every other bubble.

    In a block left blank, a glyph darker than the others ("A" in a bold font) is every
    field's darkest bubble; so is an answer most of the block's questions share. A mark
    stands clear of the block's printed glyphs, a glyph does not (``sheet_levels``).
    """
    import numpy as np

    values = np.asarray(fill, np.float64)
    out = values.copy()
    ceiling = np.full(len(values), -np.inf)
    for rows, places, level in _glyph_levels(values, index, blocks):
        shift = np.broadcast_to(level - median(level), (len(rows.at), len(places)))
        at = rows.at[:, places]
        if rows.pad is None:
            out[at] -= shift
        else:
            real = ~rows.pad[:, places]
            out[at[real]] -= shift[real]
        lacking = np.setdiff1d(np.arange(rows.at.shape[1]), places)
        if len(lacking):
            at = rows.at[:, lacking]
            ceiling[at if rows.pad is None else at[~rows.pad[:, lacking]]] = float(level.max())
    return out, ceiling


def _glyph_levels(
    values: npt.NDArray[np.float64], index: Sequence[Sequence[int]], blocks: Sequence[str]
) -> Iterator[tuple[_Rows, npt.NDArray[np.intp], npt.NDArray[np.float64]]]:
    """Each block whose print is measured at two places or more: its rows, those places
    and each one's empty level (``without_print``)."""
    import numpy as np

    for rows in _block_rows(index, blocks):
        v = values[rows.at]
        drop = _darkest(v, rows)
        counts = len(v) - np.count_nonzero(drop, axis=0)
        places = np.flatnonzero(counts >= MIN_PRINT_SAMPLES)
        if len(places) < 2:
            continue
        ordered = np.sort(np.where(drop[:, places], np.inf, v[:, places]), axis=0)
        c = counts[places]
        level = (ordered[(c - 1) // 2, np.arange(len(places))] + ordered[c // 2, np.arange(len(places))]) / 2
        yield rows, places, level


def sheet_levels(
    fill: npt.NDArray[np.float64],
    index: Sequence[Sequence[int]],
    *,
    ceiling: npt.NDArray[np.float64] | None = None,
) -> Levels:
    """The sheet's empty and mark levels. ``ceiling``: per bubble, the darkest glyph
    measured in its block where its own print could not be taken off
    (``print_taken_off``); a field whose darkest bubble is one of those is a reference mark
    only where it also stands the reference bar clear of that glyph's level, for it may
    be no more than its own glyph."""
    import numpy as np

    rows = _plan(index).rows
    v = fill[rows.at]
    masked = v if rows.pad is None else np.where(rows.pad, -np.inf, v)
    tops = masked.max(axis=1)
    # The empty level and its noise from the bubbles that are not their field's darkest:
    # on a short sheet (five questions) the marks are a fifth of all bubbles and would
    # widen the spread the marks are then measured against.
    rest = np.ones(len(fill), bool)
    drop = _darkest(v, rows)
    if rows.pad is not None:
        drop &= ~rows.pad
    rest[rows.at[drop]] = False
    pool = fill[rest] if rest.any() else fill
    empty = median(pool)
    noise = max(float(1.4826 * median(np.abs(pool - empty))), 0.004)
    clear = tops > empty + NOISE_SIGMAS * noise
    if ceiling is not None:
        clear &= tops > ceiling[rows.at[np.arange(len(v)), masked.argmax(axis=1)]] + NOISE_SIGMAS * noise
    refs = tops[clear]
    # With no field's darkest bubble clear of the noise there is no mark to measure. The
    # guess puts the midpoint no lower than that bar, so on a blank sheet of noisy print
    # (small bubbles, letters inside them, uneven light) nothing under it reads as a mark.
    mark = median(refs) if refs.size else empty + 2 * NOISE_SIGMAS * noise
    return Levels(empty, max(mark, empty + MIN_CONTRAST), noise, int(refs.size))


def under_print(
    fields: Sequence[Field],
    readings: Sequence[FieldReading],
    fill: npt.NDArray[np.float64],
    index: Sequence[Sequence[int]],
    levels: Levels,
    ceiling: npt.NDArray[np.float64],
) -> frozenset[str]:
    """The fields with a bubble read as marked where its own print could not be taken
    off and that does not stand the reference bar (NOISE_SIGMAS of the noise) clear of
    the darkest glyph measured in its block (``print_taken_off``'s ceiling); and every
    field of a block that reads one answer throughout at such a place, when those marks
    lie more than half that bar under the sheet's mark level.

    Such a bubble is its field's darkest in nearly every field of its block: a block the
    students all answered alike, or a block left blank whose glyph at that place prints
    darker than the rest ("A" in a bold font, or a glyph the small sample lands on). A
    mark covers its glyph and stands clear of the block's print, as a reference mark must
    (``sheet_levels``); a glyph does not, and on a sheet whose other marks set the mark
    level it can still reach the midpoint. Only a person can tell those apart."""
    import numpy as np

    bar = NOISE_SIGMAS * levels.noise
    out = {
        r.label
        for f, r, idx in zip(fields, readings, index, strict=True)
        if any(v in r.values and fill[at] <= ceiling[at] + bar for v, at in zip(f.values, idx, strict=True))
    }
    # A block whose every field reads one answer, the same place in each, where its
    # print could not be measured: every student of the block answered alike, or the
    # block is blank and its glyph there prints far darker than the others. Marks look
    # like the sheet's other marks; such a glyph stays well short of them.
    blocks: dict[str, list[int]] = {}
    for k, f in enumerate(fields):
        blocks.setdefault(f.block_name, []).append(k)
    for members in blocks.values():
        if len(members) < MIN_PRINT_SAMPLES or any(len(readings[k].values) != 1 for k in members):
            continue
        places = {fields[k].values.index(readings[k].values[0]) for k in members}
        if len(places) != 1:
            continue
        place = places.pop()
        at = [index[k][place] for k in members]
        if np.isfinite(ceiling[at]).all() and median(fill[at]) < levels.mark - bar / 2:
            out.update(readings[k].label for k in members)
    return frozenset(out)


def all_marked(fields: Sequence[Field], readings: Sequence[FieldReading]) -> frozenset[str]:
    """The fields of ALL_MARKED_MIN bubbles or more that read every bubble as marked.

    A student who marks every choice of a question is rare; print read as marks is not:
    a block fitted onto the letters printed beside its bubbles, or a shadow across a row,
    darkens every bubble of its rows alike, and on a sheet with no other marks those rows
    set the mark level themselves. Such a field still reads all its values, and a person
    looks."""
    return frozenset(
        r.label
        for f, r in zip(fields, readings, strict=True)
        if len(f.values) >= ALL_MARKED_MIN and len(r.values) == len(f.values)
    )


def lone_light_marks(fields: Sequence[Field], readings: Sequence[FieldReading]) -> frozenset[str]:
    """The fields read blank, under LONE_LIGHT_BELOW confidence, whose darkest bubble
    stands LONE_LIGHT_GAP or more above the next of its row, and as far above the same
    bubble's typical score in its block (the median over the block's fields).

    A blank row's bubbles scatter about the paper level together; a light stroke, a
    partial fill or what an eraser left lifts one of them alone. A stroke through a
    bubble covers the same share of it at any size and can stay well under the
    midpoint, so the one bubble standing out is all that shows it: a person decides.
    Rows whose bubbles are all a little grey (a shadow, print, noise) stay as they are,
    and so does a bubble whose place is as grey in every field of its block (a glyph
    printed bolder than the others, which ``without_print`` cannot take off)."""
    typical = _typical_scores(fields, readings)
    out: set[str] = set()
    for f, r in zip(fields, readings, strict=True):
        if r.values or len(r.scores) < 2 or r.confidence >= LONE_LIGHT_BELOW:
            continue
        k = max(range(len(r.scores)), key=r.scores.__getitem__)
        top = r.scores[k]
        second = max(v for i, v in enumerate(r.scores) if i != k)
        usual = typical.get((f.block_name, k), second)
        if top - second >= LONE_LIGHT_GAP and top - usual >= LONE_LIGHT_GAP:
            out.add(r.label)
    return frozenset(out)


def stroked_blanks(fields: Sequence[Field], readings: Sequence[FieldReading]) -> frozenset[str]:
    """The fields read blank in doubt (under REVIEW_BELOW confidence) where two or more
    of their bubbles, not all, stand LONE_LIGHT_GAP or more above the lightest of the
    row, and as far above the same bubble's typical score in its block.

    Ticks and crosses drawn over several choices, or over one and past it onto the
    next, darken a part of each bubble they cross: each under the midpoint, together
    plainly something the student wrote. The thresholds doubt such a field; the
    learned classifier, which never saw a tick, reads each bubble as unmarked with
    certainty. Kept for a person whatever the classifier says (``reader.read_gray``),
    as ``lone_light_marks`` keeps one such bubble."""
    typical = _typical_scores(fields, readings)
    out: set[str] = set()
    for f, r in zip(fields, readings, strict=True):
        if r.values or len(r.scores) < 3 or r.confidence >= REVIEW_BELOW:
            continue
        floor = min(r.scores)
        lifted = [
            k
            for k, v in enumerate(r.scores)
            if v - floor >= LONE_LIGHT_GAP and v - typical.get((f.block_name, k), floor) >= LONE_LIGHT_GAP
        ]
        if 2 <= len(lifted) < len(r.scores):
            out.add(r.label)
    return frozenset(out)


def _typical_scores(fields: Sequence[Field], readings: Sequence[FieldReading]) -> dict[tuple[str, int], float]:
    """Each bubble place's median score over its block's fields (block name, place), where
    the block has MIN_PRINT_SAMPLES fields or more."""
    import numpy as np

    places: dict[tuple[str, int], list[float]] = {}
    for f, r in zip(fields, readings, strict=True):
        for k, v in enumerate(r.scores):
            places.setdefault((f.block_name, k), []).append(v)
    return {place: float(np.median(v)) for place, v in places.items() if len(v) >= MIN_PRINT_SAMPLES}


def marked_round_blanks(
    fields: Sequence[Field],
    readings: Sequence[FieldReading],
    index: Sequence[Sequence[int]],
    *,
    shade: npt.NDArray[np.float64],
    band: npt.NDArray[np.float64],
    ring: npt.NDArray[np.float64],
) -> frozenset[str]:
    """The fields with a bubble read as unmarked that has a mark round it: surroundings
    COVERED_BLANK darker than those of the field's median bubble (``Samples.shade``), an
    outline band CIRCLED_BLANK darker (``Samples.band``), or surroundings SHADED_BLANK
    darker and an outline under HIDDEN_RING of the field's median (``Samples.ring``).

    A mark covers the paper round its bubble only where the bubble is printed larger
    than it was measured: the layout took a bold glyph inside it for its outline, or the
    template's box is far smaller than the print and nothing larger stood out. The
    bubble's middle is then its glyph, as dark as the mark, and the mark shows only round
    it. A student who circles a choice instead of filling it leaves its middle paper and
    darkens the band its outline is printed in. Only a person can say what was meant.
    A shadow or a stain darkens a field's bubbles alike; an overflowing mark darkens one
    side of its neighbour, which the surroundings' high percentile leaves out and which
    moves its band's mean a little. On the real sheets measured (docs/benchmarks.md) no
    bubble read unmarked passes either bar: the darkest band, over about 52,000 such
    bubbles, is 0.22 above its field's; a pencil ring round a printed rectangle, which
    crosses less of its band than of a round outline's, is from about 0.26 up.

    A shade over the whole bubble, its outline and the paper round it (a grey box printed
    over a choice, as some cards print their variant), is the bubble's own paper, so its
    middle reads as blank as any. Its outline no longer shows, which no mark inside a
    bubble or beside it does: of about 53,000 bubbles read unmarked on the real sheets
    measured, one such box was the only one both shaded and outlined that faintly."""
    import numpy as np

    # Fields of one bubble count at a time: the bubbles over either bar, all at once;
    # then, of the few fields with one, whether such a bubble was read as unmarked.
    out = set()
    for numbers, at in _plan(index).sizes:
        if at.shape[1] < 2:
            continue
        over = np.zeros(at.shape, bool)
        for values, bar in ((shade[at], COVERED_BLANK), (band[at], CIRCLED_BLANK)):
            over |= values > np.median(values, axis=1, keepdims=True) + bar
        shaded = shade[at] > np.median(shade[at], axis=1, keepdims=True) + SHADED_BLANK
        over |= shaded & (ring[at] < HIDDEN_RING * np.median(ring[at], axis=1, keepdims=True))
        for k in np.flatnonzero(over.any(axis=1)).tolist():
            n = int(numbers[k])
            read = readings[n].values
            if any(hit and v not in read for v, hit in zip(fields[n].values, over[k].tolist(), strict=True)):
                out.add(readings[n].label)
    return frozenset(out)


def median(values: npt.NDArray[np.float64]) -> float:
    """``float(np.median(values))`` of a non-empty 1-D array of finite values: the same
    one or two middle values (a partition at their ranks), halved as np.median's mean of
    the two does, without np.median's checks and dispatch (most of its cost at these sizes)."""
    import numpy as np

    n = len(values)
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)


@dataclass(frozen=True)
class _Rows:
    """Some fields' bubble positions in the flat arrays as a (fields, most bubbles) matrix."""

    at: npt.NDArray[np.intp]  # a shorter field's row is padded with its first position
    pad: npt.NDArray[np.bool_] | None  # where the padding is; None: no field is shorter
    multi: npt.NDArray[np.intp]  # the rows of the fields with more than one bubble


@dataclass(frozen=True)
class _Plan:
    rows: _Rows  # every field
    #: the fields of one bubble count: their numbers (in template order) and positions.
    sizes: tuple[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]], ...]


def _make_rows(index: Sequence[Sequence[int]]) -> _Rows:
    import numpy as np

    longest = max(len(idx) for idx in index)
    at = np.array([tuple(idx) + (idx[0],) * (longest - len(idx)) for idx in index], np.intp).reshape(-1, longest)
    lengths = np.array([len(idx) for idx in index])
    pad = np.arange(longest)[None, :] >= lengths[:, None]
    for a in (at, pad):
        a.flags.writeable = False
    return _Rows(at, pad if pad.any() else None, np.flatnonzero(lengths > 1))


# index -> its plan; (index, blocks) -> each block's rows. A sheet's index is made anew for
# each fitted template, so these are kept by value (tuples of tuples), for the last few.
_PLANS: dict[tuple[tuple[int, ...], ...], _Plan] = {}
_BLOCKS: dict[tuple[tuple[tuple[int, ...], ...], tuple[str, ...]], tuple[_Rows, ...]] = {}
_KEEP: Final = 16


def _plan(index: Sequence[Sequence[int]]) -> _Plan:
    import numpy as np

    key = tuple(map(tuple, index))
    hit = _PLANS.get(key)
    if hit is not None:
        return hit
    by_size: dict[int, list[int]] = {}
    for k, idx in enumerate(key):
        by_size.setdefault(len(idx), []).append(k)
    sizes = tuple(
        (np.array(ks, np.intp), np.array([key[k] for k in ks], np.intp).reshape(len(ks), m))
        for m, ks in by_size.items()
    )
    plan = _Plan(_make_rows(key), sizes)
    if len(_PLANS) >= _KEEP:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[key] = plan
    return plan


def _block_rows(index: Sequence[Sequence[int]], blocks: Sequence[str]) -> tuple[_Rows, ...]:
    """The rows of each block with at least MIN_PRINT_SAMPLES fields (fewer measure no place)."""
    key = (tuple(map(tuple, index)), tuple(blocks))
    hit = _BLOCKS.get(key)
    if hit is not None:
        return hit
    by_block: dict[str, list[tuple[int, ...]]] = {}
    for idx, name in zip(key[0], key[1], strict=True):
        by_block.setdefault(name, []).append(idx)
    rows = tuple(_make_rows(members) for members in by_block.values() if len(members) >= MIN_PRINT_SAMPLES)
    if len(_BLOCKS) >= _KEEP:
        _BLOCKS.pop(next(iter(_BLOCKS)))
    _BLOCKS[key] = rows
    return rows


def _darkest(v: npt.NDArray[np.float64], rows: _Rows) -> npt.NDArray[np.bool_]:
    """Each multi-bubble field's darkest bubble (the first of equals, as np.argmax), and
    the padding: the (fields, places) cells left out of a place's empty level."""
    import numpy as np

    if rows.pad is None:
        top = v.argmax(axis=1)
        drop = np.zeros(v.shape, bool)
    else:
        top = np.where(rows.pad, -np.inf, v).argmax(axis=1)
        drop = rows.pad.copy()
    drop[rows.multi, top[rows.multi]] = True
    return drop


def read_field(f: Field, fill: Sequence[float], levels: Levels, *, single: bool = False) -> FieldReading:
    """One field read on its own (``read_fields`` of it alone): ``fill`` its bubbles' fills.

    ``single``: the field holds exactly one mark by its nature (a student-ID digit), so
    a lone mark standing clear of an otherwise clean row is that mark even when light."""
    import numpy as np

    return read_fields([f], np.asarray(fill, np.float64), [tuple(range(len(fill)))], levels, 1 if single else 0)[0]


def read_fields(
    fields: Sequence[Field], fill: npt.NDArray[np.float64], index: Sequence[Sequence[int]], levels: Levels, singles: int
) -> list[FieldReading]:
    """``read_field`` of every field (``fill`` the flat fills, ``index`` each field's
    positions in it; the first ``singles`` fields are single-mark fields), the fields of
    one bubble count at once as a (fields, bubbles) matrix.

    The same float64 operations on the same values in the same order as ``read_field``
    (elementwise numpy arithmetic is the IEEE arithmetic Python floats do; a row's max and
    min are exact), so every score and confidence is its float; the stored values are
    rounded by Python's round() as there. Fills are finite (sample.py clips them).
    """
    import numpy as np

    span = levels.mark - levels.empty
    s_all = (np.asarray(fill, np.float64) - levels.empty) / span
    readings: dict[int, FieldReading] = {}
    for numbers, at in _plan(index).sizes:
        s = s_all[at]
        n, m = s.shape
        rows = np.arange(n)
        marked = s >= 0.5
        cert = np.minimum(1.0, np.abs(s - 0.5) / 0.5)
        top = s.argmax(axis=1)
        best = s[rows, top]
        if m > 1:
            others = s.copy()
            others[rows, top] = -np.inf
            rest = others.max(axis=1)
            lone = (best >= SINGLE_MIN) & (rest <= SINGLE_REST) & (best - rest >= SINGLE_GAP)
            single = numbers < singles
            one = lone & single
            cert[rows[one], top[one]] = np.maximum(
                cert[rows[one], top[one]], np.minimum(1.0, 0.5 + (best[one] - rest[one] - SINGLE_GAP))
            )
            # A single-mark field's lone bubble, or a question's below the midpoint.
            only = one | (lone & ~single & ~marked.any(axis=1))
            marked[only] = False
            marked[rows[only], top[only]] = True
        else:
            rest = np.zeros(n)
        clear = best >= 0.75
        if clear.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                lift = np.minimum(1.0, 1 - s / (0.8 * best)[:, None])
            cert = np.where(clear[:, None] & (s < 0.5), np.maximum(cert, lift), cert)
        alone = (np.count_nonzero(marked, axis=1) == 1) & (rest <= LONE_REST)
        cert[rows[alone], top[alone]] = np.maximum(cert[rows[alone], top[alone]], np.minimum(1.0, best[alone] - 0.1))
        confidence = np.maximum(0.0, cert.min(axis=1))
        if levels.references < MIN_REFERENCES:
            # Almost nothing on this sheet is marked, so its mark level is a guess.
            confidence = np.where(best >= 0.25, np.minimum(confidence, REVIEW_BELOW / 2), confidence)
        for k, row, picks, c in zip(numbers.tolist(), s.tolist(), marked.tolist(), confidence.tolist(), strict=True):
            f = fields[k]
            scores = tuple(round(v, 3) for v in row)
            readings[k] = FieldReading(f.label, tuple(compress(f.values, picks)), scores, round(c, 3), c < REVIEW_BELOW)
    return [readings[k] for k in range(len(fields))]


def combine_field(f: Field, reading: FieldReading, probs: Sequence[float], *, single: bool = False) -> FieldReading:
    """Join a threshold reading with the classifier's P(marked) for the same bubbles.

    ``single`` as for ``read_field``. A question's answer read from a lone bubble short of
    the midpoint stays with a person even where the classifier agrees: a blank is a valid
    answer, and both readers see the same half-filled bubble. So does a field of several
    marks the thresholds doubted: the classifier takes any stroke of ink for a mark, and
    beside a full mark a small scribble or a stroke through a bubble is as often the
    student cancelling it as a second answer."""
    marked = classifier_marks(f, probs)
    sure = min((abs(2 * p - 1) for p in probs), default=0.0)
    if marked != reading.values:
        confidence = min(reading.confidence, REVIEW_BELOW / 2)
        return replace(reading, confidence=round(confidence, 3), review=True, classifier="disagree")
    if sure < CLASSIFIER_SURE:
        return replace(reading, classifier="unsure")
    if not single and any(p >= 0.5 and v < 0.5 for p, v in zip(probs, reading.scores, strict=True)):
        return replace(reading, classifier="agree")
    if reading.review and len(reading.values) > 1:
        return replace(reading, classifier="agree")
    confidence = max(reading.confidence, sure)
    verdict = "lifted" if reading.review else "agree"
    return replace(reading, confidence=round(confidence, 3), review=confidence < REVIEW_BELOW, classifier=verdict)


def classifier_marks(f: Field, probs: Sequence[float]) -> tuple[str, ...]:
    """The values the classifier reads as marked (P >= 0.5), in template order."""
    return tuple(f.values[i] for i, p in enumerate(probs) if p >= 0.5)


def classifier_fits(
    fields: Sequence[Field], readings: Sequence[FieldReading], probs: Sequence[Sequence[float]]
) -> bool:
    """Whether the classifier reads this sheet's clear fields as the thresholds do.

    A clear field is one the thresholds read with confidence at least CLASSIFIER_SURE
    (every bubble within a tenth of the way from its level). The classifier was made to
    settle the doubtful fields; on the clear ones its readings are a check of whether it
    sees this sheet's print as it saw its training sheets. It fails that check when it
    contradicts more than OFF_SHEET_SHARE of them, and at least OFF_SHEET_MIN.
    """
    clear = [
        classifier_marks(f, p) != r.values
        for f, r, p in zip(fields, readings, probs, strict=True)
        if r.confidence >= CLASSIFIER_SURE
    ]
    against = sum(clear)
    return not (against >= OFF_SHEET_MIN and against > OFF_SHEET_SHARE * len(clear))
