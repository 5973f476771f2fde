"""The 90th percentile of a sample of grey levels, as ``np.percentile`` gives it, from a
histogram.

The paper level round a block of bubbles (layout.py) or a corner marker
(omrchecker_align.py) is the 90th percentile of its grey levels. ``np.percentile`` sorts
the sample for it; what it returns depends only on the sample's size and its sorted
values next to the percentile's place, which a histogram of the 256 levels gives at a
fraction of the cost. Those few values, held on either side, are passed to
``np.percentile`` itself, once for each such set (the sheets of one card show few), so the
level is numpy's to the last bit.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def percentile_90(sample: npt.NDArray[np.uint8], *, float32: bool = False) -> float:
    """``float(np.percentile(sample, 90))``; with ``float32``, that of ``sample`` as float32
    (numpy then interpolates in float32)."""
    import numpy as np

    n = sample.size
    cumulative = np.cumsum(np.bincount(sample.ravel(), minlength=256))
    # Sorted places from one before the percentile's lower neighbour to its upper one's
    # next, so that a place computed a hair off numpy's is still covered.
    place = int(0.9 * (n - 1))
    places = [min(max(place + k, 0), n - 1) for k in (-1, 0, 1, 2)]
    values = np.searchsorted(cumulative, places, side="right").tolist()
    return _percentile_of(n, tuple(zip(places, values, strict=True)), float32)


@functools.lru_cache(maxsize=4096)
def _percentile_of(n: int, sorted_at: tuple[tuple[int, int], ...], float32: bool) -> float:
    """The 90th percentile of n grey levels whose sorted values at a few places around
    it are given: those values, held on either side, are as good as the sample."""
    import numpy as np

    levels = np.empty(n, np.float32) if float32 else np.empty(n, np.uint8)
    start = 0
    for place, value in sorted_at:
        levels[start : place + 1] = value
        start = place + 1
    levels[start:] = sorted_at[-1][1]
    return float(np.percentile(levels, 90))
