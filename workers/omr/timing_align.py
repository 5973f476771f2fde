"""Align a sheet by its timing marks: a track of small solid bars along an edge.

Korean OMR cards (and most cards made for OMR scanners) print a row of evenly spaced
black bars along one edge, one per bubble row, and often a second track along another
edge. A project template declares them (template pixels)::

    "alignment": {
        "kind": "timing",
        "tracks": [
            {"first": [40, 300], "step": [0, 52], "count": 40, "size": [30, 12]},
            {"first": [200, 60], "step": [48, 0], "count": 25, "size": [12, 30]}
        ]
    }

``first`` is the centre of the track's first mark, ``step`` the distance from one mark's
centre to the next, ``count`` how many marks, ``size`` a mark's [width, height].

How a sheet is found:

1. Solid blobs of about a mark's shape are found on a small copy of the picture (dark
   connected shapes that fill their turned bounding box: a bar, not a ring or a disc).
2. For each track, every pair of blobs that could be its two ends (their distance fits
   ``count - 1`` steps at a plausible scale, their size fits that scale) is checked: the
   marks in between must lie where even spacing puts them. The runs with all (or all but
   a tenth) of their marks are kept.
3. Each combination of runs, one per track, each read either way, gives point pairs:
   with marks all on one line (one track, or two down the same edge) a similarity
   (shift, turn, one scale: a scan), else a homography (a photo's perspective). A fit
   whose marks miss their places by more than a fifth of a step, or that folds the
   page, is dropped.
4. Of the fits left, the two ways round (upright and upside down) are returned, the one
   under which more of the template's bubbles are printed first (page_align.layout_score).

Anything missing is NO_SHEET_FOUND; a malformed ``tracks`` is TEMPLATE_INVALID naming the
setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from workers.omr.align import Alignment, polygon_area, quad_plausible
from workers.omr.aligners import aligner_register
from workers.omr.errors import NO_SHEET_FOUND, TEMPLATE_INVALID, OmrError
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]
    Points = npt.NDArray[np.float64]

#: long side of the copy the marks are searched on.
WORK_SIDE: Final = 1400
#: a mark fills at least this share of its turned bounding box grown by a pixel (a
#: small blurred bar: 0.8; a filled disc 0.79 less its grown edge, about 0.7).
MIN_FILL: Final = 0.75
#: a mark in between must lie within this share of a step of where even spacing puts it.
SPACING_TOL: Final = 0.3
#: a fitted transform must put every mark within this share of a step of its blob.
MAX_RESIDUAL: Final = 0.2
#: a run may miss this share of its marks (a torn edge, a staple).
MAX_MISSING: Final = 0.1
#: runs kept per track (two tracks with the same spacing down one edge share every
#: mark, so several runs of the right length must be tried) ...
RUNS_PER_TRACK: Final = 10
#: ... and combinations of them tried.
MAX_COMBINATIONS: Final = 400
MAX_TRACKS: Final = 4
MAX_BLOBS: Final = 600


@dataclass(frozen=True)
class Track:
    first: tuple[float, float]
    step: tuple[float, float]
    count: int
    size: tuple[float, float]

    def centres(self) -> list[tuple[float, float]]:
        return [(self.first[0] + i * self.step[0], self.first[1] + i * self.step[1]) for i in range(self.count)]

    @property
    def pitch(self) -> float:
        return math.hypot(*self.step)


def parse_tracks(options: Mapping[str, Any], template: Template) -> tuple[Track, ...]:
    """``alignment.tracks`` as Tracks; TEMPLATE_INVALID naming the setting when malformed."""
    raw = options.get("tracks")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TRACKS:
        raise _invalid(f"alignment.tracks: must be a list of 1 to {MAX_TRACKS} timing tracks")
    out = []
    for i, item in enumerate(raw):
        where = f"alignment.tracks[{i}]"
        if not isinstance(item, Mapping):
            raise _invalid(f"{where}: must be an object with first, step, count and size")
        first = _pair(item, "first", where, -1e5, 1e5)
        step = _pair(item, "step", where, -1e4, 1e4)
        size = _pair(item, "size", where, 2, 1000)
        count = item.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 3 <= count <= 500:
            raise _invalid(f"{where}.count: must be a whole number from 3 to 500")
        track = Track(first, step, count, size)
        if track.pitch < 1.2 * min(size):
            raise _invalid(f"{where}.step: marks {track.pitch:g} px apart would touch ({min(size):g} px marks)")
        for x, y in (track.centres()[0], track.centres()[-1]):
            if not (0 <= x <= template.width and 0 <= y <= template.height):
                raise _invalid(f"{where}: the track runs off the page ({x:g}, {y:g})")
        out.append(track)
    return tuple(out)


@aligner_register("timing")
def align_timing(gray: Gray, template: Template, *, photo: bool = False) -> list[Alignment]:
    """Aligner "timing": the template's timing tracks found on the sheet (see above).

    A phone photo foreshortens a track: its marks are no longer evenly spaced, and marks
    on one line cannot say how the page tilts away from that line. So a photo of a card
    whose marks all lie on one line is found by its page edges (page_align), and so is
    one whose tracks do not fit.
    """
    if not photo:
        return _align_tracks(gray, template, photo=False)
    from workers.omr.page_align import align_page

    if _in_line(parse_tracks(template.alignment.options, template)):
        return align_page(gray, template, photo=True)
    try:
        return _align_tracks(gray, template, photo=True)
    except OmrError as exc:
        if exc.code != NO_SHEET_FOUND:
            raise
        return align_page(gray, template, photo=True)


def _align_tracks(gray: Gray, template: Template, *, photo: bool) -> list[Alignment]:
    import cv2
    import numpy as np

    from workers.omr.page_align import DECISIVE, MIN_LAYOUT, TIE, _levels, layout_score

    tracks = parse_tracks(template.alignment.options, template)
    k = min(1.0, WORK_SIDE / max(gray.shape[:2]))
    small = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR) if k < 1 else gray
    small = np.asarray(cv2.GaussianBlur(small, (3, 3), 0), np.uint8)
    page_scale = max(small.shape) / max(template.width, template.height)
    scales = (page_scale * (0.25 if photo else 0.5), page_scale * 1.6)
    mark_area = [t.size[0] * t.size[1] for t in tracks]
    areas = (0.4 * min(mark_area) * scales[0] ** 2, 1.6 * max(mark_area) * scales[1] ** 2)
    elongated = all(max(t.size) >= 2 * min(t.size) for t in tracks)
    blobs, sizes = _blobs(small, photo, areas, elongated)
    if len(blobs) < 3:
        raise OmrError(NO_SHEET_FOUND, "no timing marks were found on this picture")
    runs = [_runs(blobs, sizes, t, scales) for t in tracks]
    for i, found in enumerate(runs):
        if not found:
            raise OmrError(NO_SHEET_FOUND, f"timing track {i + 1} ({tracks[i].count} marks) was not found")
    fits = _fits(tracks, runs, template, k)
    if not fits:
        raise OmrError(NO_SHEET_FOUND, "the timing marks found do not fit this template's tracks")
    ink, paper = _levels(gray, _page(fits[0][1], template))
    if paper - ink < 20:
        raise OmrError(NO_SHEET_FOUND, "the timing marks hardly differ from the paper")
    scored = []
    for residual, hom in fits:
        corners = _page(hom, template)
        scale = math.sqrt(abs(polygon_area(corners)) / (template.width * template.height))
        dx, dy = corners[1] - corners[0]
        rotation = round(math.degrees(math.atan2(dy, dx)) / 90) % 4 * 90
        alignment = Alignment(hom, rotation, scale, ink, paper)
        scored.append((layout_score(gray, template, hom), residual, alignment))
    # The best-fitting transform per way round; then the likelier way round first.
    best: dict[int, tuple[float, float, Alignment]] = {}
    for item in sorted(scored, key=lambda t: t[1]):
        best.setdefault(item[2].rotation, item)
    ranked = sorted(best.values(), key=lambda t: t[1])
    if len(ranked) > 1:
        top = ranked[0]
        other = max(ranked[1:], key=lambda t: t[0])
        flip = other[0] >= top[0] + TIE and other[0] >= MIN_LAYOUT
        ranked = [other, top] if flip else [top, other]
        if ranked[0][0] >= MIN_LAYOUT and ranked[1][0] <= ranked[0][0] - DECISIVE:
            ranked = ranked[:1]  # no doubt left: the reader need not weigh the other
    return [a for _, _, a in ranked]


# --- pieces ------------------------------------------------------------------------------


def _blobs(
    small: Gray, photo: bool, areas: tuple[float, float], elongated: bool
) -> tuple[Points, npt.NDArray[np.float64]]:
    """Centres and (long, short) sides of the solid bar-like blobs on the copy whose area
    (pixels) lies within ``areas``; ``elongated``: only bars clearly longer than wide."""
    import cv2
    import numpy as np

    if photo:
        block = int(max(small.shape) / 12) | 1
        binary = cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 12)
    else:
        _, binary = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    _, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    centres: list[tuple[float, float]] = []
    sides: list[tuple[float, float]] = []
    # Size first, from the component statistics alone: most print (text, lines, bubbles)
    # is left out before any per-blob work.
    area_all = stats[:, cv2.CC_STAT_AREA]
    box_all = stats[:, cv2.CC_STAT_WIDTH] * stats[:, cv2.CC_STAT_HEIGHT]
    keep = (area_all >= max(6.0, areas[0])) & (area_all <= areas[1]) & (area_all >= 0.3 * box_all)
    if elongated:
        # A bar turned up to 20 degrees still has a bounding box 1.3 times longer than wide.
        bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
        keep &= np.maximum(bw, bh) >= 1.3 * np.minimum(bw, bh)
    keep[0] = False  # the background
    for i in np.nonzero(keep)[0]:
        area = int(area_all[i])
        x, y, w, h = (int(stats[i, j]) for j in (0, 1, 2, 3))
        ys, xs = np.nonzero(labels[y : y + h, x : x + w] == i)
        pts = np.stack([xs + x, ys + y], axis=1).astype(np.float32)
        (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
        rw, rh = rw + 1, rh + 1  # pixel centres to pixel edges
        if area < MIN_FILL * rw * rh:
            continue  # a ring, a disc, a letter: not a solid bar
        centres.append((float(centroids[i][0]), float(centroids[i][1])))
        sides.append((max(rw, rh), min(rw, rh)))
        if len(centres) >= MAX_BLOBS:
            break
    return np.array(centres, np.float64).reshape(-1, 2), np.array(sides, np.float64).reshape(-1, 2)


def _runs(
    blobs: Points, sides: npt.NDArray[np.float64], track: Track, scales: tuple[float, float]
) -> list[tuple[Points, frozenset[int]]]:
    """Runs of evenly spaced blobs that could be ``track``: image points, first to last,
    and the blobs they use."""
    import numpy as np

    n = track.count
    length = track.pitch * (n - 1)
    mark_long, mark_short = max(track.size), min(track.size)
    d = np.hypot(blobs[:, None, 0] - blobs[None, :, 0], blobs[:, None, 1] - blobs[None, :, 1])
    scale = d / length  # the scale each pair implies
    ii, jj = np.nonzero(np.triu((d >= length * scales[0]) & (d <= length * scales[1]), 1))
    if not len(ii):
        return []
    s = scale[ii, jj]
    # Both ends must be a mark of about the size that scale gives (within 1.6 x).
    ok = np.ones(len(ii), bool)
    for idx in (ii, jj):
        long_ratio = sides[idx, 0] / (mark_long * s)
        short_ratio = sides[idx, 1] / (mark_short * s)
        ok &= (long_ratio > 1 / 1.6) & (long_ratio < 1.6) & (short_ratio > 1 / 1.8) & (short_ratio < 1.8)
    if mark_long >= 1.5 * mark_short:
        # Bars: as elongated as the template's, give or take half (a disc is not a bar).
        want = mark_long / mark_short
        for idx in (ii, jj):
            ratio = sides[idx, 0] / np.maximum(sides[idx, 1], 1.0)
            ok &= (ratio > want / 1.6) & (ratio < want * 1.6)
    ii, jj, s = ii[ok], jj[ok], s[ok]
    if not len(ii):
        return []
    t = np.arange(n, dtype=np.float64) / (n - 1)
    need = n - int(MAX_MISSING * n)
    found: list[tuple[int, float, Points, frozenset[int]]] = []
    for start in range(0, len(ii), 128):
        a, b, sc = ii[start : start + 128], jj[start : start + 128], s[start : start + 128]
        pa, pb = blobs[a], blobs[b]
        pred = pa[:, None, :] + t[None, :, None] * (pb - pa)[:, None, :]  # (q, n, 2)
        dist = np.hypot(pred[..., None, 0] - blobs[None, None, :, 0], pred[..., None, 1] - blobs[None, None, :, 1])
        nearest = dist.argmin(axis=2)  # (q, n)
        gap = dist.min(axis=2)
        tol = (SPACING_TOL * track.pitch * sc)[:, None]
        hit = gap <= tol
        counts = hit.sum(axis=1)
        for q in np.nonzero(counts >= need)[0]:
            pts = np.where(hit[q][:, None], blobs[nearest[q]], pred[q])
            err = float(gap[q][hit[q]].mean() / (track.pitch * sc[q]))
            found.append((int(counts[q]), err, pts, frozenset(nearest[q][hit[q]].tolist())))
    found.sort(key=lambda f: (-f[0], f[1]))
    runs: list[tuple[Points, frozenset[int]]] = []
    seen: set[frozenset[int]] = set()
    for _, _, pts, members in found:
        if members in seen:
            continue  # the same marks, found from another pair of ends
        seen.add(members)
        runs.append((pts, members))
        if len(runs) >= RUNS_PER_TRACK:
            break
    return runs


def _fits(
    tracks: Sequence[Track], runs: Sequence[list[tuple[Points, frozenset[int]]]], template: Template, k: float
) -> list[tuple[float, npt.NDArray[np.float64]]]:
    """(residual in steps, homography template -> full picture) of each combination of
    runs and directions that fits."""
    import itertools

    import cv2
    import numpy as np

    tpl = [np.array(t.centres(), np.float64) for t in tracks]
    # Marks all on one line (one track, or two down the same edge) fix no perspective:
    # a similarity (shift, turn, one scale) then; otherwise a homography.
    in_line = _in_line(tracks)
    out = []
    combos = itertools.islice(itertools.product(*[range(len(r)) for r in runs]), MAX_COMBINATIONS)
    for combo in combos:
        chosen = [runs[i][c] for i, c in enumerate(combo)]
        used = [m for _, members in chosen for m in members]
        if len(set(used)) < len(used):
            continue  # two tracks sharing a mark
        for ways in itertools.product((False, True), repeat=len(tracks)):
            src = np.concatenate(tpl).astype(np.float32)
            dst = np.concatenate(
                [pts[::-1] if back else pts for (pts, _), back in zip(chosen, ways, strict=True)]
            ).astype(np.float32)
            if in_line:
                m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
                hom = None if m is None else np.vstack([m, [0.0, 0.0, 1.0]])
            else:
                hom, _ = cv2.findHomography(src, dst, 0)
            if hom is None:
                continue
            hom = np.asarray(hom, np.float64)
            back_pts = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), hom).reshape(-1, 2)
            scale = math.sqrt(abs(np.linalg.det(hom[:2, :2])))
            pitch = min(t.pitch for t in tracks) * scale
            residual = float(np.max(np.hypot(*(back_pts - dst).T))) / max(pitch, 1e-6)
            if residual > MAX_RESIDUAL:
                continue
            full = np.diag([1 / k, 1 / k, 1.0]) @ hom
            if not quad_plausible(_page(full, template)):
                continue
            out.append((residual, full))
    return out


def _in_line(tracks: Sequence[Track]) -> bool:
    """Whether every mark of every track lies on one straight line."""
    import numpy as np

    every = np.array([c for t in tracks for c in t.centres()], np.float64)
    spread = np.linalg.svd(every - every.mean(axis=0), compute_uv=False)
    return bool(spread[1] < 0.02 * spread[0])


def _page(hom: npt.NDArray[np.float64], template: Template) -> Points:
    import cv2
    import numpy as np

    corners = np.array([(0, 0), (template.width, 0), (template.width, template.height), (0, template.height)])
    return np.asarray(cv2.perspectiveTransform(corners.reshape(-1, 1, 2).astype(np.float64), hom).reshape(-1, 2))


def _pair(data: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> tuple[float, float]:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != 2:
        raise _invalid(f"{where}.{key}: must be [x, y]")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise _invalid(f"{where}.{key}: must be two numbers between {lo:g} and {hi:g}")
        out.append(float(v))
    return out[0], out[1]


def _invalid(message: str) -> OmrError:
    return OmrError(TEMPLATE_INVALID, message)
