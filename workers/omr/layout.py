"""Fit the template's bubble layout to the sheet: which way up, where each block lies, how
big its bubbles are printed.

An alignment (workers/omr/aligners.py) maps the template onto the picture to within a
fraction of a bubble, and a template written by hand is often a few pixels off its print
(a grid sitting a third of a bubble low). Reading the template's boxes blindly would then
read the next row's mark. So each block (the fields laid out as one grid) is found on the
sheet itself:

1. The block's region is warped into the template frame at half size, on the channel
   where the print shows, as *darkness*: 0 paper, 1 the markers' ink.
2. A bubble detector - the mean darkness inside an ellipse of the template's bubble size
   less the mean darkness of a band around it - is run over the region. A printed bubble
   (its outline, the digit in it) or a mark scores high; paper, a line or text low.
3. The block's score at an offset is the detector's mean over the block's bubble centres
   moved by that offset. The best offset within 0.45 of the bubble spacing (a whole
   spacing would land on the neighbouring row) is where the block is printed. A block
   printed a few per cent wider or taller than the template lays it out (a hand-written
   bubble gap) is fitted in scale too: each template column and row is found on its own,
   and the line through their offsets gives the block's stretch (STRETCH_RANGE); where
   the block's first and last half of columns (rows) sit at one offset, as on most
   sheets, there is no stretch to find and the lines are not searched. A block
   where no outline stands out (hairline or very light outlines) is placed by what sits
   inside its bubbles, their printed digits and the marks (``_middle``); where nothing
   stands out either, it is read where the alignment puts it, and its fields go to
   review (``LayoutFit.unfound``).
4. The bubbles' printed size is measured on the block's mean bubble: the distance from
   its centre to the dark outline along each axis. Marks and digits sit in the middle and
   do not move it; when no outline stands out (a sheet that prints none), the template's
   size is kept.

``pick_orientation`` uses the same score to choose among turns of a sheet whose markers
cannot say which way up it lies: the layout fits only one way round. The largest blocks
are fitted first, and where they leave no doubt (DECIDE_SHARE, DECISIVE) the rest are not.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import TYPE_CHECKING, Any, Final

from workers.omr.errors import NO_SHEET_FOUND, OmrError
from workers.omr.percentile import percentile_90
from workers.omr.template import Field, Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.align import Alignment

#: the block is searched on a copy of the template frame at this share of its size.
WORK_SCALE: Final = 0.5
#: ... and at this share when only telling which way up the sheet lies.
ORIENT_SCALE: Final = 0.3
#: the search reaches this share of the bubble spacing (along each axis) either way.
REACH: Final = 0.45
#: ... and never further than this many bubble radii.
MAX_REACH_RADII: Final = 1.5
#: an outline found this share of the reach away or further lies at the search's edge,
#: and tells nothing of which way up the sheet lies (``pick_orientation``; the most a
#: block of OMRChecker's samples is fitted off its template is 0.84 of the reach).
EDGE_OF_REACH: Final = 0.95
#: two orientations whose layout scores differ by less than this are a tie (a layout that
#: looks the same upside down); the first candidate, the likelier, is kept.
TIE: Final = 0.01
#: a turn whose layout score, over the largest blocks holding this share of the bubbles, ...
DECIDE_SHARE: Final = 0.5
#: ... is this much more than every other turn's is the way up (a wrong turn scores about 0).
DECISIVE: Final = 0.05
#: a measured outline must be this dark (0 paper .. 1 ink) on the block's mean bubble ...
MIN_OUTLINE: Final = 0.06
#: a candidate outline a whole search reach away from the template's place must be this
#: much darker than one at it (darkness units, linear in between).
NEAR_PRIOR: Final = 0.05
#: ... and the measured size within these shares of the template's.
SIZE_RANGE: Final = (0.6, 1.8)
#: ... or from the template's size up to this share, in the second look for a template
#: whose bubbles are not found printed within SIZE_RANGE (``fit_layout``'s ``largest``).
WIDE_SIZE: Final = 3.0
#: a light hole in the shade is not taken where the block's mean bubble is dark in its
#: middle (marks, print) more than this share of a radius from it (``_dark_elsewhere``).
HOLE_APART: Final = 0.5
#: a bubble found as a light hole in its row's shade (``_light_bubble``) is one where
#: the contrast falls to this share of itself a radius to either side: a light band
#: (paper between shaded columns) keeps it along the band.
ISOLATED_SHARE: Final = 0.5
#: a block's print may be this much narrower .. wider (or shorter .. taller) than the
#: template lays it out (a hand-written bubble gap a few per cent short); a fit outside
#: is noise and the template's spacing is kept.
STRETCH_RANGE: Final = (0.9, 1.12)
#: ... a smaller stretch than this is no stretch (not worth a second look).
MIN_STRETCH: Final = 0.004
#: ... and its outline this much stronger than the unstretched one, where that one stood out.
STRETCH_GAIN: Final = 1.15
#: the stretch along an axis is fitted on at least this many template columns (rows).
MIN_STRETCH_LINES: Final = 3
#: ... and not looked for line by line where the block's first and last half of lines lie
#: at offsets less apart than this share of what a MIN_STRETCH stretch moves them
#: (``_halves_agree``). Where the lines find a stretch the halves do not show, a few marked
#: lines pulled it, and the fit does not keep it (STRETCH_GAIN) on any omr-dev or public
#: sample sheet. Half the share at which a stretch the lines find first slips through on
#: a synthetic block (tests/omr/test_layout_stretch.py).
SAME_HALVES: Final = 0.375
#: a block placed by the print inside its bubbles is trusted only where its first and
#: last half of rows (columns) centre within this share of the search's reach of each
#: other (``_halves_centred``; at most 0.35 on OMRChecker's samples).
HALVES_APART: Final = 0.5
#: ... along an axis of at least this many lines: a half of fewer than three rows (a
#: block of four questions) holds too few marks to centre on, and spans too little for a
#: perspective fitted wrong to move its rows apart.
HALVES_MIN_LINES: Final = 6
#: np.add.reduce sums a contiguous run of this many values or more pairwise, a shorter one
#: value after value, as it sums rows (``_band_mean`` takes a band of columns as rows).
PAIRWISE: Final = 8


@dataclass(frozen=True)
class BlockFit:
    name: str
    #: where the block's print lies relative to the template, template pixels.
    offset: tuple[float, float]
    #: its bubbles' printed half width and half height, template pixels.
    radii: tuple[float, float]
    #: the bubble detector's mean over the block's bubbles (darkness units).
    score: float
    #: how much wider and taller than the template the block is printed (about its
    #: bubbles' mean centre).
    stretch: tuple[float, float] = (1.0, 1.0)
    #: False when no printed bubble outline stood out: the block is read where the
    #: alignment puts the template, and its fields go to review.
    found: bool = True
    #: False when its bubbles' size is the template's, not measured on a printed outline
    #: (the block placed by what is printed or marked inside its bubbles, or not found).
    measured: bool = True
    #: True when its outline stood out only in a second search: from a radius to the side
    #: of the template's place (``_outlines``' ``starts``: a block printed wider than its
    #: template and off it, or the edge of a glyph inside a bubble printed far larger
    #: than its box), or on every other row or column alone (``_every_other``: rows
    #: shaded in turn, or again a glyph's edges).
    indirect: bool = False


@dataclass(frozen=True)
class LayoutFit:
    #: the template with each block moved to its print and its bubble size measured.
    template: Template
    blocks: tuple[BlockFit, ...]

    @property
    def score(self) -> float:
        """The bubble detector's mean over all blocks, weighted by their bubbles."""
        total = sum(b.score * n for b, n in zip(self.blocks, self._counts(), strict=True))
        return total / max(1, sum(self._counts()))

    @property
    def unfound(self) -> frozenset[str]:
        """Labels of the fields whose block showed no printed bubble outline."""
        lost = {b.name for b in self.blocks if not b.found}
        if not lost:
            return frozenset()
        return frozenset(f.label for f in self.template.fields if f.block_name in lost)

    @property
    def outlined(self) -> bool:
        """Whether any block's bubbles showed a printed outline of a size looked for."""
        return any(b.measured for b in self.blocks)

    @property
    def indirect(self) -> bool:
        """Whether any block's outline stood out only in a second search."""
        return any(b.indirect for b in self.blocks)

    @property
    def all_outlined(self) -> bool:
        """Whether every block's bubbles showed a printed outline of a size looked for."""
        return all(b.measured for b in self.blocks)

    def lies_alike(self, template: Template) -> bool:
        """Whether every block was found on its print, and all lie off ``template`` (the
        template as given) alike: along each axis within HALVES_APART of the least
        search reach of each other. A template a half row off its print fits some
        blocks a row up and others a row down, each near the edge of its search."""
        blocks = [(block, fit) for block, fit in zip(_blocks_of(template), self.blocks, strict=True) if block.weight]
        if not all(fit.found for _, fit in blocks):
            return False
        reaches = [
            _reach(block.gaps, (w / 2, h / 2))
            for block, _ in blocks
            for w, h in [template.bubble_size(block.fields[0])]
        ]
        for axis in (0, 1):
            offsets = [fit.offset[axis] for _, fit in blocks]
            least = min((r[axis] for r in reaches), default=0.0)
            if offsets and max(offsets) - min(offsets) > HALVES_APART * least:
                return False
        return True

    def smallest_share(self, template: Template) -> float:
        """The smallest printed bubble measured, as a share of its bubble spacing: per
        block whose outline was measured (and that has a spacing, more than one
        bubble), the larger of its two axes' shares; 1.0 where there is none. A
        printed bubble fills a third of its spacing or more (0.34 the least measured on
        omr-dev and OMRChecker's samples); a digit printed inside it, a sixth."""
        shares = [
            max(2 * fit.radii[0] / block.gaps[0], 2 * fit.radii[1] / block.gaps[1])
            for block, fit in zip(_blocks_of(template), self.blocks, strict=True)
            if fit.measured and len(block.points) > 1
        ]
        return min(shares, default=1.0)

    def _counts(self) -> list[int]:
        sizes: dict[str, int] = {}
        for f in self.template.fields:
            sizes[f.block] = sizes.get(f.block, 0) + len(f.centres)
        return [sizes.get(b.name, 0) for b in self.blocks]


def pick_orientation(
    gray: npt.NDArray[np.uint8],
    template: Template,
    candidates: Sequence[Alignment],
    *,
    largest: float = SIZE_RANGE[1],
) -> Alignment:
    """Of several alignments (turns of the same sheet), the one the template's bubbles fit.

    Each turn's score is the layout score of all its blocks, and the first turn is kept
    unless another scores TIE more. The blocks are fitted the largest first, every turn
    in step; once DECIDE_SHARE of the bubbles are looked at, a turn that leads every
    other by DECISIVE there is taken without fitting the rest (a wrong turn puts hardly
    any block on its print). ``largest`` as for ``fit_layout``.
    """
    if not candidates:
        raise OmrError(NO_SHEET_FOUND, "no answer sheet was found")
    if len(candidates) == 1:
        return candidates[0]
    blocks = _blocks_of(template)
    # A field without a block weighs nothing in the layout score and is not fitted.
    weights = [block.weight for block in blocks]
    total = sum(weights)
    fits = [[BlockFit(block.name, (0.0, 0.0), (0.0, 0.0), 0.0) for block in blocks] for _ in candidates]
    seen = 0
    sums = [0.0] * len(candidates)
    # The weight of the blocks seen so far whose outline each turn found.
    shown = [0] * len(candidates)
    for b in sorted((b for b, n in enumerate(weights) if n), key=lambda b: -weights[b]):
        for c, alignment in enumerate(candidates):
            # A coarse look tells the right way up; the reader then fits the winner finely.
            # Only the score counts here, so the template is not moved onto the fit.
            fits[c][b] = _fit_block(gray, template, alignment, blocks[b], False, ORIENT_SCALE, largest)
            sums[c] += fits[c][b].score * weights[b]
            shown[c] += weights[b] if fits[c][b].score > 0 else 0
        seen += weights[b]
        if DECIDE_SHARE * total <= seen < total:
            lead = max(range(len(candidates)), key=lambda c: (sums[c], -c))
            # Decided early only on the outlines of most of the blocks seen: where the
            # coarse look finds few under either turn (bubbles printed far from the
            # template's size), one block's lead decides nothing.
            clear = all(sums[lead] >= sums[c] + DECISIVE * seen for c in range(len(candidates)) if c != lead)
            if clear and 2 * shown[lead] > seen:
                return candidates[lead]
    best: tuple[float, Alignment] | None = None
    for alignment, fitted in zip(candidates, fits, strict=True):
        score = LayoutFit(template, tuple(fitted)).score
        if best is None or score > best[0] + TIE:
            best = (score, alignment)
    assert best is not None
    return best[1]


def _blocks(template: Template) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(block name, field indices) in template order; fields without a block stand alone."""
    order: dict[str, list[int]] = {}
    for i, f in enumerate(template.fields):
        order.setdefault(f.block_name, []).append(i)
    return tuple((name, tuple(idx)) for name, idx in order.items())


@dataclass(frozen=True, eq=False)
class _Block:
    """One block of a template, with what every fit of it needs of the template alone."""

    name: str
    #: its fields, and their indices among the template's.
    idx: tuple[int, ...]
    fields: tuple[Field, ...]
    #: its bubble centres (template pixels), field after field, and their mean, which a
    #: stretch is about.
    points: npt.NDArray[np.float64]
    middle: tuple[float, float]
    #: its bubbles' weight in the layout score (LayoutFit.score): 0 for a field without a block.
    weight: int
    #: the smallest step between its bubbles along each axis (``_spacing``; inf: one line).
    gaps: tuple[float, float]
    #: the step to the nearest line of another block's bubbles in line with its own,
    #: along each axis (``_beside``; inf: none).
    beside: tuple[float, float]
    #: its search frames (``_frame``) by bubble size, scale and largest size, as needed.
    frames: dict[tuple[tuple[float, float], float, float], _Frame] = field(default_factory=dict)


#: id of a template -> (that template, its blocks). Hashing a template hashes every bubble
#: centre it holds, so the sheets read with one template find its blocks by identity.
_TEMPLATE_BLOCKS: dict[int, tuple[Template, tuple[_Block, ...]]] = {}
#: ... for this many templates at most: a template's frames take some 10 MB.
_TEMPLATES_KEPT: Final = 4


def _blocks_of(template: Template) -> tuple[_Block, ...]:
    """The template's blocks in ``_blocks`` order, each with its fields, bubble centres
    and weight, and the search frames fitted on it so far."""
    import numpy as np

    known = _TEMPLATE_BLOCKS.get(id(template))
    if known is not None and known[0] is template:
        return known[1]
    fields = template.fields
    grouped = [(name, idx, tuple(fields[i] for i in idx)) for name, idx in _blocks(template)]
    every = [np.array([c for f in members for c in f.centres], np.float64).reshape(-1, 2) for _, _, members in grouped]
    owner = np.repeat(np.arange(len(every)), [len(p) for p in every])
    everywhere = np.concatenate(every) if every else np.zeros((0, 2))
    blocks = []
    for k, ((name, idx, members), points) in enumerate(zip(grouped, every, strict=True)):
        points.flags.writeable = False
        # As LayoutFit.score weighs it: a field standing alone (no block) weighs nothing.
        weight = len(points) if members[0].block else 0
        gaps = (_spacing(points, 0, math.inf), _spacing(points, 1, math.inf))
        w, h = template.bubble_size(members[0])
        beside = _beside(points, everywhere[owner != k], (w / 2, h / 2))
        blocks.append(_Block(name, idx, members, points, _middle_of(members), weight, gaps, beside))
    if len(_TEMPLATE_BLOCKS) >= _TEMPLATES_KEPT:
        _TEMPLATE_BLOCKS.clear()
    kept = tuple(blocks)
    _TEMPLATE_BLOCKS[id(template)] = (template, kept)
    return kept


def fit_layout(
    gray: npt.NDArray[np.uint8],
    template: Template,
    alignment: Alignment,
    *,
    measure: bool = True,
    scale: float = WORK_SCALE,
    largest: float = SIZE_RANGE[1],
) -> LayoutFit:
    """Find each block of the template on the sheet (see the module doc). ``largest``:
    the biggest printed size looked for, as a share of the template's (short of half a
    bubble spacing whatever it is)."""
    fields = list(template.fields)
    blocks = _blocks_of(template)
    fits = tuple(_fit_block(gray, template, alignment, block, measure, scale, largest) for block in blocks)
    for block, fit in zip(blocks, fits, strict=True):
        dx, dy = fit.offset
        kx, ky = fit.stretch
        size = (2 * fit.radii[0], 2 * fit.radii[1])
        mx, my = block.middle
        # Every bubble's centre moved as mx + (x - mx) * kx + dx (and so for y), a block
        # at a time: the same float64 arithmetic in the same order as on each alone.
        xs, ys = block.points[:, 0], block.points[:, 1]
        moved = zip(((mx + (xs - mx) * kx + dx).tolist()), ((my + (ys - my) * ky + dy).tolist()), strict=True)
        for i, f in zip(block.idx, block.fields, strict=True):
            fields[i] = replace(f, centres=tuple(islice(moved, len(f.centres))), size=size if measure else f.size)
    n_id = len(template.id_fields)
    radius = template.bubble_radius
    if measure and fits:
        # Size-blind measurements (the learned classifier's crops) take the printed size.
        radius = min(math.sqrt(b.radii[0] * b.radii[1]) for b in fits)
    moved_tpl = replace(template, id_fields=tuple(fields[:n_id]), questions=tuple(fields[n_id:]), bubble_radius=radius)
    return LayoutFit(moved_tpl, fits)


@functools.cache
def _levels() -> npt.NDArray[np.float32]:
    """The 256 grey levels, for a darkness lookup table."""
    import numpy as np

    levels = np.arange(256, dtype=np.float32)
    levels.flags.writeable = False
    return levels


def _middle_of(block: tuple[Field, ...]) -> tuple[float, float]:
    """The mean of a block's bubble centres (template pixels), which a stretch is about."""
    all_centres = [c for f in block for c in f.centres]
    mx = sum(c[0] for c in all_centres) / len(all_centres)
    my = sum(c[1] for c in all_centres) / len(all_centres)
    return mx, my


def _beside(
    points: npt.NDArray[np.float64], others: npt.NDArray[np.float64], radii: tuple[float, float]
) -> tuple[float, float]:
    """Along each axis, the step from a block's bubbles to the nearest bubble of another
    block in line with one of them (within a bubble's half size across), or inf.

    A template may give every question a block of its own: one row of bubbles, whose own
    spacing says nothing of how far the next row is. On a public card printing each
    choice's letter just above its bubble, such rows were searched for outlines as tall
    as a bubble and a half; the letter and the bubble's far side paired up, and half the
    rows were placed a quarter bubble off, their blank bubbles in doubt."""
    import numpy as np

    out = []
    for axis in (0, 1):
        across = 1 - axis
        in_line = np.abs(others[None, :, across] - points[:, None, across]) <= radii[across]
        steps = np.abs(others[None, :, axis] - points[:, None, axis])
        steps = np.where(in_line & (steps > 1.0), steps, np.inf)
        out.append(float(steps.min()) if steps.size else math.inf)
    return out[0], out[1]


def _spacing(centres: npt.NDArray[np.float64], axis: int, fallback: float) -> float:
    """The smallest step between distinct bubble positions along one axis of a block."""
    import numpy as np

    values = np.unique(np.round(centres[:, axis], 1))
    if values.size < 2:
        return fallback
    steps = np.diff(values)
    steps = steps[steps > 1.0]
    return float(steps.min()) if steps.size else fallback


@dataclass(frozen=True)
class _Frame:
    """What the search for one block needs of the template alone (template pixels unless
    said): the same for every sheet read with it, so worked out once (``_frame``)."""

    centres: npt.NDArray[np.float64]
    radii: tuple[float, float]
    gaps: tuple[float, float]
    reach: tuple[float, float]
    top: tuple[float, float]
    #: the block's region: its top-left corner, and its size in region pixels.
    origin: tuple[float, float]
    size: tuple[int, int]
    #: the mean bubble's half size and pixel offsets (region pixels).
    hx: int
    hy: int
    gx: npt.NDArray[np.float32]
    gy: npt.NDArray[np.float32]
    #: region coordinates of every bubble's surroundings, one patch under another.
    map_x: npt.NDArray[np.float32]
    map_y: npt.NDArray[np.float32]
    #: the template's columns (axis 0) and rows (axis 1) of bubbles, for ``_stretch``.
    lines: tuple[_Lines, _Lines]


@dataclass(frozen=True)
class _Lines:
    """A block's bubbles grouped by their template column (row): each line's place and
    its bubbles' indices, in template order, padded with ``len(centres)`` (a blank patch)
    to the longest line's count."""

    places: npt.NDArray[np.float64]
    members: npt.NDArray[np.intp]
    counts: npt.NDArray[np.intp]
    #: "rows" where the lines are a full grid's runs of bubbles in template order (a
    #: line's bubbles one after another), "columns" where they are its columns (one a
    #: line apart), else "": the patches then sum where they lie, without a copy.
    grid: str


def _lines(centres: npt.NDArray[np.float64], axis: int) -> _Lines:
    import numpy as np

    keys = np.round(centres[:, axis], 1)
    places, counts = np.unique(keys, return_counts=True)
    members = np.full((len(places), int(counts.max())), len(centres), np.intp)
    for row, value in enumerate(places):
        found = np.flatnonzero(keys == value)
        members[row, : len(found)] = found
    grid = ""
    if members.size == len(centres):
        if np.array_equal(members.ravel(), np.arange(len(centres))):
            grid = "rows"
        elif np.array_equal(members.T.ravel(), np.arange(len(centres))):
            grid = "columns"
    lines = _Lines(places, members, counts.astype(np.intp), grid)
    for a in (lines.places, lines.members, lines.counts):
        a.flags.writeable = False
    return lines


def _reach(gaps: tuple[float, float], radii: tuple[float, float]) -> tuple[float, float]:
    """How far a block's print is looked for from its template place along each axis
    (template pixels): REACH of its bubble spacing, never more than MAX_REACH_RADII."""
    most = MAX_REACH_RADII * max(radii)
    return min(REACH * gaps[0], most), min(REACH * gaps[1], most)


@functools.lru_cache(maxsize=32)
def _frame(
    block: tuple[Field, ...], bubble: tuple[float, float], s: float, largest: float, beside: tuple[float, float]
) -> _Frame:
    import numpy as np

    centres = np.array([c for f in block for c in f.centres], np.float64)
    w, h = bubble
    rx, ry = w / 2, h / 2
    # A block of a single line along an axis takes its spacing there from the nearest
    # line of another block in line with it (``_beside``), six radii at most.
    gap_x, gap_y = _spacing(centres, 0, min(6 * rx, beside[0])), _spacing(centres, 1, min(6 * ry, beside[1]))
    reach_x, reach_y = _reach((gap_x, gap_y), (rx, ry))
    # The largest printed radius looked for: ``largest`` times the template's, short of
    # half a spacing (where the outline of the neighbouring bubble would pair with this one's).
    top_x = min(largest * rx, 0.45 * gap_x)
    top_y = min(largest * ry, 0.45 * gap_y)
    half_x, half_y = reach_x + top_x + 2, reach_y + top_y + 2
    x0, y0 = centres[:, 0].min() - half_x, centres[:, 1].min() - half_y
    x1, y1 = centres[:, 0].max() + half_x, centres[:, 1].max() + half_y
    size = (max(8, round((x1 - x0) * s)), max(8, round((y1 - y0) * s)))
    hx, hy = int(half_x * s), int(half_y * s)
    cx = (centres[:, 0] - x0) * s
    cy = (centres[:, 1] - y0) * s
    gx = np.arange(-hx, hx + 1, dtype=np.float32)
    gy = np.arange(-hy, hy + 1, dtype=np.float32)
    n = len(centres)
    map_x = np.broadcast_to(cx.astype(np.float32)[:, None, None] + gx[None, None, :], (n, len(gy), len(gx)))
    map_y = np.broadcast_to(cy.astype(np.float32)[:, None, None] + gy[None, :, None], (n, len(gy), len(gx)))
    frame = _Frame(
        centres,
        (rx, ry),
        (gap_x, gap_y),
        (reach_x, reach_y),
        (top_x, top_y),
        (float(x0), float(y0)),
        size,
        hx,
        hy,
        gx,
        gy,
        np.ascontiguousarray(map_x).reshape(n * len(gy), len(gx)),
        np.ascontiguousarray(map_y).reshape(n * len(gy), len(gx)),
        (_lines(centres, 0), _lines(centres, 1)),
    )
    for a in (frame.centres, frame.gx, frame.gy, frame.map_x, frame.map_y):
        a.flags.writeable = False
    return frame


def _fit_block(
    gray: npt.NDArray[np.uint8],
    template: Template,
    alignment: Alignment,
    block: _Block,
    measure: bool,
    s: float,
    largest: float,
) -> BlockFit:
    import cv2
    import numpy as np

    name = block.name
    bubble = template.bubble_size(block.fields[0])
    frame = block.frames.get((bubble, s, largest))
    if frame is None:
        frame = block.frames[(bubble, s, largest)] = _frame(block.fields, bubble, s, largest, block.beside)
    centres, (rx, ry), (gap_x, gap_y) = frame.centres, frame.radii, frame.gaps
    (reach_x, reach_y), (top_x, top_y), (x0, y0), size = frame.reach, frame.top, frame.origin, frame.size
    hx, hy, gx, gy, n = frame.hx, frame.hy, frame.gx, frame.gy, len(centres)
    # region pixel -> template pixel -> image pixel
    m = alignment.homography @ np.array([[1 / s, 0, x0], [0, 1 / s, y0], [0, 0, 1]], np.float64)
    region = np.asarray(
        cv2.warpPerspective(
            gray, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        ),
        np.uint8,
    )
    span = max(alignment.paper - alignment.ink, 1.0)
    paper = percentile_90(region[::3, ::3])  # a ninth of the pixels tell the paper
    # Darkness per grey level, then looked up (the same arithmetic as on every pixel).
    darkness = np.asarray((paper - _levels()) / span, np.float32)
    dark = cv2.LUT(region, darkness)
    # The block's mean bubble: every bubble's surroundings, centred where the template
    # puts it, averaged (region pixels).
    patches = cv2.remap(dark, frame.map_x, frame.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mean = np.asarray(patches, np.float32).reshape(n, len(gy), len(gx)).mean(axis=0)
    # Beside the bubble: up to half a spacing from its centre, less the search's reach.
    side = ((0.5 * gap_x - 1) * s, (0.5 * gap_y - 1) * s)
    # The second, wide look (``largest`` beyond SIZE_RANGE) is for print larger than the
    # template's boxes: smaller rings there are what is printed inside the bubbles.
    wide = largest > SIZE_RANGE[1]
    least = 1.0 if wide else SIZE_RANGE[0]
    look = _OutlineSearch(hx, hy, (rx * s, ry * s), (reach_x * s, reach_y * s), (top_x * s, top_y * s), side, least)
    stretch = (1.0, 1.0)
    # Reading, a bubble whose outline does not stand out searched from the template's
    # place is searched again from a radius either side (``_outlines``). Not when only
    # telling which way up the sheet lies: a wider search finds more in text.
    starts = (-rx * s, rx * s) if measure else ()
    indirect = False
    # Each template column's (row's) patches summed, where the block has enough of them,
    # and the mean bubbles of its first and last half of columns (rows).
    sums: list[npt.NDArray[np.float32] | None] = [None, None]
    halves: list[npt.NDArray[np.float32] | None] = [None, None]
    if not measure:
        found = _outline(mean, look)
    else:
        # Each template column (row) found on its own: a bubble gap a few per cent off
        # the print smears the block's mean bubble so that no outline stands out. Its
        # first and last half of columns (rows) tell first whether that is worth it;
        # their mean bubbles are searched with the block's, each as it would be alone.
        stacked = np.asarray(patches, np.float32).reshape(n, len(gy), len(gx))
        sums = [_line_sums(stacked, lines) if len(lines.places) >= MIN_STRETCH_LINES else None for lines in frame.lines]
        halves = [None if x is None else _halves(x, lines) for x, lines in zip(sums, frame.lines, strict=True)]
        pictures = np.concatenate([mean[None], *(pair for pair in halves if pair is not None)])
        middle = _outlines(pictures, look)
        # Where the block's outline shows from the middle in none of them, an outline
        # found from a side may be the edge of a glyph inside a bubble printed far
        # larger than the template's boxes (``BlockFit.indirect``).
        indirect = not any(middle)
        got = iter(_outlines(pictures, look, starts=starts, middle=middle))
        found = next(got)
        fitted = [1.0, 1.0]
        for axis, (x, lines) in enumerate(zip(sums, frame.lines, strict=True)):
            if x is not None and not _halves_agree(lines, axis, s, next(got), next(got)):
                fitted[axis] = _stretch(x, lines, axis, s, look, starts=starts)
        stretch = (fitted[0], fitted[1])
    if stretch != (1.0, 1.0):
        # The block printed wider or taller than the template: its bubbles are
        # averaged again where the fitted spacing puts them, for the offset and size.
        mid = centres.mean(axis=0)
        sx = (mid[0] + (centres[:, 0] - mid[0]) * stretch[0] - x0) * s
        sy = (mid[1] + (centres[:, 1] - mid[1]) * stretch[1] - y0) * s
        map_x = np.broadcast_to(sx.astype(np.float32)[:, None, None] + gx[None, None, :], (n, len(gy), len(gx)))
        map_y = np.broadcast_to(sy.astype(np.float32)[:, None, None] + gy[None, :, None], (n, len(gy), len(gx)))
        again = cv2.remap(
            dark,
            np.ascontiguousarray(map_x).reshape(n * len(gy), len(gx)),
            np.ascontiguousarray(map_y).reshape(n * len(gy), len(gx)),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        again_mean = np.asarray(again, np.float32).reshape(n, len(gy), len(gx)).mean(axis=0)
        refit = _outline(again_mean, look, starts=starts)
        # Where the template's spacing already shows an outline, the stretched one must
        # stand out clearly more: on a block of few bubbles, mostly marked, the marks'
        # own edges can pull each column a little and fake a stretch.
        if refit is not None and (found is None or refit[2] >= STRETCH_GAIN * found[2]):
            found = refit
        else:
            stretch = (1.0, 1.0)
    if found is None and measure:
        # White bubbles on shaded rows: each a light hole in its row's shade, with no
        # outline darker than the shade round it (``_light_bubble``).
        light = _light_bubble(stacked, frame.lines, look)
        if light is not None and not _dark_elsewhere(light, _middle(mean, look), look):
            # Its contrast measures the shade, not an outline: it adds nothing to the
            # score the looks at a sheet are weighed by.
            return BlockFit(name, (light[0] / s, light[1] / s), (rx, ry), 0.0, measured=False)
        # Rows (columns) shaded in turn, which no outline of the block's mean shows.
        found = _every_other(sums, frame.lines, look, starts)
        indirect = indirect or found is not None
    if found is None and wide:
        # Beside a rectangle printed far larger than the template's size, where the
        # first axis's profile is taken off, its edges run on: taken off, they cancel.
        # Searched once more without that (only now: the profile beside a bubble keeps
        # its neighbours' outlines in rows printed close together from pairing with it).
        found = _outline(mean, look, first_beside=False)
    if found is None:
        # No outline stands out (hairline or very light outlines): what is printed or
        # marked inside the bubbles (their digits, the students' marks) still sits at
        # their centres and places the block; its size stays the template's. Not when
        # only telling which way up the sheet lies: text under a turned template can
        # centre on its bubbles as well as digits do.
        centre = _middle(mean, look) if measure else None
        if centre is None:
            return BlockFit(name, (0.0, 0.0), (rx, ry), 0.0, found=False, measured=False)
        # Each half of its rows and of its columns must centre there too: on a sheet
        # aligned a little askew (a perspective fitted wrong), the block's first rows
        # can sit on their bubbles and its last ones a row off, which the whole block's
        # mean still centres on. Its fields then go to review.
        whole = all(
            _halves_centred(pair, look)
            for pair, lines in zip(halves, frame.lines, strict=True)
            if pair is not None and len(lines.places) >= HALVES_MIN_LINES
        )
        return BlockFit(name, (centre[0] / s, centre[1] / s), (rx, ry), centre[2], found=whole, measured=False)
    (ox, oy), (mrx, mry), strength = found
    if not measure and (abs(ox) >= EDGE_OF_REACH * reach_x * s or abs(oy) >= EDGE_OF_REACH * reach_y * s):
        # Telling which way up the sheet lies, an outline at the edge of the search
        # counts for nothing: turned the wrong way, a row's outline or a printed number
        # comes just within reach of many blocks at once. (Reading, it places the block:
        # a template a little more than the reach off reads right there.)
        return BlockFit(name, (0.0, 0.0), (rx, ry), 0.0, found=False, measured=False)
    radii = (mrx / s, mry / s) if measure else (rx, ry)
    return BlockFit(name, (ox / s, oy / s), radii, strength, stretch, indirect=indirect)


#: an outline found on a mean bubble: centre offset, radii (patch pixels) and darkness.
_Found = tuple[tuple[float, float], tuple[float, float], float]


@dataclass(frozen=True)
class _OutlineSearch:
    """How a block's mean bubble is searched for its printed outline, in patch pixels
    (the block's region at its work scale)."""

    #: the patch's middle: where the template puts the bubble's centre.
    hx: int
    hy: int
    #: the template's bubble half width and half height.
    radii: tuple[float, float]
    #: how far from the middle the centre is looked for, along each axis.
    reach: tuple[float, float]
    #: the largest half size looked for.
    top: tuple[float, float]
    #: how far beside the bubble its surroundings lie (``_profiles``).
    side: tuple[float, float]
    #: the smallest half size looked for, as a share of ``radii``.
    least: float = SIZE_RANGE[0]


def _stretch(
    sums: npt.NDArray[np.float32],
    lines: _Lines,
    axis: int,
    s: float,
    look: _OutlineSearch,
    *,
    starts: tuple[float, ...] = (),
) -> float:
    """How much wider (axis 0) or taller (axis 1) the block is printed than the template
    lays it out: 1.0 when it cannot tell or the print matches. ``sums``: each line's
    patches summed (``_line_sums``).

    The bubbles in each template column (axis 0) or row (axis 1) are averaged on their
    own and their outline found; the line through those offsets against the column's
    place gives the scale. A template whose bubble gap is a few per cent short of the
    print reads its last columns most of a bubble off, though the block's mean still
    fits at the middle.
    """
    import numpy as np

    places, offsets, weights = [], [], []
    means = (sums / lines.counts[:, None, None]).astype(np.float32)
    for value, got in zip(lines.places.tolist(), _outlines(means, look, starts=starts), strict=True):
        if got is None:
            continue
        places.append(value)
        offsets.append(got[0][axis])
        weights.append(got[2])
    if len(places) < MIN_STRETCH_LINES:
        return 1.0
    x = np.array(places) - float(np.average(places, weights=weights))
    y = np.array(offsets)
    wts = np.array(weights)
    den = float(np.sum(wts * x * x))
    if den <= 0:
        return 1.0
    # The offsets are region pixels, the places template pixels.
    slope = float(np.sum(wts * x * (y - np.average(y, weights=wts))) / den) / s
    if abs(slope) < MIN_STRETCH or not STRETCH_RANGE[0] <= 1 + slope <= STRETCH_RANGE[1]:
        return 1.0
    return 1 + slope


def _halves(sums: npt.NDArray[np.float32], lines: _Lines) -> npt.NDArray[np.float32]:
    """The mean bubbles (2, height, width) of the block's first and last half of lines
    (columns, rows; the middle one of an odd count in neither), from ``_line_sums``."""
    import numpy as np

    first, last = _half_slices(lines)
    counts = lines.counts
    means = np.stack([sums[first].sum(axis=0) / counts[first].sum(), sums[last].sum(axis=0) / counts[last].sum()])
    return means.astype(np.float32)


def _every_other(
    sums: Sequence[npt.NDArray[np.float32] | None],
    lines: tuple[_Lines, _Lines],
    look: _OutlineSearch,
    starts: tuple[float, ...],
) -> _Found | None:
    """The outline of a block's bubbles on every other row, or every other column, alone.

    Many cards shade every other row (or column) to guide the eye, and a bubble on the
    band and one on the paper look unlike: the outline of each stands out against its own
    surroundings, and in their mean against neither. Where both sets of an axis (its even
    and its odd lines) show an outline, they must centre within HALVES_APART of the
    search's reach of each other, or that axis gives none: a band's edges can pull the
    outline found on it off its bubbles. Of the axes', the outline of the darker set
    places the block, with the two sets' mean darkness (a set showing none counts
    nothing): the block's own score, which a second look at the sheet is weighed
    against, is a mean over all its bubbles. ``sums``: each line's patches summed
    (``_line_sums``), None for an axis of too few lines."""
    import numpy as np

    pictures = [
        x[parity::2].sum(axis=0) / lines[axis].counts[parity::2].sum()
        for axis, x in enumerate(sums)
        if x is not None
        for parity in (0, 1)
    ]
    if not pictures:
        return None
    got = _outlines(np.stack(pictures).astype(np.float32), look, starts=starts)
    best: _Found | None = None
    for even, odd in zip(got[0::2], got[1::2], strict=True):
        if even is not None and odd is not None:
            apart = (abs(even[0][axis] - odd[0][axis]) for axis in (0, 1))
            if any(d > HALVES_APART * r for d, r in zip(apart, look.reach, strict=True)):
                continue
        shown = [found for found in (even, odd) if found is not None]
        if not shown:
            continue
        centre, radii, _ = max(shown, key=lambda found: found[2])
        mean = sum(found[2] for found in shown) / 2
        if best is None or mean > best[2]:
            best = (centre, radii, mean)
    return best


def _halves_agree(lines: _Lines, axis: int, s: float, low: _Found | None, high: _Found | None) -> bool:
    """Whether the outlines found on the block's first and last half of lines (``_halves``)
    lie so nearly at one offset that no stretch of MIN_STRETCH is there to fit.

    On most sheets the print matches the template; the halves' two mean bubbles, searched
    with the block's own, say so at a fraction of the cost of a search per line. Where
    either half shows no outline, or their offsets lie SAME_HALVES of a MIN_STRETCH
    stretch apart or more, the lines are fitted one by one (``_stretch``).
    """
    if low is None or high is None:
        return False
    first, last = _half_slices(lines)
    places, counts = lines.places * lines.counts, lines.counts
    apart = float(places[last].sum() / counts[last].sum() - places[first].sum() / counts[first].sum())
    # The offsets are region pixels, the places template pixels.
    return abs(high[0][axis] - low[0][axis]) < SAME_HALVES * MIN_STRETCH * apart * s


def _halves_centred(halves: npt.NDArray[np.float32], look: _OutlineSearch) -> bool:
    """Whether the print inside the bubbles (``_middle``) of the block's first and last
    half of lines (``halves``, from ``_halves``) centres in both, within HALVES_APART of
    the search's reach of each other along each axis."""
    first, last = (_middle(half, look) for half in halves)
    return _centred_alike(first, last, look)


def _centred_alike(
    first: tuple[float, float, float] | None, last: tuple[float, float, float] | None, look: _OutlineSearch
) -> bool:
    """Whether two places found (``_middle``) both exist and lie within HALVES_APART of
    the search's reach of each other along each axis."""
    if first is None or last is None:
        return False
    return all(abs(first[axis] - last[axis]) <= HALVES_APART * look.reach[axis] for axis in (0, 1))


def _half_slices(lines: _Lines) -> tuple[slice, slice]:
    half = len(lines.places) // 2
    return slice(0, half), slice(len(lines.places) - half, None)


def _line_sums(patches: npt.NDArray[np.float32], lines: _Lines) -> npt.NDArray[np.float32]:
    """Each line's patches summed, one after another in template order (as a mean over
    the line's patches alone sums them)."""
    import numpy as np

    count, most = lines.members.shape
    if lines.grid == "rows":
        sums = patches.reshape(count, most, *patches.shape[1:]).sum(axis=1)
    elif lines.grid == "columns":
        sums = patches.reshape(most, count, *patches.shape[1:]).sum(axis=0)
    else:
        # Short lines are padded with a blank patch (adding nothing changes no sum).
        blank = np.zeros((1, *patches.shape[1:]), np.float32)
        sums = np.concatenate([patches, blank])[lines.members].sum(axis=1)
    return np.asarray(sums, np.float32)


def _outline(
    mean: npt.NDArray[np.float32],
    look: _OutlineSearch,
    *,
    first_beside: bool = True,
    starts: tuple[float, ...] = (),
) -> _Found | None:
    """Centre offset, radii and outline darkness of the bubble in a block's mean picture.

    Along each axis, through the current centre, the pair of dark outline points
    (c - r, c + r) that is darkest together gives the centre c and the radius r; the
    axes are done in turn, each through the other's latest centre. None when the
    outline does not stand out from the paper around it. Radii from ``look.least`` times
    ``look.radii`` (rounded up to a whole pixel, so never under that share) are looked
    for: smaller rings are a letter or digit printed inside the bubble.

    ``first_beside``: whether the first axis's profile has the profile beside the bubble
    taken off, as every later axis's has (see ``_profiles``). Where the bubble is placed
    there is only ``look.radii``' guess until its size across is measured.
    """
    return _outlines(mean[None], look, first_beside=first_beside, starts=starts)[0]


def _outlines(
    means: npt.NDArray[np.float32],
    look: _OutlineSearch,
    *,
    first_beside: bool = True,
    starts: tuple[float, ...] = (),
    middle: list[_Found | None] | None = None,
) -> list[_Found | None]:
    """``_outline`` of each of several mean pictures (n, height, width) of one block.

    The pairs of outline points tried are the same for every picture, so they are scored
    for all pictures at once: a block's columns and rows (``_stretch``) cost one pass.

    ``starts``: for a picture whose outline does not stand out searched from the middle
    (``middle``: that search, where already made), offsets across (patch pixels) to
    search again from; of the outlines found from several, the darkest is kept. The
    first profile runs down through the middle: a bubble printed about a radius off
    across (a block printed wider than its template lays it out, at its outer columns)
    shows it only its side, and no top and bottom outline; begun a radius over, it runs
    through the bubble.
    """
    out = list(middle) if middle is not None else _search(means, look, first_beside, 0.0)
    lost = [k for k, got in enumerate(out) if got is None]
    for other in starts if lost else ():
        again = _search(means[lost], look, first_beside, other)
        for k, got in zip(lost, again, strict=True):
            best = out[k]
            if got is not None and (best is None or got[2] > best[2]):
                out[k] = got
    return out


def _search(
    means: npt.NDArray[np.float32], look: _OutlineSearch, first_beside: bool, start: float
) -> list[_Found | None]:
    """``_outlines`` begun ``start`` patch pixels across (along x) from the middle."""
    import numpy as np

    hx, hy, radii, reach, top, side, least = look.hx, look.hy, look.radii, look.reach, look.top, look.side, look.least

    n = len(means)
    c = [[start, 0.0] for _ in range(n)]  # offset x, y (patch pixels from its middle)
    r = [[radii[0], radii[1]] for _ in range(n)]
    strength = [[0.0, 0.0] for _ in range(n)]
    # The pictures still searched (their indices among ``means``): one whose outline does
    # not stand out along an axis has none, and is searched no further (each picture's
    # search is its own, so the others come out the same).
    live = list(range(n))
    for step, axis in enumerate((1, 0, 1, 0)):
        beside = side if first_beside or step else (0.0, 0.0)  # (0, 0): nothing beside
        stack = _profiles(means, axis, c, r, hx, hy, beside)  # (pictures, profile)
        middle = hx if axis == 0 else hy
        rr, cc, ends, prior, penalty = _pairs(stack.shape[1], middle, least * radii[axis], top[axis], reach[axis])
        # Both outline points dark, and lighter just outside them (paper).
        at = stack.take(ends, axis=1)  # (pictures, 4, radii, offsets): a, b and just outside each
        outside = 0.5 * (at[:, 2] + at[:, 3])
        # The print is looked for near where the template puts it: a pair further off
        # must be that much darker (a mark's edge and the next row's outline can pair
        # up as well as a bubble's own outline, and more often the further off). A pair
        # off the profile pays without end.
        scores = np.minimum(at[:, 0], at[:, 1]) - outside - penalty
        best = np.argmax(scores.reshape(len(live), -1), axis=1).tolist()
        width = scores.shape[2]
        kept: list[int] = []
        for k in range(len(live)):
            i, j = divmod(best[k], width)
            peak = float(scores[k, i, j])
            # The prior picks among outlines; how dark the outline is is its own matter.
            if not peak + float(prior[0, j]) >= MIN_OUTLINE:
                continue
            kept.append(k)
            strength[k][axis] = peak
            c[k][axis] = float(cc[0, j]) + _vertex(scores[k, i, :], j)
            r[k][axis] = float(rr[i, 0]) + _vertex(scores[k, :, j], i)
        if len(kept) < len(live):
            if not kept:
                return [None] * n
            live = [live[k] for k in kept]
            c, r, strength = [c[k] for k in kept], [r[k] for k in kept], [strength[k] for k in kept]
            means = means[kept]
    # (a + b) / 2 is np.mean of two floats, without its overhead.
    out: list[_Found | None] = [None] * n
    for k, picture in enumerate(live):
        out[picture] = ((c[k][0], c[k][1]), (r[k][0], r[k][1]), (strength[k][0] + strength[k][1]) / 2)
    return out


def _profiles(
    means: npt.NDArray[np.float32],
    axis: int,
    c: list[list[float]],
    r: list[list[float]],
    hx: int,
    hy: int,
    side: tuple[float, float],
) -> npt.NDArray[np.float32]:
    """Each picture's profile along ``axis`` through its current centre: the mean of a
    band of rows (axis 0) or columns (axis 1) about a quarter of its radius wide, less
    the mean beside the bubble.

    Pictures whose bands (and sides) are as wide are taken together: their rows (columns)
    are gathered one picture after another, and averaged as each picture's alone would be.
    """
    import numpy as np

    n, height, width = means.shape
    other = 1 - axis
    across = height if axis == 0 else width
    bands: list[list[int]] = []
    besides: list[list[int]] = []
    groups: dict[tuple[int, int], list[int]] = {}
    for k in range(n):
        ck, rk = c[k], r[k]
        line = round((hy if axis == 0 else hx) + ck[other])
        width_k = max(1, int(0.25 * rk[other]))
        bands.append(list(range(max(0, line - width_k), min(across, line + width_k + 1))))
        # A ruled line across the axis shows in the bubble's profile and beside the
        # bubble alike: the profile beside it (past the bubble's edge, short of the
        # next bubble) is taken off, so table rules between rows do not pass for
        # outlines.
        near = int(1.3 * rk[other]) + 1
        far = int(min(1.8 * rk[other], side[other] - abs(ck[other]))) + 1
        beside: list[int] = []
        if far > near:
            beside = [*range(max(0, line - far), max(0, line - near)), *range(line + near, min(across, line + far))]
        besides.append(beside)
        groups.setdefault((len(bands[-1]), len(beside)), []).append(k)
    profiles = np.empty((n, width if axis == 0 else height), np.float32)
    for (_, count), members in groups.items():
        ks = np.array(members)
        profile = _band_mean(means, axis, ks, np.array([bands[k] for k in members]))
        if count:
            profile = profile - _band_mean(means, axis, ks, np.array([besides[k] for k in members]))
        profiles[ks] = profile
    return profiles


def _band_mean(
    means: npt.NDArray[np.float32], axis: int, ks: npt.NDArray[np.intp], lines: npt.NDArray[np.intp]
) -> npt.NDArray[np.float32]:
    """Pictures ``ks``'s mean over their rows (axis 0) or columns (axis 1) ``lines``
    (one row of indices per picture, all as long), summed and divided as ``np.mean``
    does (without its overhead)."""
    import numpy as np

    if axis == 0:
        total = np.add.reduce(means[ks[:, None], lines], axis=1)
    else:
        # Columns gathered as rows (pictures, band, height), a far cheaper lookup than
        # one index per pixel. np.add.reduce sums a band of columns one after another
        # where it is shorter than PAIRWISE, as it sums these rows; a wider one pairwise,
        # so it is laid out as columns again first.
        across = means[ks[:, None], :, lines]
        if lines.shape[1] < PAIRWISE:
            total = np.add.reduce(across, axis=1)
        else:
            total = np.add.reduce(np.ascontiguousarray(across.transpose(0, 2, 1)), axis=2)
    return np.asarray(np.true_divide(total, np.intp(lines.shape[1]), out=total, casting="unsafe"), np.float32)


@functools.lru_cache(maxsize=64)
def _pairs(length: int, middle: int, least: float, top: float, reach: float) -> tuple[npt.NDArray[Any], ...]:
    """The outline point pairs ``_outlines`` tries along one axis of a profile: radii
    ``rr`` (column, from ``least`` rounded up to ``top``) by centre offsets ``cc`` (row);
    the two points' indices and those just outside them, stacked (4, radii, offsets); the
    pull towards the middle; and that pull made endless for a pair not wholly on the
    profile."""
    import numpy as np

    lo = max(1, math.ceil(least))
    hi = max(lo + 1, int(top))
    reach_px = int(reach)
    rr = np.arange(lo, hi + 1)[:, None]
    cc = np.arange(-reach_px, reach_px + 1)[None, :]
    last = length - 1
    a, b = middle + cc - rr, middle + cc + rr
    inside = (a >= 0) & (b <= last)
    a, b = np.clip(a, 0, last), np.clip(b, 0, last)
    ends = np.stack([a, b, np.clip(a - 2, 0, last), np.clip(b + 2, 0, last)])
    prior = NEAR_PRIOR * np.abs(cc) / max(reach_px, 1)
    penalty = np.where(inside, prior, np.inf)
    out = (rr, cc, ends, prior, penalty)
    for arr in out:
        arr.flags.writeable = False
    return out


def _middle(
    mean: npt.NDArray[np.float32], look: _OutlineSearch, *, prior: float = 0.0, isolated: bool = False
) -> tuple[float, float, float] | None:
    """Offset (patch pixels) and contrast of the print inside a block's mean bubble: where
    the mean darkness inside the bubble's ellipse (``look.radii``) most exceeds that of a
    band round it, searched within ``look.reach``. None when that contrast is under
    MIN_OUTLINE or the best place lies on the edge of the search (the print is elsewhere).

    ``prior``: how much more a place a whole reach from the middle must contrast to be
    chosen over it (linear in between); it picks the place, the contrast there is judged
    on its own. ``isolated``: the contrast must also fall to ISOLATED_SHARE of itself a
    radius to either side along each axis, as it does round a bubble and not along a
    band."""
    import cv2
    import numpy as np

    hx, hy, reach = look.hx, look.hy, look.reach
    rx, ry = max(1.0, look.radii[0]), max(1.0, look.radii[1])
    kx, ky = int(1.6 * rx) + 1, int(1.6 * ry) + 1
    yy, xx = np.mgrid[-ky : ky + 1, -kx : kx + 1].astype(np.float32)
    d = np.sqrt((xx / rx) ** 2 + (yy / ry) ** 2)
    inside = (d <= 0.8).astype(np.float32)
    band = ((d >= 1.15) & (d <= 1.55)).astype(np.float32)
    if not inside.any() or not band.any():
        return None
    kernel = inside / inside.sum() - band / band.sum()
    response = cv2.filter2D(mean, cv2.CV_32F, kernel, borderType=cv2.BORDER_REPLICATE)
    px, py = int(reach[0]), int(reach[1])
    window = response[hy - py : hy + py + 1, hx - px : hx + px + 1]
    if window.size == 0:
        return None
    picked = window
    if prior:
        far = np.hypot(*np.mgrid[-py : py + 1, -px : px + 1] / np.array([max(py, 1), max(px, 1)])[:, None, None])
        picked = window - np.float32(prior) * far.astype(np.float32)
    j, i = np.unravel_index(int(np.argmax(picked)), window.shape)
    best = float(window[j, i])
    if best < MIN_OUTLINE or i in (0, window.shape[1] - 1) or j in (0, window.shape[0] - 1):
        return None
    if isolated:
        h, w = response.shape
        at_x, at_y = hx - px + int(i), hy - py + int(j)
        for sx, sy in ((rx, 0.0), (-rx, 0.0), (0.0, ry), (0.0, -ry)):
            x, y = min(w - 1, max(0, round(at_x + sx))), min(h - 1, max(0, round(at_y + sy)))
            if float(response[y, x]) > ISOLATED_SHARE * best:
                return None
    dx = i - px + _vertex(window[j, :].astype(np.float64), int(i))
    dy = j - py + _vertex(window[:, i].astype(np.float64), int(j))
    return float(dx), float(dy), best


def _dark_elsewhere(
    hole: tuple[float, float, float], dark: tuple[float, float, float] | None, look: _OutlineSearch
) -> bool:
    """Whether the block's mean bubble is dark in its middle (``_middle``: marks or print
    inside the bubbles) more than HOLE_APART of a radius from a light hole found in its
    shade.

    Marks are a minority of the bubbles only where a field has several choices: in a
    block of true/false pairs, half of them filled, the median bubble is half mark, and
    the paper between the marks is the lightest hole in it. On a public card's phone
    photo one such block was placed half a bubble off, between its marks, and read
    blank, sure of it. A light hole is the paper inside a white bubble only where what
    is dark inside the bubbles centres on it too, or centres nowhere."""
    if dark is None:
        return False
    return abs(hole[0] - dark[0]) > HOLE_APART * look.radii[0] or abs(hole[1] - dark[1]) > HOLE_APART * look.radii[1]


def _light_bubble(
    patches: npt.NDArray[np.float32], lines: tuple[_Lines, _Lines], look: _OutlineSearch
) -> tuple[float, float, float] | None:
    """Offset (patch pixels) and contrast of a block whose bubbles are paper on a shaded
    ground: where the median bubble's ellipse (``look.radii``) is lightest against a
    band round it (``_middle`` of its lightness), over all the block's bubbles or over
    every other row or column alone (whichever shows it most). None when it does not
    stand out so, or when the first and last half of those bubbles' rows or columns
    (along an axis of HALVES_MIN_LINES or more) do not centre within HALVES_APART of
    the search's reach of each other.

    A card that shades its rows and prints white bubbles on them, copied by a phone
    scanner app that whitens light greys, keeps no outline darker than the shade: each
    bubble is a light hole in it, on the deeper rows at least. The median bubble, not
    the mean, because a fifth of them carry a mark, darker than any shade."""
    import numpy as np

    n = len(patches)

    def centre(members: npt.NDArray[np.intp]) -> tuple[float, float, float] | None:
        # Looked for near the template's place, as outlines are: between columns shaded
        # in turn, the paper strip is a light band too.
        return _middle(-np.median(patches[members], axis=0).astype(np.float32), look, prior=NEAR_PRIOR, isolated=True)

    sets = [np.arange(n)]
    for axis_lines in lines:
        if len(axis_lines.places) >= 2:
            sets += [axis_lines.members[parity::2].ravel() for parity in (0, 1)]
    sets = [members[members < n] for members in sets]
    best: tuple[npt.NDArray[np.intp], tuple[float, float, float]] | None = None
    for members in sets:
        got = centre(members) if len(members) else None
        if got is not None and (best is None or got[2] > best[1][2]):
            best = (members, got)
    if best is None:
        return None
    members, whole = best
    for axis_lines in lines:
        if len(axis_lines.places) < HALVES_MIN_LINES:
            continue
        halves = [np.intersect1d(axis_lines.members[half].ravel(), members) for half in _half_slices(axis_lines)]
        first, last = (centre(half) if len(half) else None for half in halves)
        if not _centred_alike(first, last, look):
            return None
    return whole


def _vertex(values: npt.NDArray[np.float64], i: int) -> float:
    """Sub-pixel peak of a parabola through values[i - 1 .. i + 1]."""
    if i <= 0 or i >= len(values) - 1:
        return 0.0
    a, b, c = float(values[i - 1]), float(values[i]), float(values[i + 1])
    den = a - 2 * b + c
    return 0.0 if den >= 0 else max(-0.5, min(0.5, 0.5 * (a - c) / den))
