"""The outline search takes a block's column (row) pictures together: each must come out as
it would searched on its own, to the last bit (a bubble's place feeds nearest-pixel
lookups, where any rounding difference can move a sample by a pixel)."""

from __future__ import annotations

import numpy as np
import pytest

from workers.omr.layout import _band_mean, _outlines, _OutlineSearch


@pytest.mark.parametrize("seed", range(6))
def test_pictures_searched_together_come_out_as_each_alone(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(2, 16))
        height, width = int(rng.integers(15, 80)), int(rng.integers(15, 80))
        hx, hy = width // 2, height // 2
        # A dark ring (a bubble's outline) about the middle of each picture, off by up to
        # a few pixels and of its own size, on noise: the outlines found differ, and so do
        # the bands their profiles are taken over.
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        rx, ry = float(rng.uniform(2, hx / 2)), float(rng.uniform(2, hy / 2))
        means = rng.normal(0, 0.03, (n, height, width)).astype(np.float32)
        for k in range(n):
            cx, cy = hx + rng.uniform(-2, 2), hy + rng.uniform(-2, 2)
            d = np.hypot((xx - cx) / (rx * rng.uniform(0.8, 1.2)), (yy - cy) / (ry * rng.uniform(0.8, 1.2)))
            means[k] += 0.5 * (np.abs(d - 1) < 0.15)
        reach = (min(rx, hx / 4), min(ry, hy / 4))
        top = (min(1.8 * rx, hx - reach[0] - 2), min(1.8 * ry, hy - reach[1] - 2))
        side = (float(rng.uniform(rx, hx)), float(rng.uniform(ry, hy)))
        look = _OutlineSearch(hx, hy, (rx, ry), reach, top, side)
        together = _outlines(means, look)
        alone = [_outlines(means[k : k + 1], look)[0] for k in range(n)]
        assert together == alone


@pytest.mark.parametrize("band", range(1, 13))
def test_a_band_of_columns_averages_as_summed_pixel_by_pixel(band: int) -> None:
    # _band_mean gathers a band of columns as rows, which np.add.reduce sums one after
    # another, where over the columns themselves it sums a band of PAIRWISE or more
    # pairwise. Each profile must still be the float32 sum over the columns in their own
    # layout (one index per pixel, as the outline search was first written), divided in
    # float64: any other rounding can move an outline's place by a bit.
    rng = np.random.default_rng(band)
    means = rng.normal(0, 1, (7, 33, 29)).astype(np.float32) * rng.uniform(0.01, 10, (7, 1, 29)).astype(np.float32)
    ks = np.array([0, 2, 3, 6])
    lines = np.array([rng.choice(29, band, replace=False) for _ in ks])
    rows = np.arange(means.shape[1])
    total = np.add.reduce(means[ks[:, None, None], rows[None, :, None], lines[:, None, :]], axis=2)
    expected = np.true_divide(total, np.intp(band), out=total, casting="unsafe")
    got = _band_mean(means, 1, ks, lines)
    assert got.dtype == np.float32
    assert np.array_equal(got, expected)


def test_a_letter_inside_the_bubble_is_not_measured_as_its_outline() -> None:
    # A small picture of a bubble with a bold letter printed inside (OMRChecker's Adrian
    # sheet shrunk to 341 px): the letter's strokes, half the bubble's size across and far
    # darker than its thin outline, outscore the outline under SIZE_RANGE's floor, where
    # the whole-pixel radii tried used to start.
    size, radius = 40, 6.25
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = np.hypot(xx - size // 2, yy - size // 2)
    mean = np.zeros((1, size, size), np.float32)
    mean[0] += 0.25 * (np.abs(d - radius) < 0.7)  # the thin printed outline
    mean[0] += 0.9 * (np.abs(d - 3.0) < 0.8)  # the letter's strokes
    look = _OutlineSearch(size // 2, size // 2, (radius, radius), (2.0, 2.0), (1.8 * radius,) * 2, (9.0, 9.0))
    found = _outlines(mean, look)[0]
    assert found is None or min(found[1]) >= 0.6 * radius
