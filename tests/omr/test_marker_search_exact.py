"""The marker search's shortcuts give what the plain computation gives, bit for bit: the
best four matches chosen with bounds, a patch's spread from OpenCV next to the threshold
it is compared with (the paper level from a histogram: tests/omr/test_percentile.py)."""

from __future__ import annotations

import itertools
import random

import numpy as np

from workers.omr import omrchecker_align as oa


def _every_four(
    peaks: list[list[tuple[float, float, float]]], width: float, closure_cost: float, threshold: float
) -> tuple[float, list[tuple[float, float]]] | None:
    """Every set of one match per quadrant scored, the first best kept."""
    best: tuple[float, list[tuple[float, float]]] | None = None
    for four in itertools.product(*peaks):
        if min(p[0] for p in four) < threshold:
            continue
        if closure_cost == 0 and not oa._sheet_corners([(p[1], p[2]) for p in four], oa.PHOTO_SIDES):
            continue
        (_, x0, y0), (_, x1, y1), (_, x2, y2), (_, x3, y3) = four
        closure = ((x0 + x2 - x1 - x3) ** 2 + (y0 + y2 - y1 - y3) ** 2) ** 0.5 / max(width, 1.0)
        total = sum(p[0] for p in four) - closure_cost * closure
        if best is None or total > best[0]:
            best = (total, [(p[1], p[2]) for p in four])
    return best


def test_the_best_four_are_those_every_set_scored_gives() -> None:
    rng = random.Random(3)
    for _ in range(3000):
        # Repeated scores and places make ties, which the first set in order must win.
        peaks = [
            [
                (
                    rng.choice([rng.uniform(0.3, 1.0), 0.5, 0.7]),
                    rng.choice([rng.uniform(0, 400), 20.0]),
                    rng.uniform(0, 400),
                )
                for _ in range(rng.randint(0, 4))
            ]
            for _ in range(4)
        ]
        width, cost, threshold = rng.uniform(0.5, 30), rng.choice([0.0, 0.1]), rng.choice([0.45, 0.6])
        assert oa._best_four(peaks, width, cost, threshold) == _every_four(peaks, width, cost, threshold)


def test_the_spread_test_agrees_with_numpys_std() -> None:
    rng = np.random.default_rng(9)
    for _ in range(300):
        patch = np.clip(
            rng.normal(200, rng.uniform(0, 20), (int(rng.integers(3, 30)), int(rng.integers(3, 30)))), 0, 255
        )
        values = patch.astype(np.float32)
        spread = float(values.std())
        for limit in (1.0, oa.MIN_MARKER_CONTRAST, spread, float(np.nextafter(np.float32(spread), 0))):
            assert oa._spread_under(values, limit) == (spread < limit)
