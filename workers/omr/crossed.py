"""Marks crossed out: a filled bubble struck through with an X beside the answer chosen.

A student who changes an answer on a card that cannot be erased fills the new bubble and
strikes the old one out with a cross drawn larger than it. Both bubbles are dark in
the middle, so the thresholds and the classifier read two marks. A person reads one.

What tells the cross from a fill is what lies beyond the bubble: its strokes leave the
bubble in four directions, each a thin ray of ink, where a fill, even one that spills
over, darkens the paper round it as a blob or not at all. Each marked bubble of a field
read with more than one mark is looked at on RAYS rays beyond it, from RAY_FROM to
RAY_TO of its larger radius. A ray counts as dark where most of its length is
(RAY_SHARE of its samples) and it stands ARM_DARK above the same ray of the bubble in
that place in other rows (the print round a bubble: question numbers, the neighbours'
outlines, a frame's lines). Points within CLEAR of another bubble are left out, so a
neighbour's mark is not taken for a stroke; on tall ellipses set close side by side
that leaves a cross's rays only their inner points, from MIN_POINTS of them. A run of
dark rays no wider than ARM_WIDTH is one arm; a bubble with CROSS_ARMS arms or more (one
of the four may be lost near a neighbour, or end short) sends its field to a person.

Only fields with two marks or more are looked at: that is where a crossed-out bubble
misreads, as a second answer, and where few fields are, so the extra sampling costs
almost nothing. A lone crossed-out bubble still reads as the answer (docs/omr.md).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from workers.omr.align import Alignment
from workers.omr.classify import FieldReading
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: rays round a bubble (7.5 degrees apart: a stroke 2-4 px wide at 1.5 radii of a 15 px
#: bubble crosses about one of them).
RAYS: Final = 48
#: each ray runs over this span of the bubble's larger radius, sampled at RAY_POINTS
#: points: past the outline and a spilled fill's edge, short of where a cross's strokes end.
RAY_FROM: Final = 1.3
RAY_TO: Final = 1.8
RAY_POINTS: Final = 6
#: a ray is as dark as the darkest this share of its points are, after each point takes
#: the darker of its neighbours on the rays either side (a stroke at a slant) ...
RAY_SHARE: Final = 4 / 6
#: ... of the points not left out near another bubble, when at least this many are left.
MIN_POINTS: Final = 3
#: dark: this far from paper to ink above the same ray round the same bubble of the
#: block's other rows.
ARM_DARK: Final = 0.2
#: an arm is at most this many rays wide (45 degrees); a spill that darkens more is a blob.
ARM_WIDTH: Final = 6
CROSS_ARMS: Final = 3
#: points within this many of another bubble's radii of its centre are left out.
CLEAR: Final = 1.2
#: the rows whose same bubble gives a ray's print.
BASELINE_ROWS: Final = 8


def crossed_out(
    marks: npt.NDArray[np.uint8],
    placed: Template,
    alignment: Alignment,
    readings: Sequence[FieldReading],
) -> frozenset[str]:
    """The labels of fields read with more than one mark, one of which is crossed out.

    ``marks``: the picture the fills were read on (grey, or the colour channel that
    drops a dropout-ink print); ``readings`` in ``placed.fields`` order."""
    import numpy as np

    fields = placed.fields
    by_block: dict[str, list[int]] = {}
    for n, f in enumerate(fields):
        by_block.setdefault(f.block_name, []).append(n)
    # Each bubble looked at once: the marked ones, and the same bubble of the nearest
    # rows of their block, whose rays give the print round it.
    looked: dict[tuple[int, int], int] = {}
    plans: list[tuple[str, list[int]]] = []
    for n, r in enumerate(readings):
        if len(r.values) < 2:
            continue
        rows = sorted(by_block[fields[n].block_name], key=lambda m: abs(m - n))
        for k, value in enumerate(fields[n].values):
            if value in r.values:
                same = [m for m in rows if len(fields[m].centres) > k][: BASELINE_ROWS + 1]  # n first
                plans.append((r.label, [looked.setdefault((m, k), len(looked)) for m in same]))
    if not plans:
        return frozenset()
    bubbles = list(looked)
    at = np.array([fields[m].centres[k] for m, k in bubbles], np.float64)
    radius = np.array([max(placed.bubble_size(fields[m])) / 2 for m, _ in bubbles])
    rays = np.full((len(bubbles), RAYS), np.nan)
    everyone = _Bubbles.of(placed)
    for size in np.unique(radius):
        group = np.flatnonzero(radius == size)
        rays[group] = _rays(marks, at[group], float(size), alignment, everyone)
    # Each marked bubble's rays less the median of its block's same bubble in the other
    # rows (padded with NaN where a block has fewer rows), all at once.
    width = max(len(ids) for _, ids in plans)
    table = np.full((len(plans), width), len(bubbles), np.intp)
    for row, (_, ids) in enumerate(plans):
        table[row, : len(ids)] = ids
    padded = np.concatenate([rays, np.full((1, RAYS), np.nan)])[table]  # (plans, rows, RAYS)
    own, others = padded[:, 0], padded[:, 1:]
    if others.shape[1]:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a ray no other row could judge
            own = own - np.nan_to_num(np.nanmedian(others, axis=1))
    arms = _arms(own)
    return frozenset(label for (label, _), count in zip(plans, arms.tolist(), strict=True) if count >= CROSS_ARMS)


@dataclass(frozen=True)
class _Bubbles:
    """Every bubble of a template: centres and radii (template pixels)."""

    centres: npt.NDArray[np.float64]  # (bubbles, 2)
    radii: npt.NDArray[np.float64]  # (bubbles, 2): x and y

    @classmethod
    def of(cls, template: Template) -> _Bubbles:
        import numpy as np

        centres = [c for f in template.fields for c in f.centres]
        radii = [[s / 2 for s in template.bubble_size(f)] for f in template.fields for _ in f.centres]
        return cls(np.array(centres, np.float64).reshape(-1, 2), np.array(radii, np.float64).reshape(-1, 2))


@functools.lru_cache(maxsize=16)
def _ray_offsets(radius: float) -> npt.NDArray[np.float32]:
    """(RAYS * RAY_POINTS, 2) template offsets, ray by ray, outwards."""
    import numpy as np

    angles = np.arange(RAYS) * (2 * np.pi / RAYS)
    reach = np.linspace(RAY_FROM, RAY_TO, RAY_POINTS) * radius
    offsets = np.stack([np.cos(angles)[:, None] * reach, np.sin(angles)[:, None] * reach], axis=-1)
    out = offsets.reshape(-1, 2).astype(np.float32)
    out.flags.writeable = False
    return out


def _rays(
    marks: npt.NDArray[np.uint8],
    at: npt.NDArray[np.float64],
    radius: float,
    alignment: Alignment,
    everyone: _Bubbles,
) -> npt.NDArray[np.float64]:
    """How dark each ray beyond each bubble at ``at`` is (0 paper, 1 ink): (bubbles,
    RAYS), NaN where too few of its points lie clear of other bubbles."""
    import numpy as np

    from workers.omr.sample import gather

    offsets = _ray_offsets(radius)
    values = gather(marks, at, offsets, alignment.homography).astype(np.float32)  # (bubbles, rays * points)
    paper = np.percentile(values, 90, axis=1, keepdims=True)
    dark = (paper - values) / np.maximum(paper - alignment.ink, 1.0)
    # Left out near another bubble: its outline, and its mark, are not strokes. Only the
    # bubbles within a ray's reach are compared (a ray starts RAY_FROM of the larger
    # radius out, so no point is near its own bubble).
    reach = RAY_TO * radius + CLEAR * float(everyone.radii.max())
    apart = np.hypot(*(at[:, None, :] - everyone.centres[None, :, :]).transpose(2, 0, 1))  # (at, everyone)
    close = apart < reach
    width = int(close.sum(axis=1).max())
    nearest = np.argsort(~close, axis=1, kind="stable")[:, :width]  # the close ones first
    centres = np.where(np.take_along_axis(close, nearest, axis=1)[..., None], everyone.centres[nearest], np.inf)
    scale = (1 / (CLEAR * everyone.radii[nearest])).astype(np.float32)  # (at, width, 2)
    points = (at[:, None, :] + offsets[None, :, :]).astype(np.float32)  # (at, points, 2)
    dx = (points[:, :, None, 0] - centres[:, None, :, 0].astype(np.float32)) * scale[:, None, :, 0]
    dy = (points[:, :, None, 1] - centres[:, None, :, 1].astype(np.float32)) * scale[:, None, :, 1]
    near = (dx * dx + dy * dy < 1).any(axis=-1)  # (at, points)
    dark = np.where(near, np.nan, dark).reshape(len(at), RAYS, RAY_POINTS)
    dark = np.fmax(dark, np.fmax(np.roll(dark, 1, axis=1), np.roll(dark, -1, axis=1)))
    # Each ray's darkness over the points left to it (sorted, those left out come last);
    # a ray left with fewer than MIN_POINTS is not judged.
    valid = np.count_nonzero(~np.isnan(dark), axis=2)
    keep = np.minimum(np.round(valid * (1 - RAY_SHARE)).astype(np.intp), np.maximum(valid - 1, 0))
    ray = np.take_along_axis(np.sort(dark, axis=2), keep[:, :, None], axis=2)[:, :, 0]
    result: npt.NDArray[np.float64] = np.where(valid >= MIN_POINTS, ray, np.nan).astype(np.float64)
    return result


def _arms(excess: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """How many arms each bubble's rays show, from each ray's darkness above its print:
    (bubbles, RAYS) in, (bubbles,) out."""
    import numpy as np

    hot = np.nan_to_num(excess) > ARM_DARK
    count = len(hot)
    # Each row turned to start after a ray that is not dark, so no run wraps round.
    first_cold = np.argmin(hot, axis=1)
    turned = np.take_along_axis(hot, (np.arange(RAYS)[None, :] + first_cold[:, None]) % RAYS, axis=1)
    # Runs of dark rays: a row's starts and ends alternate, so the flat lists pair up.
    edges = np.diff(np.pad(turned.astype(np.int8), ((0, 0), (1, 1))), axis=1)  # (rows, RAYS + 1)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    narrow = (ends - starts) <= ARM_WIDTH
    arms = np.bincount(starts[narrow] // (RAYS + 1), minlength=count)
    # No arm where no ray or half of them are dark (a blob round the bubble).
    spread = hot.sum(axis=1)
    result: npt.NDArray[np.intp] = np.where((spread == 0) | (spread >= RAYS // 2), 0, arms)
    return result
