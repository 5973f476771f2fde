"""Measure every bubble through the template-to-image transform.

Rather than warping the whole page, the few hundred thousand sample points of the
bubbles are mapped into the scan and read there (nearest pixel; ``cv2.perspectiveTransform``
and ``cv2.remap`` do the mapping and the gather in C). Per bubble it returns:

- ``fill``: how dark the middle of the bubble is, 0 = paper, 1 = marker ink;
- ``ring``: the darkness of the darkest tenth of a band round the printed outline, or of
  the bubble's middle, whichever is darker (is a bubble printed there at all? an outline,
  or only the value printed where the bubble is).

Paper is measured just outside each bubble, so a shadow or uneven scan lighting does
not read as a mark.

What depends on the template alone (bubble centres, the field index, the smallest
bubble gap) is computed once per template object and kept.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from workers.omr.align import Alignment
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: the paper level of a bubble is this percentile of its surroundings.
PAPER_PERCENTILE: Final = 80
#: dropout ink: the fill is read on the colour channel where the printed outlines are
#: faintest when they are at most this share of their darkness in grey ...
DROPOUT_SHARE: Final = 0.5
#: ... and the outlines show in grey at all (0 paper .. 1 ink).
DROPOUT_MIN_PRINT: Final = 0.05
#: ... judged on about this many bubbles of each size.
DROPOUT_PROBES: Final = 40
#: the printed outline is looked for within this share of the radii either side of it ...
RING_BAND: Final = 0.2
#: ... as the darkness of the darkest this share of that band.
RING_SHARE: Final = 0.1
#: the middle of a bubble and the paper round it are sampled on a grid of about this many
#: points across the bubble's shorter side (a mean over ~70 points is as good as over all).
AREA_POINTS: Final = 12
#: the fill is the mean over the bubble's middle out to this share of its radii: the
#: inside of the outline, so a mark filled along the edge and light in its centre counts.
FILL_REACH: Final = 0.8
#: a line across a bubble is looked for this many radii beside it (a mark does not reach
#: that far), or half way to the next bubble when that is closer ...
BESIDE: Final = 2.0
#: ... and counted when it crosses at most this share of the bubble's rows (columns).
LINE_WIDTH: Final = 0.4
#: ... and taken off its fill up to this darkness (a heavy scribble
#: past the bubble on both sides is not mistaken for one beyond that).
MAX_LINE: Final = 0.35
_CACHE_SIZE: Final = 16


@dataclass(frozen=True)
class Samples:
    fill: npt.NDArray[np.float64]  # one per bubble, in template.fields order
    ring: npt.NDArray[np.float64]
    #: (field index, bubble index) -> position in the flat arrays
    index: tuple[tuple[int, ...], ...]
    #: the colour channel (0 blue, 1 green, 2 red) the fill was read on; -1: grey.
    channel: int = -1


@dataclass(frozen=True)
class _Group:
    """Bubbles of one size: their positions in the flat arrays and their sampling offsets."""

    bubbles: npt.NDArray[np.intp]
    rx: float
    ry: float
    #: the nearest other bubble's distance in units of this group's radii ...
    nearest: float
    #: ... and along each axis, to a bubble in the same row (column).
    nearest_x: float
    nearest_y: float


@dataclass(frozen=True)
class _Layout:
    centres: npt.NDArray[np.float64]  # (bubbles, 2)
    index: tuple[tuple[int, ...], ...]
    groups: tuple[_Group, ...]


# id(template) -> (template, layout); the template is kept so its id stays its own.
_LAYOUTS: dict[int, tuple[Template, _Layout]] = {}
# (template name, bubbles, first and count of the group, radii) -> nearest distances.
_NEAREST: dict[tuple[str, int, int, int, int, int], tuple[float, float, float]] = {}


def _layout(template: Template) -> _Layout:
    hit = _LAYOUTS.get(id(template))
    if hit is not None and hit[0] is template:
        return hit[1]
    import numpy as np

    centres = np.array([c for f in template.fields for c in f.centres], np.float64)
    index: list[tuple[int, ...]] = []
    sizes: dict[tuple[float, float], list[int]] = {}
    pos = 0
    for f in template.fields:
        index.append(tuple(range(pos, pos + len(f.centres))))
        w, h = template.bubble_size(f)
        sizes.setdefault((round(w / 2, 1), round(h / 2, 1)), []).extend(range(pos, pos + len(f.centres)))
        pos += len(f.centres)
    groups = []
    for (rx, ry), members in sizes.items():
        # The same sheet read again (its blocks moved a pixel or two, its bubbles measured
        # a little bigger or smaller) has its bubbles as far apart: reuse the distances.
        key = (template.name, len(centres), members[0], len(members), round(rx), round(ry))
        known = _NEAREST.get(key)
        if known is not None:
            groups.append(_Group(np.array(members, np.intp), rx, ry, *known))
            continue
        # Distances in units of this group's radii, to every bubble of the sheet.
        mine = centres[members] / (rx, ry)
        every = centres / (rx, ry)
        nearest = near_x = near_y = np.inf
        for start in range(0, len(mine), 256):
            dx, dy = np.abs(mine[start : start + 256, None, :] - every[None, :, :]).transpose(2, 0, 1)
            d = np.hypot(dx, dy)
            d[d < 1e-9] = np.inf
            nearest = min(nearest, float(d.min()))
            near_x = min(near_x, float(np.where(dy < 1, d, np.inf).min()))
            near_y = min(near_y, float(np.where(dx < 1, d, np.inf).min()))
        if len(_NEAREST) >= 4 * _CACHE_SIZE:
            _NEAREST.pop(next(iter(_NEAREST)))
        _NEAREST[key] = (nearest, near_x, near_y)
        groups.append(_Group(np.array(members, np.intp), rx, ry, nearest, near_x, near_y))
    layout = _Layout(centres, tuple(index), tuple(groups))
    if len(_LAYOUTS) >= _CACHE_SIZE:
        _LAYOUTS.pop(next(iter(_LAYOUTS)))
    _LAYOUTS[id(template)] = (template, layout)
    return layout


@functools.lru_cache(maxsize=256)
def _offsets(rx: float, ry: float, d_in: float, d_out: float, step: float) -> npt.NDArray[np.float32]:
    """Template-pixel offsets whose distance in units of the radii (rx, ry) lies in [d_in, d_out]."""
    import numpy as np

    nx, ny = int(d_out * rx / step) + 1, int(d_out * ry / step) + 1
    xx, yy = np.meshgrid(np.arange(-nx, nx + 1) * step, np.arange(-ny, ny + 1) * step)
    d = np.hypot(xx / rx, yy / ry)
    keep = (d >= d_in) & (d <= d_out)
    offs = np.stack([xx[keep], yy[keep]], axis=1).astype(np.float32)
    offs.flags.writeable = False
    return offs


@dataclass(frozen=True)
class _Probe:
    """The middle of a bubble sampled on a grid, and beside it along each grid row (left
    and right) and each grid column (above and below), for _line_through."""

    disk: npt.NDArray[np.float32]
    disk_row: npt.NDArray[np.intp]
    disk_col: npt.NDArray[np.intp]
    rows: int
    cols: int
    per_side: int
    #: (side, row, k) flattened: x beside each row, left then right.
    beside_x: npt.NDArray[np.float32]
    #: (side, column, k) flattened: y above then below each column.
    beside_y: npt.NDArray[np.float32]


@functools.lru_cache(maxsize=64)
def _probe(rx: float, ry: float, step: float, far_x: float, far_y: float) -> _Probe:
    import numpy as np

    nx, ny = int(FILL_REACH * rx / step), int(FILL_REACH * ry / step)
    xs, ys = np.arange(-nx, nx + 1) * step, np.arange(-ny, ny + 1) * step
    xx, yy = np.meshgrid(xs, ys)
    keep = np.hypot(xx / rx, yy / ry) <= FILL_REACH
    row, col = np.nonzero(keep)
    disk = np.stack([xx[keep], yy[keep]], axis=1).astype(np.float32)
    k = 3
    reach_x = np.linspace(max(1.3, far_x - 0.2), max(1.3, far_x), k) * rx
    reach_y = np.linspace(max(1.3, far_y - 0.2), max(1.3, far_y), k) * ry
    beside_x = np.array([(sign * d, y) for sign in (-1, 1) for y in ys for d in reach_x], np.float32).reshape(-1, 2)
    beside_y = np.array([(x, sign * d) for sign in (-1, 1) for x in xs for d in reach_y], np.float32).reshape(-1, 2)
    for a in (disk, beside_x, beside_y):
        a.flags.writeable = False
    return _Probe(disk, row.astype(np.intp), col.astype(np.intp), len(ys), len(xs), k, beside_x, beside_y)


def sample(
    image: npt.NDArray[np.uint8],
    template: Template,
    alignment: Alignment,
    gray: npt.NDArray[np.uint8] | None = None,
) -> Samples:
    """Measure every bubble of ``template`` (its centres and sizes as they are printed).

    ``image`` is greyscale or BGR (``gray``: its greyscale, when the caller has it). On a
    colour picture the outlines are measured on grey (where print of any colour shows)
    and the fill on the channel where the printed outlines are faintest, when that channel
    all but drops them: a sheet printed in red or pink dropout ink is read on red, where
    the print vanishes and pencil, black and blue pen stay dark.
    """
    import numpy as np

    from workers.omr.align import as_gray

    layout = _layout(template)
    n = len(layout.centres)
    grey_img = gray if gray is not None else as_gray(image)
    # Sample about once per image pixel, never much finer than one per template pixel.
    step = max(0.5, min(1.0, 1.0 / alignment.scale))
    specs = []
    for g in layout.groups:
        r = max(g.rx, g.ry)
        # The outline is looked for in a band round the measured size: a bubble printed a
        # pixel bigger or off its block's grid still shows its outline there.
        ring_w = max(RING_BAND, 1.5 / min(g.rx, g.ry))
        outer_hi = max(min(1.6, g.nearest / 2 - 1 / r), 1.28 + 2 / r)
        # Areas on a grid of about AREA_POINTS across the bubble (averages need no more);
        # the thin outline at every pixel. Beside the bubble: out to BESIDE radii, or half
        # way to the next bubble when closer.
        area_step = round(max(step, min(g.rx, g.ry) * 2 / AREA_POINTS) * 4) / 4
        probe = _probe(g.rx, g.ry, area_step, min(BESIDE, g.nearest_x / 2), min(BESIDE, g.nearest_y / 2))
        ring = _offsets(g.rx, g.ry, 1 - ring_w, 1 + ring_w, step)
        around = np.concatenate([_offsets(g.rx, g.ry, 1.28, outer_hi, area_step), probe.beside_x, probe.beside_y])
        specs.append((g, probe, ring, around))
    channel = _dropout_channel(image, layout, specs, alignment) if image.ndim == 3 else -1
    marks = grey_img if channel < 0 else _extract(image, channel)
    ink = alignment.ink
    ring_v = np.zeros(n, np.float64)
    fill = np.zeros(n, np.float64)
    for g, probe, ring, around in specs:
        centres = layout.centres[g.bubbles]
        a, b = len(probe.disk), len(probe.disk) + len(ring)
        values = _lookup(grey_img, centres, np.concatenate([probe.disk, ring, around]), alignment.homography)
        grey_paper = _paper(values[:, b:], ink)
        # Print anywhere in the bubble's place: its outline, or what is printed inside it
        # (a digit or letter, on a card that prints no outline at all, only the value).
        ring_v[g.bubbles] = np.maximum(
            _dark_share(values[:, a:b], grey_paper, ink), _dark_share(values[:, :a], grey_paper, ink)
        )
        if marks is not grey_img:
            values = _lookup(marks, centres, np.concatenate([probe.disk, ring, around]), alignment.homography)
        paper = _paper(values[:, b:], ink)
        span = np.maximum(paper - ink, 1.0)
        dark = (paper[:, None] - values.astype(np.float32)) / span[:, None]  # (bubbles, samples)
        beside = dark[:, len(dark[0]) - len(probe.beside_x) - len(probe.beside_y) :]
        fill[g.bubbles] = dark[:, :a].mean(axis=1) - _line_through(beside, probe)
    return Samples(np.clip(fill, -1, 2), np.clip(ring_v, -1, 2), layout.index, channel)


def _dropout_channel(
    image: npt.NDArray[np.uint8], layout: _Layout, specs: list[tuple[_Group, _Probe, Any, Any]], alignment: Alignment
) -> int:
    """The colour channel the fill is read on (-1: grey), from the outlines of a few dozen
    bubbles of each size: the one where they are faintest, when they are at most
    DROPOUT_SHARE of their grey darkness there."""
    import numpy as np

    ink = alignment.ink
    grey_rings: list[float] = []
    by_channel: list[list[float]] = [[], [], []]
    for g, _, ring, around in specs:
        some = g.bubbles[:: max(1, len(g.bubbles) // DROPOUT_PROBES)]
        values = _lookup(image, layout.centres[some], np.concatenate([ring, around]), alignment.homography)
        k = len(ring)
        grey = _to_grey(values)
        grey_rings.extend(_level(grey[:, :k], _paper(grey[:, k:], ink), ink).tolist())
        for c in range(3):
            chan = np.ascontiguousarray(values[:, :, c])
            by_channel[c].extend(_level(chan[:, :k], _paper(chan[:, k:], ink), ink).tolist())
    print_grey = float(np.median(grey_rings))
    faint = [float(np.median(v)) for v in by_channel]
    best = int(np.argmin(faint))
    if print_grey >= DROPOUT_MIN_PRINT and faint[best] <= DROPOUT_SHARE * print_grey:
        return best
    return -1


def _extract(image: npt.NDArray[np.uint8], channel: int) -> npt.NDArray[np.uint8]:
    import cv2
    import numpy as np

    return np.asarray(cv2.extractChannel(image, channel), dtype=np.uint8)


def _line_through(beside: npt.NDArray[np.float64], probe: _Probe) -> npt.NDArray[np.float64]:
    """The darkness a straight line across a bubble (a fold's crease, a scanner streak)
    adds to its middle: the line shows on both sides of the bubble at the same height
    (or above and below it at the same place), a mark does not reach that far.

    Per row of the middle: the lighter of the left and right sides, less that over all
    rows (an even shade is the paper's, taken off already), capped at MAX_LINE; its mean
    over the middle's samples, when it is thin (LINE_WIDTH). The larger of the across and
    down readings is returned.
    """
    import numpy as np

    n = len(beside)
    k = probe.per_side
    nx = len(probe.beside_x)
    out = np.zeros(n, np.float64)
    for part, lines, index in (
        (beside[:, :nx], probe.rows, probe.disk_row),
        (beside[:, nx:], probe.cols, probe.disk_col),
    ):
        sides = part.reshape(n, 2, lines, k).mean(axis=3)  # (bubbles, side, line)
        both = sides.min(axis=1)
        both = np.clip(both - np.median(both, axis=1, keepdims=True), 0, MAX_LINE)
        # A line is thin: across more than LINE_WIDTH of the bubble it is a mark's
        # overflow on both sides (a wide shade is the paper's, taken off already).
        peak = both.max(axis=1, keepdims=True)
        wide = np.mean(both > 0.5 * peak, axis=1) > LINE_WIDTH
        correction = both[:, index].mean(axis=1)
        out = np.maximum(out, np.where(wide, 0.0, correction))
    return out


def _to_grey(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """BGR samples (..., 3) as grey, as cv2.COLOR_BGR2GRAY weighs them."""
    import numpy as np

    grey = values @ np.array([0.114, 0.587, 0.299], np.float32)
    result: npt.NDArray[np.uint8] = np.clip(grey + 0.5, 0, 255).astype(np.uint8)
    return result


def _dark_share(values: npt.NDArray[np.uint8], paper: npt.NDArray[np.float64], ink: float) -> npt.NDArray[np.float64]:
    """How dark the darkest RING_SHARE of each row of ``values`` is (0 paper, 1 ink): an
    outline, thin or light, fills that much of the band it lies in."""
    import numpy as np

    span = np.maximum(paper - ink, 1.0)
    result: npt.NDArray[np.float64] = (paper - _percentile_rows(values, 100 * RING_SHARE)) / span
    return result


def _level(values: npt.NDArray[np.uint8], paper: npt.NDArray[np.float64], ink: float) -> npt.NDArray[np.float64]:
    """How dark the mean of each row of ``values`` is: 0 = its paper, 1 = the markers' ink."""
    import numpy as np

    span = np.maximum(paper - ink, 1.0)
    result: npt.NDArray[np.float64] = (paper - values.mean(axis=1, dtype=np.float64)) / span
    return result


def _paper(values: npt.NDArray[np.uint8], ink: float) -> npt.NDArray[np.float64]:
    """The paper level of each bubble: a high percentile of its surroundings (the band
    round it and the samples further out beside it, clear of a mark that overflows the
    bubble), so a pencil stroke across part of them does not lower it."""
    import numpy as np

    paper = _percentile_rows(values, PAPER_PERCENTILE)
    result: npt.NDArray[np.float64] = np.maximum(paper, ink + 1)
    return result


def _percentile_rows(values: npt.NDArray[np.uint8], q: float) -> npt.NDArray[np.float64]:
    """``np.percentile(values, q, axis=1)`` (linear method) of uint8 rows, from row histograms."""
    import numpy as np

    rows, n = values.shape
    pos = q / 100 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    keys = values + (np.arange(rows, dtype=np.intp) * 256)[:, None]
    cum = np.cumsum(np.bincount(keys.ravel(), minlength=rows * 256).reshape(rows, 256), axis=1)
    # The value of rank k (0-based) is the number of grey levels whose count so far is <= k.
    low = np.count_nonzero(cum <= lo, axis=1).astype(np.float64)
    high = np.count_nonzero(cum <= hi, axis=1).astype(np.float64)
    result: npt.NDArray[np.float64] = low + (pos - lo) * (high - low)
    return result


def _lookup(
    gray: npt.NDArray[np.uint8],
    centres: npt.NDArray[np.float64],
    offs: npt.NDArray[np.float32],
    h: npt.NDArray[np.float64],
) -> npt.NDArray[np.uint8]:
    """Grey values at template points ``centres[i] + offs[j]``: (bubbles, samples), nearest pixel.

    H (c + o) = H c + H[:, :2] o, so each image coordinate is a per-bubble term plus a
    per-offset term, an outer sum of two short vectors.
    """
    import cv2
    import numpy as np

    base = centres @ h[:, :2].T + h[:, 2]  # (bubbles, 3)
    delta = (offs.astype(np.float64) @ h[:, :2].T).astype(np.float32)  # (samples, 3)
    base32 = base.astype(np.float32)
    w = base32[:, 2:3] + delta[None, :, 2]
    map_x = (base32[:, 0:1] + delta[None, :, 0]) / w
    map_y = (base32[:, 1:2] + delta[None, :, 1]) / w
    values: npt.NDArray[np.uint8] = np.asarray(
        cv2.remap(gray, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8
    )
    return values
