"""Measure every bubble through the template-to-image transform.

Rather than warping the whole page, the few hundred thousand sample points of the
bubbles are mapped into the scan and read there (nearest pixel). Per bubble it returns:

- ``fill``: how dark the middle of the bubble is, 0 = paper, 1 = marker ink;
- ``ring``: the same for a thin band on the printed outline (is a bubble there at all?).

Paper is measured just outside each bubble, so a shadow or uneven scan lighting does
not read as a mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from workers.omr.align import Alignment
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True)
class Samples:
    fill: npt.NDArray[np.float64]  # one per bubble, in template.fields order
    ring: npt.NDArray[np.float64]
    #: (field index, bubble index) -> position in the flat arrays
    index: tuple[tuple[int, ...], ...]


def _offsets(r_in: float, r_out: float, step: float) -> npt.NDArray[np.float64]:
    import numpy as np

    n = int(r_out / step) + 1
    g = np.arange(-n, n + 1) * step
    xx, yy = np.meshgrid(g, g)
    d = np.hypot(xx, yy)
    keep = (d >= r_in) & (d <= r_out)
    return np.stack([xx[keep], yy[keep]], axis=1)


def sample(gray: npt.NDArray[np.uint8], template: Template, alignment: Alignment) -> Samples:
    import numpy as np

    r = template.bubble_radius
    # Sample about once per image pixel, never much finer than one per template pixel.
    step = max(0.5, min(1.0, 1.0 / alignment.scale))
    ring_w = max(1.0, r / 12)
    outer_hi = min(1.6 * r, template.min_gap / 2 - 1)
    disk = _offsets(0, 0.66 * r, step)
    ring = _offsets(r - ring_w, r + ring_w, step)
    outer = _offsets(1.28 * r, max(outer_hi, 1.28 * r + 2), step)
    centres = np.array([c for f in template.fields for c in f.centres], np.float64)
    index: list[tuple[int, ...]] = []
    pos = 0
    for f in template.fields:
        index.append(tuple(range(pos, pos + len(f.centres))))
        pos += len(f.centres)

    offs = np.concatenate([disk, ring, outer])
    pts = centres[:, None, :] + offs[None, :, :]  # (bubbles, samples, 2)
    values = _lookup(gray, pts.reshape(-1, 2), alignment.homography).reshape(len(centres), len(offs))
    a, b = len(disk), len(disk) + len(ring)
    # The paper level of a bubble: a high percentile of its surroundings, so a pencil
    # stroke across part of them does not lower it.
    paper = np.percentile(values[:, b:], 80, axis=1)
    paper = np.maximum(paper, alignment.ink + 1)
    span = np.maximum(paper - alignment.ink, 1.0)
    fill = (paper - values[:, :a].mean(axis=1)) / span
    ring_v = (paper - values[:, a:b].mean(axis=1)) / span
    return Samples(np.clip(fill, -1, 2), np.clip(ring_v, -1, 2), tuple(index))


def _lookup(
    gray: npt.NDArray[np.uint8], pts: npt.NDArray[np.float64], h: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    import numpy as np

    x = h[0, 0] * pts[:, 0] + h[0, 1] * pts[:, 1] + h[0, 2]
    y = h[1, 0] * pts[:, 0] + h[1, 1] * pts[:, 1] + h[1, 2]
    w = h[2, 0] * pts[:, 0] + h[2, 1] * pts[:, 1] + h[2, 2]
    xi = np.clip(np.rint(x / w), 0, gray.shape[1] - 1).astype(np.intp)
    yi = np.clip(np.rint(y / w), 0, gray.shape[0] - 1).astype(np.intp)
    values: npt.NDArray[np.float64] = gray[yi, xi].astype(np.float64)
    return values
