"""The paper level from a histogram is numpy's percentile of the sample itself, bit for
bit, whether numpy would interpolate in the sample's own type or in float32."""

from __future__ import annotations

import numpy as np
import pytest

from workers.omr.percentile import percentile_90


@pytest.mark.parametrize("float32", [False, True])
def test_the_90th_percentile_from_a_histogram_is_numpys(float32: bool) -> None:
    rng = np.random.default_rng(5)
    for i in range(600):
        h, w = int(rng.integers(1, 90)), int(rng.integers(1, 90))
        picture = rng.integers(0, 256, (h + 4, w + 6)).astype(np.uint8)
        spread = rng.choice([0.0, 2.0, rng.uniform(0, 50)])  # flat paper makes ties
        picture[2 : 2 + h, 3 : 3 + w] = np.clip(rng.normal(rng.uniform(90, 250), spread, (h, w)), 0, 255)
        cut = picture[2 : 2 + h, 3 : 3 + w]  # a view, as the callers pass it
        step = picture[::3, ::3]  # every third pixel, as the layout fit samples the paper
        for sample in (cut, step):
            want = float(np.percentile(sample.astype(np.float32) if float32 else sample, 90))
            assert percentile_90(sample, float32=float32) == want, i
