"""Bubble crops for the mark classifier: the same cut at training and at inference.

Every bubble of a sheet is cut straight out of the *original* greyscale image through
the alignment's homography (no whole-page warp): ``SPAN`` of the bubble's half width
across and ``SPAN`` of its half height down (a square of ``SPAN`` radii for a circle),
sampled on a ``2 * SIZE`` grid (bilinear) and averaged down to ``SIZE`` x ``SIZE``, so a
crop is the same picture of a bubble whatever the photo's resolution and whatever the
bubble's shape: an ellipse or a box fills its crop as a circle does.

Each crop is put on the reader's own scale: 0 = the paper around that bubble (a high
percentile of the crop's corners, outside the printed ring), 1 = the markers' ink. A
shadow band or a colour cast moves paper and pencil together, so it drops out here.

``context`` gives each bubble three numbers the crop cannot show: the sheet's empty and
mark levels (what this student's pencil does on this photo) and the darkest *other*
bubble of its field (an erased bubble usually has a dark re-mark beside it).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

from workers.omr.align import Alignment
from workers.omr.classify import Levels
from workers.omr.template import Template

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

SIZE: Final = 24  # crop side, pixels
SPAN: Final = 3.0  # crop side in bubble radii: the ring and a little paper, no neighbour
PAPER_FROM: Final = 1.3  # corners farther than this many radii from the centre are paper
PAPER_PERCENTILE: Final = 80
CONTEXT: Final = 3  # empty level, mark level, darkest other bubble of the field
#: bubbles whose sampling grids are computed at once (two float64 rows of 18 KiB each).
_ROWS: Final = 16


@functools.lru_cache(maxsize=16)
def _grid() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Offsets of the 2x supersampled grid in bubble half-sizes (x in half-widths, y in
    half-heights), and the paper cells of a crop."""
    import numpy as np

    n = 2 * SIZE
    step = SPAN / n
    g = (np.arange(n) - (n - 1) / 2) * step
    xx, yy = np.meshgrid(g, g)
    offs = np.stack([xx.ravel(), yy.ravel()], axis=1)
    c = (np.arange(SIZE) - (SIZE - 1) / 2) * 2 * step
    cx, cy = np.meshgrid(c, c)
    paper = np.flatnonzero(np.hypot(cx, cy).ravel() > PAPER_FROM)
    offs.flags.writeable = False
    paper.flags.writeable = False
    return offs, paper


def crops(gray: npt.NDArray[np.uint8], template: Template, alignment: Alignment) -> npt.NDArray[np.float32]:
    """All bubbles of the sheet, template order: ``(bubbles, 1, SIZE, SIZE)`` float32."""
    import cv2
    import numpy as np

    fields = template.fields
    centres = np.array([c for f in fields for c in f.centres], np.float64)
    halves = np.array([template.bubble_size(f) for f in fields for _ in f.centres], np.float64) / 2
    unit, paper_cells = _grid()
    h = alignment.homography
    # H (c + o) = H c + H[:, :2] o: a per-bubble term plus a per-offset term, the offset
    # scaled by the bubble's own half sizes, so that an ellipse or a box fills its crop as
    # a circle does: every shape looks alike to the classifier.
    base = centres @ h[:, :2].T + h[:, 2]
    n = len(centres)
    map_x = np.empty((n, len(unit)), np.float32)
    map_y = np.empty_like(map_x)
    sizes, kind = np.unique(halves, axis=0, return_inverse=True)
    kind = kind.reshape(-1)
    deltas = [np.ascontiguousarray(((unit * half) @ h[:, :2].T).T) for half in sizes]
    # The same float64 sums and quotients, rounded to float32 on the way out, a few
    # bubbles at a time so the temporaries stay in cache: a whole sheet's grid is
    # megabytes per array. Bubbles of one size come in runs (a block's fields).
    w = np.empty((_ROWS, len(unit)), np.float64)
    num = np.empty_like(w)
    run_starts = np.flatnonzero(np.r_[True, kind[1:] != kind[:-1]]).tolist()
    for start, stop in zip(run_starts, [*run_starts[1:], n], strict=True):
        dx, dy, dz = deltas[kind[start]]
        for a in range(start, stop, _ROWS):
            b = min(a + _ROWS, stop)
            ww, nn = w[: b - a], num[: b - a]
            np.add(base[a:b, 2:3], dz, out=ww)
            np.add(base[a:b, 0:1], dx, out=nn)
            np.divide(nn, ww, out=map_x[a:b])
            np.add(base[a:b, 1:2], dy, out=nn)
            np.divide(nn, ww, out=map_y[a:b])
    raw = np.asarray(cv2.remap(gray, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), dtype=np.float32)
    # Each row is one bubble's 2S x 2S grid; stacked, they are one (n 2S) x 2S picture
    # whose 2 x 2 area average never mixes two bubbles (2S is even). cv2 does it several
    # times faster than a numpy mean over reshaped axes.
    fine = cv2.resize(raw.reshape(n * 2 * SIZE, 2 * SIZE), (SIZE, n * SIZE), interpolation=cv2.INTER_AREA)
    fine = fine.reshape(n, SIZE * SIZE)
    paper = np.percentile(fine[:, paper_cells], PAPER_PERCENTILE, axis=1).astype(np.float32)
    paper = np.maximum(paper, np.float32(alignment.ink + 1))
    scale = 1 / np.maximum(paper - np.float32(alignment.ink), np.float32(1))
    out = np.subtract(paper[:, None], fine, dtype=np.float32)
    out *= scale[:, None]
    np.clip(out, -0.5, 1.5, out=out)
    result: npt.NDArray[np.float32] = out.reshape(n, 1, SIZE, SIZE)
    return result


def context(fill: npt.NDArray[np.float64], index: Sequence[Sequence[int]], levels: Levels) -> npt.NDArray[np.float32]:
    """``(bubbles, CONTEXT)`` float32, template order, from the reader's own samples."""
    import numpy as np

    other = np.full(len(fill), levels.empty, np.float64)
    for idx in index:
        if len(idx) < 2:
            continue
        pos = list(idx)
        vals = fill[pos]
        order = np.argsort(vals)
        top, second = vals[order[-1]], vals[order[-2]]
        other[pos] = top
        other[pos[int(order[-1])]] = second  # the darkest bubble's darkest other
    out = np.empty((len(fill), CONTEXT), np.float32)
    out[:, 0] = levels.empty
    out[:, 1] = levels.mark
    out[:, 2] = other
    return out
