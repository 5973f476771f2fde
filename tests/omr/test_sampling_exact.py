"""The bubble sampler's and the wrong-layout guard's shortcuts give exactly what the plain
computations they replace give (workers/omr/sample.py, workers/omr/reader.py)."""

from __future__ import annotations

import cv2
import numpy as np

from workers.omr.align import as_gray
from workers.omr.reader import _erase_ellipses
from workers.omr.sample import _as_grey, _channel_sums, _percentile_rows


def test_row_percentiles_are_numpys() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 139, 364, 692):
        values = rng.integers(0, 256, (25, n), dtype=np.uint8)
        for q in (10, 80):
            # The two order statistics either side of the rank, interpolated as before.
            pos = q / 100 * (n - 1)
            lo, hi = int(pos), min(int(pos) + 1, n - 1)
            ordered = np.sort(values, axis=1).astype(np.float64)
            expected = ordered[:, lo] + (pos - lo) * (ordered[:, hi] - ordered[:, lo])
            assert np.array_equal(_percentile_rows(values, q), expected)
            assert np.allclose(_percentile_rows(values, q), np.percentile(values, q, axis=1), rtol=0, atol=1e-9)


def test_grey_of_samples_is_the_pictures_grey() -> None:
    # cv2's BGR to grey is pixel by pixel: converting the samples is converting the picture.
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)
    ys, xs = rng.integers(0, 61, (37, 29)), rng.integers(0, 83, (37, 29))
    assert np.array_equal(_as_grey(image[ys, xs]), as_gray(image)[ys, xs])


def test_channel_sums_are_exact() -> None:
    rng = np.random.default_rng(5)
    values = rng.integers(200, 256, (40, 2000, 3), dtype=np.uint8)
    assert np.array_equal(_channel_sums(values[::3, 100:1900]), values[::3, 100:1900].sum(axis=1))


def test_ellipses_erased_as_cv2_draws_them() -> None:
    rng = np.random.default_rng(6)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(40, 300, 2))
        n = int(rng.integers(1, 40))
        ellipses = np.stack(
            [
                rng.integers(-10, w + 10, n),
                rng.integers(-10, h + 10, n),
                rng.integers(0, 30, n),
                rng.integers(0, 30, n),
            ],
            axis=1,
        ).astype(np.intp)
        picture = rng.integers(0, 2, (h, w)).astype(np.uint8) * 255
        drawn = picture.copy()
        for x, y, ax, ay in ellipses.tolist():
            cv2.ellipse(drawn, (x, y), (ax, ay), 0, 0, 360, 0, -1)
        _erase_ellipses(picture, ellipses)
        assert np.array_equal(picture, drawn)
