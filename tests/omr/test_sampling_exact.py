"""The bubble sampler's and the wrong-layout guard's shortcuts give exactly what the plain
computations they replace give (workers/omr/sample.py, workers/omr/reader.py), and the
sampler's reach depends on the sheet alone."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from workers.omr.align import as_gray
from workers.omr.reader import _erase_ellipses
from workers.omr.sample import _as_grey, _channel_sums, _layout, _percentile_rows
from workers.omr.template import DEFAULT_TEMPLATE, Field, Template, load_template


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


def _moved(template: Template, rng: np.random.Generator) -> Template:
    """The template as a sheet's layout fit leaves it: each block moved a pixel or two, its
    bubbles measured a little bigger or smaller."""
    moves: dict[str, tuple[float, float]] = {}

    def move(f: Field) -> Field:
        dx, dy = moves.setdefault(f.block, tuple(rng.uniform(-2.5, 2.5, 2).tolist()))
        w, h = template.bubble_size(f)
        k = float(rng.uniform(0.9, 1.1))
        return replace(f, centres=tuple((x + dx, y + dy) for x, y in f.centres), size=(w * k, h * k))

    return replace(
        template,
        id_fields=tuple(move(f) for f in template.id_fields),
        questions=tuple(move(f) for f in template.questions),
    )


def test_how_far_a_bubble_is_sampled_depends_on_the_template_not_on_earlier_sheets() -> None:
    # The distance to a bubble's nearest neighbours (any, in its row, in its column) sets
    # how far round it the paper is sampled. It is measured on the template as given, so
    # a sheet reads the same whatever sheets were read before it in the process.
    template = load_template(DEFAULT_TEMPLATE)
    rng = np.random.default_rng(8)
    centres = np.array([c for f in template.fields for c in f.centres], np.float64)
    groups = [g for _ in range(4) for g in _layout(_moved(template, rng), template).groups]
    assert len({(g.rx, g.ry) for g in groups}) > 4  # the sheets' bubbles measured apart
    for g in groups:
        # The plain all-pairs computation on the template, in this group's radii.
        d = np.abs(centres[g.bubbles][:, None, :] - centres[None, :, :]) / (g.rx, g.ry)
        far = np.hypot(d[..., 0], d[..., 1])
        far[far < 1e-9] = np.inf
        assert g.nearest == far.min()
        assert g.nearest_x == np.where(d[..., 1] < 1, far, np.inf).min()
        assert g.nearest_y == np.where(d[..., 0] < 1, far, np.inf).min()
