"""Measure every bubble through the template-to-image transform.

Rather than warping the whole page, the few hundred thousand sample points of the
bubbles are mapped into the scan and read there (nearest pixel; ``cv2.perspectiveTransform``
and ``cv2.remap`` do the mapping and the gather in C). Per bubble it returns:

- ``fill``: how dark the middle of the bubble is, 0 = paper, 1 = marker ink;
- ``ring``: the darkness of the darkest tenth of a band round the printed outline, or of
  the bubble's middle, whichever is darker (is a bubble printed there at all? an outline,
  or only the value printed where the bubble is);
- ``shade`` and ``band``: how much darker than its group's paper the bubble's
  surroundings are, and the mean darkness of its outline's band (a mark round a bubble
  read as blank: ``classify.marked_round_blanks``).

Paper is measured just outside each bubble, so a shadow or uneven scan lighting does
not read as a mark; a bubble printed white on a shaded row is its own paper.

The picture is read once: each sample point is mapped and gathered a single time, in
colour when the picture has it; its grey (as cv2 makes it, pixel by pixel), the colour
channels the dropout-ink check compares with that grey and the channel the fill is then
read on all come from those same samples.

What depends on the template alone (bubble centres, the field index, the smallest
bubble gap) is computed once per template object and kept.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from workers.omr.align import Alignment
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: the paper level of a bubble is this percentile of its surroundings.
PAPER_PERCENTILE: Final = 80
#: ... or of its own middle, less this share of the way from paper to ink, where that is
#: lighter (``_own_paper``).
OWN_PAPER_SLACK: Final = 0.1
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
#: a bubble's surroundings this share of the way from its group's paper to ink are covered
#: (``_paper``).
COVERED: Final = 0.75
_CACHE_SIZE: Final = 16


@dataclass(frozen=True)
class Samples:
    fill: npt.NDArray[np.float64]  # one per bubble, in template.fields order
    ring: npt.NDArray[np.float64]
    #: how much darker than its group's paper each bubble's surroundings are (0 paper ..
    #: 1 ink): a mark larger than the bubble was measured covers them.
    shade: npt.NDArray[np.float64]
    #: the mean darkness of the band round each bubble's printed outline, on the channel
    #: the fill is read on (0 paper .. 1 ink): its print, and a ring drawn round it.
    band: npt.NDArray[np.float64]
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
# id(template as given) -> (that template, each bubble's nearest neighbours: _fronts).
_FRONTS: dict[int, tuple[Template, tuple[npt.NDArray[np.float64], ...]]] = {}


def _layout(template: Template, spacing: Template) -> _Layout:
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
    fronts = _fronts(spacing)
    if len(fronts) != len(centres):
        raise ValueError(f"template {template.name!r} has {len(centres)} bubbles; its spacing has {len(fronts)}")
    groups = []
    for (rx, ry), members in sizes.items():
        # Distances in units of this group's radii to the nearest other bubble: any, in
        # the same row, in the same column.
        d = np.concatenate([fronts[i] for i in members]) / (rx, ry)
        far = np.hypot(d[:, 0], d[:, 1])
        nearest = float(far.min(initial=np.inf))
        near_x = float(far[d[:, 1] < 1].min(initial=np.inf))
        near_y = float(far[d[:, 0] < 1].min(initial=np.inf))
        groups.append(_Group(np.array(members, np.intp), rx, ry, nearest, near_x, near_y))
    layout = _Layout(centres, tuple(index), tuple(groups))
    if len(_LAYOUTS) >= _CACHE_SIZE:
        _LAYOUTS.pop(next(iter(_LAYOUTS)))
    _LAYOUTS[id(template)] = (template, layout)
    return layout


def _fronts(template: Template) -> tuple[npt.NDArray[np.float64], ...]:
    """Per bubble of ``template``, the (|dx|, |dy|) template pixels to the other bubbles
    that no other bubble is nearer to on both axes at once: whatever a group's radii, its
    nearest bubble in their units (any, in the row, in the column) is one of them.

    Worked out once per template as it is given, not on each sheet's fitted layout: a
    sheet's blocks sit a pixel or two apart from the template's, and reusing distances
    measured on an earlier sheet made a reading depend on what was read before it.
    """
    hit = _FRONTS.get(id(template))
    if hit is not None and hit[0] is template:
        return hit[1]
    import numpy as np

    centres = np.array([c for f in template.fields for c in f.centres], np.float64).reshape(-1, 2)
    fronts = []
    for c in centres:
        d = np.abs(centres - c)
        d = d[(d[:, 0] >= 1e-9) | (d[:, 1] >= 1e-9)]  # not itself, nor a bubble on top of it
        d = d[np.lexsort((d[:, 1], d[:, 0]))]
        # Along growing |dx| (ties: growing |dy|), kept where |dy| falls below all before.
        lowest = np.minimum.accumulate(np.concatenate([[np.inf], d[:-1, 1]]))
        front = d[d[:, 1] < lowest]
        front.flags.writeable = False
        fronts.append(front)
    kept = tuple(fronts)
    if len(_FRONTS) >= _CACHE_SIZE:
        _FRONTS.pop(next(iter(_FRONTS)))
    _FRONTS[id(template)] = (template, kept)
    return kept


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


@dataclass(frozen=True)
class _Pattern:
    """A bubble size's sample points round its centre, in template pixels, in this order:
    the middle (a grid), the band round the outline (every pixel), the paper round it (a
    band further out, then the points beside each grid row and column)."""

    probe: _Probe
    offsets: npt.NDArray[np.float32]
    #: where the outline band starts and ends in ``offsets``.
    a: int
    b: int


@functools.lru_cache(maxsize=64)
def _pattern(
    rx: float, ry: float, step: float, area_step: float, ring_w: float, outer_hi: float, far_x: float, far_y: float
) -> _Pattern:
    import numpy as np

    probe = _probe(rx, ry, area_step, far_x, far_y)
    ring = _offsets(rx, ry, 1 - ring_w, 1 + ring_w, step)
    around = _offsets(rx, ry, 1.28, outer_hi, area_step)
    offsets = np.concatenate([probe.disk, ring, around, probe.beside_x, probe.beside_y])
    offsets.flags.writeable = False
    return _Pattern(probe, offsets, len(probe.disk), len(probe.disk) + len(ring))


@dataclass(frozen=True)
class _Read:
    """A group's bubbles as sampled: (bubbles, samples) values at the pattern's points."""

    group: _Group
    pattern: _Pattern
    #: the picture's values there: BGR (bubbles, samples, 3) or grey.
    values: npt.NDArray[np.uint8]
    grey: npt.NDArray[np.uint8]
    #: each bubble's surroundings (``_surroundings``) and paper level, on grey.
    surround: npt.NDArray[np.float64]
    paper: npt.NDArray[np.float64]


def sample(
    image: npt.NDArray[np.uint8],
    template: Template,
    alignment: Alignment,
    *,
    spacing: Template,
) -> Samples:
    """Measure every bubble of ``template`` (its centres and sizes as they are printed).

    ``spacing``: the template as given, of which ``template`` is the layout fitted on
    this sheet (the same bubbles, each block moved to its print). How far the paper
    round a bubble is looked for depends on how close its neighbours are, which is
    measured on it, once.

    ``image`` is greyscale or BGR. On a colour picture the outlines are measured on grey
    (where print of any colour shows) and the fill on the channel where the printed
    outlines are faintest, when that channel all but drops them: a sheet printed in red
    or pink dropout ink is read on red, where the print vanishes and pencil, black and
    blue pen stay dark. The grey of each sample is made from its own colour, as
    ``align.as_gray`` makes it pixel by pixel, so the picture is read once, in colour.
    """
    import numpy as np

    layout = _layout(template, spacing)
    n = len(layout.centres)
    # Sample about once per image pixel, never much finer than one per template pixel.
    step = max(0.5, min(1.0, 1.0 / alignment.scale))
    ink = alignment.ink
    ring_v = np.zeros(n, np.float64)
    fill = np.zeros(n, np.float64)
    shade = np.zeros(n, np.float64)
    band = np.zeros(n, np.float64)
    reads = []
    for g in layout.groups:
        pattern = _group_pattern(g, step)
        a, b = pattern.a, pattern.b
        values = _remap(image, *_maps(layout.centres[g.bubbles], pattern.offsets, alignment.homography))
        grey = _as_grey(values)
        surround = _surroundings(grey[:, b:])
        paper = _own_paper(_paper(surround, ink), grey[:, :a], ink)
        # Print anywhere in the bubble's place: its outline, or what is printed inside it
        # (a digit or letter, on a card that prints no outline at all, only the value).
        ring_v[g.bubbles] = np.maximum(_dark_share(grey[:, a:b], paper, ink), _dark_share(grey[:, :a], paper, ink))
        reads.append(_Read(g, pattern, values, grey, surround, paper))
    channel = _dropout_channel(reads, ink) if image.ndim == 3 else -1
    for r in reads:
        g, probe, a, b = r.group, r.pattern.probe, r.pattern.a, r.pattern.b
        marks, surround, paper = r.grey, r.surround, r.paper
        if channel >= 0:
            marks = _channel(r.values, channel)
            surround = _surroundings(marks[:, b:])
            paper = _own_paper(_paper(surround, ink), marks[:, :a], ink)
        # The fill reads the middle and the paper round it (not the outline band).
        span = np.maximum(paper - ink, 1.0)[:, None]
        beside = marks[:, marks.shape[1] - len(probe.beside_x) - len(probe.beside_y) :]
        dark_middle = (paper[:, None] - marks[:, :a].astype(np.float32)) / span  # (bubbles, samples)
        dark_beside = (paper[:, None] - beside.astype(np.float32)) / span
        fill[g.bubbles] = dark_middle.mean(axis=1) - _line_through(dark_beside, probe)
        band[g.bubbles] = ((paper[:, None] - marks[:, a:b].astype(np.float32)) / span).mean(axis=1)
        typical = float(np.median(surround))
        shade[g.bubbles] = (typical - surround) / max(typical - ink, 1.0)
    fill, ring_v, shade, band = (np.clip(x, -1, 2) for x in (fill, ring_v, shade, band))
    return Samples(fill, ring_v, shade, band, layout.index, channel)


def _group_pattern(g: _Group, step: float) -> _Pattern:
    """The sample points of a group's bubbles, ``step`` template pixels apart on the outline."""
    r = max(g.rx, g.ry)
    # The outline is looked for in a band round the measured size: a bubble printed a
    # pixel bigger or off its block's grid still shows its outline there.
    ring_w = max(RING_BAND, 1.5 / min(g.rx, g.ry))
    outer_hi = max(min(1.6, g.nearest / 2 - 1 / r), 1.28 + 2 / r)
    # Areas on a grid of about AREA_POINTS across the bubble (averages need no more);
    # the thin outline at every pixel. Beside the bubble: out to BESIDE radii, or half
    # way to the next bubble when closer.
    area_step = round(max(step, min(g.rx, g.ry) * 2 / AREA_POINTS) * 4) / 4
    far_x, far_y = min(BESIDE, g.nearest_x / 2), min(BESIDE, g.nearest_y / 2)
    return _pattern(g.rx, g.ry, step, area_step, ring_w, outer_hi, far_x, far_y)


def _dropout_channel(reads: list[_Read], ink: float) -> int:
    """The colour channel the fill is read on (-1: grey), from the outlines of a few dozen
    bubbles of each size: the one where they are faintest, when they are at most
    DROPOUT_SHARE of their darkness on grey (the grey the outlines are measured on, its
    paper levels already known)."""
    import numpy as np

    levels = []
    for r in reads:
        every = max(1, len(r.group.bubbles) // DROPOUT_PROBES)
        a, b = r.pattern.a, r.pattern.b
        k = b - a
        some = r.values[::every]  # (bubbles, samples, channel)
        paper = np.concatenate(
            [r.paper[None, ::every], _paper(_surroundings(np.ascontiguousarray(some[:, b:].transpose(2, 0, 1))), ink)]
        )
        sums = np.concatenate([r.grey[None, ::every, a:b].sum(axis=2, dtype=np.uint32), _channel_sums(some[:, a:b]).T])
        levels.append((paper - sums / k) / np.maximum(paper - ink, 1.0))
    every_level = np.concatenate(levels, axis=1)  # (grey and channels, bubbles)
    print_grey = float(np.median(every_level[0]))
    faint = [float(np.median(every_level[c])) for c in (1, 2, 3)]
    best = int(np.argmin(faint))
    if print_grey >= DROPOUT_MIN_PRINT and faint[best] <= DROPOUT_SHARE * print_grey:
        return best
    return -1


def _channel_sums(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Each row's sum on each channel, (rows, samples, 3) -> (rows, 3): one matrix product
    that picks every third value, exact (whole numbers below 2**24 add up exactly in
    float32, in any order)."""
    import numpy as np

    rows, k = values.shape[:2]
    pick = np.tile(np.eye(3, dtype=np.float32), (k, 1))  # (3k, 3)
    result: npt.NDArray[np.float32] = values.reshape(rows, 3 * k).astype(np.float32) @ pick
    return result


def _as_grey(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """BGR samples (bubbles, samples, 3) as grey, each exactly as ``align.as_gray`` makes
    its pixel (cv2's conversion is pixel by pixel); grey samples as they are."""
    if values.ndim == 2:
        return values
    import cv2
    import numpy as np

    return np.asarray(cv2.cvtColor(values, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def _channel(values: npt.NDArray[np.uint8], channel: int) -> npt.NDArray[np.uint8]:
    import cv2
    import numpy as np

    return np.asarray(cv2.extractChannel(values, channel), dtype=np.uint8)


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
        # (bubbles, side and line, k): the k points of a side summed in order, as a mean does.
        points = part.reshape(n, 2 * lines, k)
        sides = sum((points[:, :, j] for j in range(1, k)), points[:, :, 0]) / k
        both = np.minimum(sides[:, :lines], sides[:, lines:])
        # The median from a sort (np.median's own pair of middle values, halved as it does).
        ordered = np.sort(both, axis=1)
        half = lines // 2
        median = ordered[:, half] if lines % 2 else (ordered[:, half - 1] + ordered[:, half]) / 2
        both = np.minimum(np.maximum(both - median[:, None], 0.0), MAX_LINE)
        # A line is thin: across more than LINE_WIDTH of the bubble it is a mark's
        # overflow on both sides (a wide shade is the paper's, taken off already).
        peak = np.minimum(np.maximum(ordered[:, -1] - median, 0.0), MAX_LINE)
        wide = np.count_nonzero(both > 0.5 * peak[:, None], axis=1) / lines > LINE_WIDTH
        correction = both[:, index].mean(axis=1)
        out = np.maximum(out, np.where(wide, 0.0, correction))
    return out


def _dark_share(values: npt.NDArray[np.uint8], paper: npt.NDArray[np.float64], ink: float) -> npt.NDArray[np.float64]:
    """How dark the darkest RING_SHARE of each row of ``values`` is (0 paper, 1 ink): an
    outline, thin or light, fills that much of the band it lies in."""
    import numpy as np

    span = np.maximum(paper - ink, 1.0)
    result: npt.NDArray[np.float64] = (paper - _percentile_rows(values, 100 * RING_SHARE)) / span
    return result


def _surroundings(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """The grey of each bubble's surroundings (the band round it and the samples further
    out beside it, clear of a mark that overflows the bubble): a high percentile of them,
    so a pencil stroke across part of them does not lower it."""
    return _percentile_rows(values, PAPER_PERCENTILE)


def _own_paper(paper: npt.NDArray[np.float64], middle: npt.NDArray[np.uint8], ink: float) -> npt.NDArray[np.float64]:
    """The paper level of each bubble (``_paper``), or its own middle's, less
    OWN_PAPER_SLACK, where that is lighter: a bubble printed white on a shaded row is its
    own paper. Against the shade round it an empty one would read lighter than paper,
    and its outline fainter, each by as much as its row is shaded, so that rows shaded
    in turn read unlike. A mark darkens the middle and leaves the paper as it is; the
    slack leaves it too where the surroundings are a little darker than the middle
    (small bubbles whose neighbours' outlines fall among them)."""
    import numpy as np

    own = _percentile_rows(middle, PAPER_PERCENTILE)
    return np.maximum(paper, own - OWN_PAPER_SLACK * np.maximum(paper - ink, 1.0))


def _paper(surroundings: npt.NDArray[np.float64], ink: float) -> npt.NDArray[np.float64]:
    """The paper level of each bubble: its surroundings' grey (``_surroundings``), or its
    group's paper where a mark covers them."""
    import numpy as np

    paper = surroundings
    # Surroundings as dark as ink all round: a mark covers them, the bubble printed far
    # bigger than it was measured (a template drawn on a small frame). Measured against
    # that, the mark would be paper; the paper of the group's other bubbles stands in.
    typical = float(np.median(paper))
    covered = typical - paper > COVERED * (typical - ink)
    if covered.any() and not covered.all():
        paper = np.where(covered, float(np.median(paper[~covered])), paper)
    result: npt.NDArray[np.float64] = np.maximum(paper, ink + 1)
    return result


def _percentile_rows(values: npt.NDArray[np.uint8], q: float) -> npt.NDArray[np.float64]:
    """``np.percentile(values, q, axis=-1)`` (linear method) of uint8 rows.

    A stable sort of 8-bit values is a counting sort in numpy: faster than a partition
    and than histograms of each row, and exact (the same two order statistics)."""
    import numpy as np

    n = values.shape[-1]
    pos = q / 100 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    ordered = np.sort(values, axis=-1, kind="stable")
    low = ordered[..., lo].astype(np.float64)
    high = ordered[..., hi].astype(np.float64)
    result: npt.NDArray[np.float64] = low + (pos - lo) * (high - low)
    return result


def gather(
    image: npt.NDArray[np.uint8],
    centres: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.float32],
    homography: npt.NDArray[np.float64],
) -> npt.NDArray[np.uint8]:
    """The picture's values at the template points ``centres[i] + offsets[j]`` (nearest
    pixel): (bubbles, offsets[, channels])."""
    return _remap(image, *_maps(centres, offsets, homography))


def _maps(
    centres: npt.NDArray[np.float64], offs: npt.NDArray[np.float32], h: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Image coordinates of the template points ``centres[i] + offs[j]``: (bubbles, samples).

    H (c + o) = H c + H[:, :2] o, so each image coordinate is a per-bubble term plus a
    per-offset term, an outer sum of two short vectors.
    """
    import numpy as np

    base = (centres @ h[:, :2].T + h[:, 2]).astype(np.float32)  # (bubbles, 3)
    delta = (offs.astype(np.float64) @ h[:, :2].T).astype(np.float32).T.copy()  # (3, samples)
    w = base[:, 2:3] + delta[2]
    map_x = (base[:, 0:1] + delta[0]) / w
    map_y = (base[:, 1:2] + delta[1]) / w
    return map_x, map_y


def _remap(
    image: npt.NDArray[np.uint8], map_x: npt.NDArray[np.float32], map_y: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """The image's values at (map_x, map_y), nearest pixel: (bubbles, samples[, channels])."""
    import cv2
    import numpy as np

    values = cv2.remap(image, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(values, dtype=np.uint8)
