"""The sheet's classification done a block (or a bubble count) at a time in numpy gives
exactly what the plain per-field loops give (workers/omr/classify.py): every fill, level,
score and confidence the same float, on random sheets with ties, odd and even counts and
fields of different lengths in one block."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.omr.classify import (
    LONE_REST,
    MIN_CONTRAST,
    MIN_PRINT_SAMPLES,
    MIN_REFERENCES,
    NOISE_SIGMAS,
    REVIEW_BELOW,
    SINGLE_GAP,
    SINGLE_MIN,
    SINGLE_REST,
    FieldReading,
    Levels,
    median,
    read_field,
    read_fields,
    sheet_levels,
    without_print,
)
from workers.omr.template import Field


def _without_print(fill: np.ndarray, index: Sequence[Sequence[int]], blocks: Sequence[str]) -> np.ndarray:
    out = np.array(fill, np.float64, copy=True)
    by_block: dict[str, list[int]] = {}
    for k, name in enumerate(blocks):
        by_block.setdefault(name, []).append(k)
    for members in by_block.values():
        places: dict[int, list[float]] = {}
        for k in members:
            idx = list(index[k])
            top = idx[int(np.argmax(fill[idx]))] if len(idx) > 1 else -1
            for i, j in enumerate(idx):
                if j != top:
                    places.setdefault(i, []).append(float(fill[j]))
        level = {i: float(np.median(v)) for i, v in places.items() if len(v) >= MIN_PRINT_SAMPLES}
        if len(level) < 2:
            continue
        middle = float(np.median(list(level.values())))
        for k in members:
            for i, j in enumerate(index[k]):
                if i in level:
                    out[j] -= level[i] - middle
    return out


def _sheet_levels(fill: np.ndarray, index: Sequence[Sequence[int]]) -> Levels:
    tops = np.array([fill[list(idx)].max() for idx in index])
    rest = np.ones(len(fill), bool)
    for idx in index:
        if len(idx) > 1:
            rest[idx[int(np.argmax(fill[list(idx)]))]] = False
    pool = fill[rest] if rest.any() else fill
    empty = float(np.median(pool))
    noise = max(float(1.4826 * np.median(np.abs(pool - empty))), 0.004)
    refs = tops[tops > empty + NOISE_SIGMAS * noise]
    mark = float(np.median(refs)) if refs.size else empty + 2 * NOISE_SIGMAS * noise
    return Levels(empty, max(mark, empty + MIN_CONTRAST), noise, int(refs.size))


def _sheet(rng: np.random.Generator) -> tuple[np.ndarray, tuple[tuple[int, ...], ...], list[str], list[Field]]:
    """A random sheet: blocks of fields, most of one length, some shorter or longer (or of
    one bubble), fills on a coarse grid (ties) or continuous, a few marked dark."""
    index: list[tuple[int, ...]] = []
    blocks: list[str] = []
    fields: list[Field] = []
    pos = 0
    for b in range(int(rng.integers(1, 5))):
        length = int(rng.integers(1, 11))
        for q in range(int(rng.integers(1, 14))):
            m = length if rng.random() < 0.8 else int(rng.integers(1, 11))
            index.append(tuple(range(pos, pos + m)))
            pos += m
            blocks.append(f"b{b}" if rng.random() < 0.95 else f"field:{b}.{q}")
            values = tuple(chr(65 + i) for i in range(m))
            centres = tuple((10.0 * i, 10.0 * q) for i in range(m))
            fields.append(Field(f"f{len(fields)}", values, centres, block=f"b{b}"))
    order = rng.permutation(len(index))  # fields of a block need not be together
    index = [index[k] for k in order]
    blocks = [blocks[k] for k in order]
    fields = [fields[k] for k in order]
    # Half the sheets on a coarse grid: many equal fills.
    fill = rng.integers(0, 6, pos) / 20 if rng.random() < 0.5 else rng.normal(0.1, 0.03, pos)
    marks = rng.random(pos) < rng.choice([0.0, 0.05, 0.2])
    fill[marks] += rng.uniform(0.1, 0.8, int(marks.sum()))
    if rng.random() < 0.3:
        fill = np.round(fill, 2)
    return fill, tuple(index), blocks, fields


def test_median_is_numpys() -> None:
    rng = np.random.default_rng(11)
    for n in range(1, 40):
        for values in (rng.normal(size=n), rng.integers(0, 3, n) / 7):
            assert median(values) == float(np.median(values))


def test_without_print_and_sheet_levels_are_the_loops() -> None:
    rng = np.random.default_rng(12)
    for _ in range(400):
        fill, index, blocks, _ = _sheet(rng)
        clean = without_print(fill, index, blocks)
        assert clean.dtype == np.float64
        assert clean.tobytes() == _without_print(fill, index, blocks).tobytes()
        assert sheet_levels(clean, index) == _sheet_levels(clean, index)
        assert sheet_levels(fill, [list(idx) for idx in index]) == _sheet_levels(fill, index)


def _read_field(f: Field, fill: Sequence[float], levels: Levels, *, single: bool = False) -> FieldReading:
    """The rules field by field, in plain Python: what ``read_fields`` must give."""
    span = levels.mark - levels.empty
    s = [(v - levels.empty) / span for v in fill]
    marked = [i for i, v in enumerate(s) if v >= 0.5]
    cert = [min(1.0, abs(v - 0.5) / 0.5) for v in s]
    top = max(range(len(s)), key=s.__getitem__)
    if len(s) > 1:
        rest = max(v for i, v in enumerate(s) if i != top)
        lone = s[top] >= SINGLE_MIN and rest <= SINGLE_REST and s[top] - rest >= SINGLE_GAP
        if lone and single:
            marked = [top]
            cert[top] = max(cert[top], min(1.0, 0.5 + (s[top] - rest - SINGLE_GAP)))
        elif lone and not marked:
            # Its certainty stays that of a bubble short of the midpoint: under REVIEW_BELOW.
            marked = [top]
    if s[top] >= 0.75:
        for i, v in enumerate(s):
            if v < 0.5:
                cert[i] = max(cert[i], min(1.0, 1 - v / (0.8 * s[top])))
    if len(marked) == 1:
        rest = max((v for i, v in enumerate(s) if i != top), default=0.0)
        if rest <= LONE_REST:
            cert[top] = max(cert[top], min(1.0, s[top] - 0.1))
    confidence = max(0.0, min(cert))
    if levels.references < MIN_REFERENCES and max(s) >= 0.25:
        # Almost nothing on this sheet is marked, so its mark level is a guess.
        confidence = min(confidence, REVIEW_BELOW / 2)
    return FieldReading(
        f.label,
        tuple(f.values[i] for i in marked),
        tuple(round(v, 3) for v in s),
        round(confidence, 3),
        confidence < REVIEW_BELOW,
    )


def test_read_fields_is_the_rules_field_by_field() -> None:
    rng = np.random.default_rng(13)
    for _ in range(400):
        fill, index, blocks, fields = _sheet(rng)
        clean = without_print(fill, index, blocks)
        levels = sheet_levels(clean, index)
        if rng.random() < 0.3:
            # Hand-made levels: few references, marks near the thresholds.
            empty, mark = float(rng.choice([0.0, 0.1])), float(rng.choice([0.35, 0.5]))
            levels = Levels(empty, mark, 0.01, int(rng.integers(0, 5)))
        singles = int(rng.integers(0, len(fields) + 1))
        values = clean.tolist()
        expected = [
            _read_field(f, [values[i] for i in idx], levels, single=k < singles)
            for k, (f, idx) in enumerate(zip(fields, index, strict=True))
        ]
        got = read_fields(fields, clean, index, levels, singles)
        assert got == expected
        # The same floats, not merely equal ones (-0.0 and 0.0 print differently).
        assert [repr(r) for r in got] == [repr(r) for r in expected]
        # One field read on its own is the same reading.
        k = int(rng.integers(0, len(fields)))
        alone = read_field(fields[k], [values[i] for i in index[k]], levels, single=k < singles)
        assert repr(alone) == repr(expected[k])
