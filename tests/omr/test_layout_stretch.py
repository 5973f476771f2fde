"""The block's stretch is looked for line by line only where its two halves disagree: the
quick look must pass every stretch the line-by-line fit would find on to it.

A synthetic block (5 columns by 4 rows of soft rings at half size, as the block fit sees
them) is printed 1.5 % narrower .. 1.5 % wider than its template along one axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import workers.omr.layout as layout
from workers.omr.layout import _halves, _halves_agree, _line_sums, _lines, _outlines, _OutlineSearch, _stretch

SCALE = 0.5
RADIUS = 10.0
GAP = 40.0


def _block(stretch: float, axis: int, seed: int) -> tuple[np.ndarray, layout._Lines, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(5) * GAP, np.arange(4) * 1.2 * GAP)
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    hx = hy = 17
    yy, xx = np.mgrid[-hy : hy + 1, -hx : hx + 1].astype(np.float32)
    mid = centres.mean(axis=0)
    patches = []
    for c in centres:
        shift = (stretch - 1) * (c[axis] - mid[axis]) * SCALE
        sx, sy = (shift, 0.0) if axis == 0 else (0.0, shift)
        d = np.hypot(xx - sx, yy - sy) / (RADIUS * SCALE)
        patches.append(0.6 * np.exp(-(((d - 1) / 0.12) ** 2)) + rng.normal(0, 0.01, xx.shape))
    look = _OutlineSearch(
        hx,
        hy,
        (RADIUS * SCALE, RADIUS * SCALE),
        (15 * SCALE, 15 * SCALE),
        (18 * SCALE, 18 * SCALE),
        ((0.5 * GAP - 1) * SCALE, (0.6 * GAP - 1) * SCALE),
    )
    params: dict[str, Any] = {"axis": axis, "s": SCALE, "look": look}
    return np.asarray(patches, np.float32), _lines(centres, axis), params


def _agree(patches: np.ndarray, lines: layout._Lines, params: dict[str, Any]) -> bool:
    low, high = _outlines(_halves(_line_sums(patches, lines), lines), params["look"])
    return _halves_agree(lines, params["axis"], params["s"], low, high)


@pytest.mark.parametrize("axis", [0, 1])
def test_the_halves_pass_on_every_stretch_the_lines_would_find(axis: int) -> None:
    passed_on = 0
    for seed in range(3):
        for stretch in np.linspace(0.985, 1.015, 31):
            patches, lines, params = _block(float(stretch), axis, seed)
            agree = _agree(patches, lines, params)
            fitted = _stretch(_line_sums(patches, lines), lines, **params)
            assert not (agree and fitted != 1.0), (stretch, seed, fitted)
            passed_on += not agree
    # ... and it still saves the line-by-line fit where the print matches the template.
    assert 0 < passed_on < 3 * 31
    patches, lines, params = _block(1.0, axis, 0)
    assert _agree(patches, lines, params)
