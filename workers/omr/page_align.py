"""Align a sheet by its page edges, or take the picture itself as the page.

Two aligners for sheets without corner markers:

- **page** (OMRChecker's ``CropPage``): the template frame is the paper itself. The page
  is the biggest bright four-sided region of the picture: a phone photo of a sheet on a
  desk, a flatbed scan with the lid's dark border. Its outline is found on a small copy
  (bright region, holes closed with the template's ``morphKernel``), simplified to four
  corners, and each side is then fitted as a straight line through its own edge points
  so a rounded or dog-eared corner does not pull it. Something bright that touches the
  page (a hand, a pale patch of desk) is cut off by openings, or else the page is taken
  as the outline's four longest straight edges. When no page stands out from its
  surroundings, the picture is taken to be cropped to the page already (a scanner that
  crops, a screenshot): the frame.
- **none** (no preprocessor): the picture's own edges are the page's.

Orientation: the corners give the page's long side; of the two ways round that fit the
template's aspect (upright and upside down), the one under which more of the template's
bubbles are printed wins (``layout_score``); both are returned, the likelier first, for
the reader's own layout fit to confirm, unless one clearly wins. A layout that looks
the same either way reads upright.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from workers.omr.align import Alignment, _convex, _dist, polygon_area
from workers.omr.aligners import aligner_register
from workers.omr.errors import NO_SHEET_FOUND, RESOLUTION_TOO_LOW, OmrError
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]
    Quad = npt.NDArray[np.float64]

#: long side of the copy the page is searched on.
PAGE_SIDE: Final = 1200
#: OMRChecker's default processing width: ``morphKernel`` is in those pixels.
PROCESSING_WIDTH: Final = 666
#: the page must cover this share of the picture to count as found.
MIN_PAGE_AREA: Final = 0.12
#: a page whose corners all lie this close to the picture's corners (share of its
#: side) is the picture itself.
AT_FRAME: Final = 0.02
#: a side of the page whose two corners lie this close to one edge of the picture (share
#: of its longer side) lies on that edge.
ON_EDGE: Final = 0.005
#: openings tried to cut bright things off the page (share of the copy's short side) ...
OPENINGS: Final = (0.01, 0.03, 0.06)
#: ... until the bright region fills its four-cornered outline this well.
MIN_RECTANGULAR: Final = 0.985
#: the page's straight edges replace its simplified outline when the outline runs along
#: at least this share of each of them.
MIN_SUPPORT: Final = 0.6
#: a bubble's half side must be this many image pixels to be read (as for OMRChecker
#: templates, omrchecker.MIN_BUBBLE_RADIUS_PX).
MIN_RADIUS_PX: Final = 2.5
#: two orientations whose layout scores differ by less than this are a tie.
TIE: Final = 0.1
#: a block's shift to its print counts (refine_by_print) when this share of its bubbles
#: agree on it.
MIN_AGREE: Final = 0.25
#: layout_score looks at the sheet at a size where the smallest bubble is this many
#: pixels across (and the page at most SCORE_MAX_SIDE).
BUBBLE_PX: Final = 16
SCORE_MAX_SIDE: Final = 2000
#: the page's aspect may differ this much from the template's (log of the ratio; a photo
#: foreshortens the page, and templates are written for the page OMRChecker found).
ASPECT_TOL: Final = 0.5
#: the picture is taken sideways only when that fits the template's aspect by this much
#: better (log of the ratio).
SIDEWAYS_MARGIN: Final = 0.3
#: upside down is chosen only when at least this share of the template's bubbles show.
MIN_LAYOUT: Final = 0.5
#: a way round that shows this much more of them than the other is the only one returned.
DECISIVE: Final = 0.4


@aligner_register("page")
def align_page_edges(gray: Gray, template: Template, *, photo: bool = False) -> list[Alignment]:
    """Aligner "page". Options (``template.alignment.options``): ``morphKernel`` [w, h]
    and ``processing_width`` (the picture width that kernel is meant for)."""
    options = template.alignment.options
    kernel = options.get("morphKernel", (10, 10))
    return align_page(
        gray,
        template,
        photo=photo,
        morph_kernel=(int(kernel[0]), int(kernel[1])),
        processing_width=int(options.get("processing_width", PROCESSING_WIDTH)),
    )


@aligner_register("none")
def align_none(gray: Gray, template: Template, *, photo: bool = False) -> list[Alignment]:
    """Aligner "none": the picture is the page (no options)."""
    return align_frame(gray, template, photo=photo)


def align_page(
    gray: Gray,
    template: Template,
    *,
    photo: bool = False,
    morph_kernel: tuple[int, int] = (10, 10),
    processing_width: int = PROCESSING_WIDTH,
) -> list[Alignment]:
    """The template frame mapped onto the page edges found in ``gray`` (CropPage): the
    ways round that fit the template's aspect, the likeliest first."""
    quad = find_page(gray, morph_kernel=morph_kernel, processing_width=processing_width)
    h, w = gray.shape[:2]
    if quad is None:
        return orient(gray, template, _frame_quad(w, h), strict=False)
    # A phone picture that cuts the page off shows a shorter page; stretched over it, the
    # template's rows slide down the print a little more with each row, and a block can be
    # fitted a whole row off. One side alone on the picture's edge is that case (a page laid
    # in a scanner's corner lies on two); its fields go to a person.
    edge = _edge_under(quad, w, h)
    return [replace(a, runs_off=edge) for a in orient(gray, template, quad)] if edge else orient(gray, template, quad)


def align_frame(gray: Gray, template: Template, *, photo: bool = False) -> list[Alignment]:
    """The template frame mapped onto the whole picture (no preprocessor)."""
    h, w = gray.shape[:2]
    return orient(gray, template, _frame_quad(w, h), strict=False)


def find_page(
    gray: Gray, *, morph_kernel: tuple[int, int] = (10, 10), processing_width: int = PROCESSING_WIDTH
) -> Quad | None:
    """The page's four corners in ``gray`` (clockwise from the top-left of the picture), or
    None when no page stands out from its surroundings."""
    import cv2
    import numpy as np

    h, w = gray.shape[:2]
    k = min(1.0, PAGE_SIDE / max(h, w))
    # Linear, not area, averaging: several times cheaper, and the blur that follows
    # removes the aliasing; the page's edges are the largest thing on the picture.
    small = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR) if k < 1 else gray
    small = np.asarray(cv2.GaussianBlur(small, (5, 5), 0), np.uint8)
    sh, sw = small.shape
    # The kernel is given in pixels of OMRChecker's processing image (the whole picture
    # at processing_width); scaled to this copy.
    zoom = sw / max(processing_width, 1)
    kx, ky = (max(1, round(v * zoom)) for v in morph_kernel)
    _, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (kx, ky)))
    # Opening cuts bright things that touch the page off it (a reflection, a hand, the
    # edge of a white desk): thin links first, then wider ones, until the outline is a
    # clean four-sided shape. (A stricter threshold is no way out: on a shaded page it
    # keeps only the page's brightest part, which can be four-sided too.)
    best: Quad | None = None
    loosest: tuple[float, Quad, npt.NDArray[np.int32]] | None = None
    found = None
    for share in OPENINGS:
        cut = max(3, round(min(sh, sw) * share)) | 1
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (cut, cut))
        found = _outline(np.asarray(cv2.morphologyEx(bright, cv2.MORPH_OPEN, kernel), np.uint8), sh * sw)
        if found is None:
            continue
        corners, fill, contour = found
        if fill >= MIN_RECTANGULAR:
            best = corners
            break
        if loosest is None:
            loosest = (fill, corners, contour)
    if best is None and loosest is not None:
        # Something bright still overlaps the page: its four longest straight edges.
        sides = _straight_sides(loosest[2])
        big = sides is not None and abs(polygon_area(sides[0])) >= 0.5 * abs(polygon_area(loosest[1]))
        best = sides[0] if sides is not None and big else loosest[1]
    elif best is not None and found is not None:
        # Clean, but a hand or a pale patch lined up with an edge can still stretch a
        # corner: when the outline's four longest straight edges, well supported, make
        # another page, they are the page.
        sides = _straight_sides(found[2])
        if sides is not None and sides[1] >= MIN_SUPPORT:
            diagonal = _dist(best[0], best[2])
            if max(_dist(a, b) for a, b in zip(sides[0], best, strict=True)) > 0.01 * diagonal:
                best = sides[0]
    if best is None:
        return None
    quad: Quad = np.asarray(best / k, np.float64)
    if _is_frame(quad, w, h):
        return None
    return quad


def _outline(bright: npt.NDArray[np.uint8], area: int) -> tuple[Quad, float, npt.NDArray[np.int32]] | None:
    """The biggest bright region's four corners, and how much of that quadrilateral the
    region fills (1.0: a clean page)."""
    import cv2
    import numpy as np

    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = np.asarray(max(contours, key=cv2.contourArea), np.int32)
    inside = cv2.contourArea(contour)
    if inside < MIN_PAGE_AREA * area:
        return None
    corners = _four_corners(contour)
    if corners is None:
        return None
    corners = _fit_sides(contour, corners)
    if corners is None:
        return None
    quad_area = abs(polygon_area(corners))
    fill = min(inside, quad_area) / max(inside, quad_area, 1.0)
    return corners, fill, contour


def _straight_sides(contour: npt.NDArray[np.int32]) -> tuple[Quad, float] | None:
    """The quadrilateral of the outline's four longest straight runs (RANSAC lines), and
    how much of its sides the outline really runs along (the smallest share over the
    four; 1.0 for a clean page): for a page that something round or ragged overlaps.
    None when the runs make no quadrilateral."""
    import numpy as np

    pts = contour.reshape(-1, 2).astype(np.float64)
    n = len(pts)
    if n < 40:
        return None
    rng = np.random.default_rng(0)  # fixed: the same picture always gives the same page
    tol = max(1.5, 0.004 * float(np.ptp(pts, axis=0).max()))
    left = np.ones(n, bool)
    lines: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]] = []
    for _ in range(4):
        idx = np.nonzero(left)[0]
        if len(idx) < 20:
            return None
        best: tuple[int, npt.NDArray[np.bool_]] | None = None
        for i in rng.choice(idx, size=min(150, len(idx)), replace=False):
            j = (i + max(5, n // 25)) % n  # a point a little further along the outline
            a, b = pts[i], pts[j]
            d = b - a
            length = float(np.hypot(*d))
            if length < 1e-6:
                continue
            normal = np.array([-d[1], d[0]]) / length
            near = (np.abs((pts - a) @ normal) < tol) & left
            count = int(np.count_nonzero(near))
            if best is None or count > best[0]:
                best = (count, near)
        if best is None or best[0] < max(20, n // 20):
            return None
        members = pts[best[1]]
        centre = members.mean(axis=0)
        _, _, vt = np.linalg.svd(members - centre)
        lines.append((centre, vt[0], len(members)))
        left &= ~best[1]
    middle = np.mean([c for c, _, _ in lines], axis=0)
    lines.sort(key=lambda line: float(np.arctan2(line[0][1] - middle[1], line[0][0] - middle[0])))
    corners = []
    for i in range(4):
        (p, u, _), (q, v, _) = lines[i - 1], lines[i]
        den = u[0] * v[1] - u[1] * v[0]
        if abs(den) < 0.2:  # neighbours must cross, not run side by side
            return None
        t = ((q[0] - p[0]) * v[1] - (q[1] - p[1]) * v[0]) / den
        corners.append(p + t * u)
    quad = np.array(corners, np.float64)
    if not _convex(quad):
        return None
    # Line i runs from corner i to corner i + 1 (corner i is where lines i - 1 and i meet).
    support = min(count / max(_dist(quad[i], quad[(i + 1) % 4]), 1.0) for i, (_, _, count) in enumerate(lines))
    return _clockwise(quad), float(support)


def orient(gray: Gray, template: Template, quad: Quad, *, strict: bool = True) -> list[Alignment]:
    """The two ways round (upright, upside down) that map the template frame onto ``quad``
    (clockwise from the picture's top-left), the likelier first; only that one when the
    layout leaves no doubt (DECISIVE).

    The frame is stretched onto the quad whatever its aspect, as OMRChecker stretches the
    page it finds. The quad is taken sideways (a landscape picture of a portrait sheet)
    only when that fits the template's aspect clearly better. Upside down goes first only
    when clearly more of the template's bubbles are printed that way (layout_score, by
    TIE and to at least MIN_LAYOUT): a layout that looks the same either way reads
    upright. ``strict``: refuse a quad whose aspect is far from the template's (a page
    found by its edges); a picture taken as the page is never refused for it.
    """
    import cv2
    import numpy as np

    tpl = np.array([(0, 0), (template.width, 0), (template.width, template.height), (0, template.height)], np.float64)
    tpl_aspect = template.width / template.height
    ink, paper = _levels(gray, quad)
    if paper - ink < 20:
        raise OmrError(NO_SHEET_FOUND, "the page is blank or as dark as its print")
    turned = [np.array([quad[(turn + i) % 4] for i in range(4)], np.float64) for turn in range(4)]
    misfit = []
    for pts in turned[:2]:
        across = _dist(pts[0], pts[1]) + _dist(pts[3], pts[2])
        down = _dist(pts[0], pts[3]) + _dist(pts[1], pts[2])
        misfit.append(abs(math.log((across / down) / tpl_aspect)))
    first = 1 if misfit[1] + SIDEWAYS_MARGIN < misfit[0] else 0
    if strict and misfit[first] > ASPECT_TOL:
        raise OmrError(
            NO_SHEET_FOUND,
            f"the page found does not have the shape of template {template.name!r} "
            f"({template.width}x{template.height})",
        )

    def ways(turns: tuple[int, int]) -> list[tuple[float, Alignment]]:
        out = []
        for turn in turns:
            pts = turned[turn]
            hom = cv2.getPerspectiveTransform(tpl.astype(np.float32), pts.astype(np.float32)).astype(np.float64)
            scale = math.sqrt(abs(polygon_area(pts)) / (template.width * template.height))
            out.append((layout_score(gray, template, hom), Alignment(hom, turn * 90, scale, ink, paper)))
        return out

    found = ways((first, first + 2))
    best = max(score for score, _ in found)
    if best < MIN_LAYOUT:
        # Neither way round shows the template's bubbles: the template may be drawn for
        # the page stretched the other way (OMRChecker stretches the page it finds onto
        # pageDimensions whatever their shapes, so a landscape frame can describe a
        # portrait sheet). The other two turns are taken where they show them, or show
        # clearly more of them (a dense card scanned a little off: 0.29 against 0.11).
        other = ways((1 - first, 3 - first))
        if max(score for score, _ in other) >= min(MIN_LAYOUT, best + TIE):
            found = other
    (up, upright), (down, _) = found
    if down >= up + TIE and down >= MIN_LAYOUT:
        found.reverse()
    scale = upright.scale
    if template.bubble_radius * scale < MIN_RADIUS_PX:
        raise OmrError(
            RESOLUTION_TOO_LOW, f"the bubbles are {2 * template.bubble_radius * scale:.1f} px across in this picture"
        )
    # A clear winner is the answer; otherwise both go to the reader's own layout fit.
    if found[0][0] >= MIN_LAYOUT and found[1][0] <= found[0][0] - DECISIVE:
        return [refine_by_print(gray, template, found[0][1])]
    return [refine_by_print(gray, template, a) for _, a in found]


def refine_by_print(gray: Gray, template: Template, alignment: Alignment) -> Alignment:
    """``alignment`` corrected so the template's blocks sit on their printed bubbles.

    A page's edges (or a picture's) place the template only as well as the paper was
    cut and scanned: a scanner that crops a few millimetres more, a page trimmed off
    square, move every bubble by the same few pixels. Each block's shift to its print
    (block_shifts) is measured, and a correction of the whole template (an affine map
    from three blocks on, a shift from one or two) fitted to the blocks whose bubbles
    agree on it. It is kept only when the blocks then sit closer to their print and no
    fewer bubbles agree; what is left per block is the reader's layout fit's to find
    (workers/omr/layout.py).
    """
    import cv2
    import numpy as np

    geo = _geometry(template)
    if not len(geo.centres):
        return alignment
    shifts = block_shifts(gray, template, alignment.homography)
    src, dst, weight = [], [], []
    for name, idx in zip(geo.names, geo.blocks, strict=True):
        if name not in shifts:
            continue
        dx, dy, agree = shifts[name]
        if agree < max(3, MIN_AGREE * len(idx)):
            continue  # too few of its bubbles agree: the shift may be noise
        centre = geo.centres[idx].mean(axis=0)
        src.append(centre)
        dst.append(centre + np.array([dx, dy]))
        weight.append(agree)
    if not src:
        return alignment
    a, b = np.array(src, np.float64), np.array(dst, np.float64)
    if len(src) >= 3:
        m, _ = cv2.estimateAffine2D(
            a.astype(np.float32), b.astype(np.float32), method=cv2.RANSAC, ransacReprojThreshold=geo.smallest / 3
        )
        if m is None:
            return alignment
        fix = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    else:
        move = np.average(b - a, axis=0, weights=np.array(weight, np.float64))
        fix = np.array([[1.0, 0.0, move[0]], [0.0, 1.0, move[1]], [0.0, 0.0, 1.0]])
    # A correction is a few pixels and a per cent of scale, never a new page; blocks'
    # centres in a line leave the affine map undetermined (RANSAC's NaNs).
    if not np.isfinite(fix).all() or np.max(np.abs(fix[:2, :2] - np.eye(2))) > 0.05:
        return alignment
    homography = alignment.homography @ fix
    before = sum(w * float(np.hypot(*(q - p))) for p, q, w in zip(a, b, weight, strict=True))
    after_shifts = block_shifts(gray, template, homography)
    after = 0.0
    for name, idx in zip(geo.names, geo.blocks, strict=True):
        if name in after_shifts and after_shifts[name][2] >= max(3, MIN_AGREE * len(idx)):
            dx, dy, agree = after_shifts[name]
            after += agree * float(np.hypot(dx, dy))
    # Kept when the blocks then sit closer to their print, and no fewer bubbles agree.
    agreeing = sum(v[2] for v in after_shifts.values())
    if after >= before or agreeing < sum(v[2] for v in shifts.values()):
        return alignment
    return replace(alignment, homography=homography, samples=None, layout=None)


def layout_score(gray: Gray, template: Template, homography: npt.NDArray[np.float64]) -> float:
    """The share of the template's bubbles that have a printed bubble-like shape near them
    through ``homography`` (0..1).

    The part of the sheet that holds the bubbles is warped into the template frame, at a
    size where the smallest bubble is about BUBBLE_PX pixels, and thresholded against its
    neighbourhood; closed shapes of about a bubble's size and shape (an outline's inside,
    or a filled mark) are the printed bubbles. A template bubble counts when one lies
    within half a bubble of it (or nearly half the distance to its nearest neighbour) and
    where its block's typical shift puts it, so a block printed a few pixels off its
    template still scores. Turned the wrong way, the bubbles land on text, margins and
    the gaps between rows, and their shifts scatter; a layout that is the same either way
    round scores the same (a tie).
    """
    geo = _geometry(template)
    if not len(geo.centres):
        return 0.0
    return sum(n for _, _, n in block_shifts(gray, template, homography).values()) / len(geo.centres)


def block_shifts(
    gray: Gray, template: Template, homography: npt.NDArray[np.float64]
) -> dict[str, tuple[float, float, int]]:
    """Where each block of the template is printed relative to where ``homography`` puts
    it: block name -> (dx, dy, bubbles that agree), template pixels.

    The shift is the median, over the block's bubbles, of the way from a bubble to the
    nearest printed bubble-like shape (see layout_score); the count is how many bubbles
    have their print within a third of a bubble of that shift. A block none of whose
    bubbles has print nearby is left out.
    """
    import numpy as np

    geo = _geometry(template)
    out: dict[str, tuple[float, float, int]] = {}
    if not len(geo.centres):
        return out
    k = min(BUBBLE_PX / geo.smallest, SCORE_MAX_SIDE / max(template.width, template.height))
    blobs = _printed_shapes(gray, geo, k, homography)
    if not len(blobs):
        return out
    x0, y0 = geo.box[0], geo.box[1]
    centres = (geo.centres - (x0, y0)) * k
    reach = geo.reach * k
    shift = np.full(centres.shape, np.nan)
    for start in range(0, len(centres), 256):
        part = centres[start : start + 256]
        d = np.hypot(part[:, None, 0] - blobs[None, :, 0], part[:, None, 1] - blobs[None, :, 1])
        near = d.argmin(axis=1)
        close = d[np.arange(len(part)), near] <= reach[start : start + 256]
        shift[start : start + 256][close] = blobs[near[close]] - part[close]
    # A block printed off its template is off as a whole: a bubble counts when its print
    # lies where its block's typical shift puts it. Turned the wrong way, the shifts
    # scatter and few bubbles agree.
    for name, idx in zip(geo.names, geo.blocks, strict=True):
        found = shift[idx]
        found = found[~np.isnan(found[:, 0])]
        if not len(found):
            continue
        typical = np.median(found, axis=0)
        agree = int(np.count_nonzero(np.hypot(*(found - typical).T) <= geo.agree[idx[0]] * k))
        out[name] = (float(typical[0]) / k, float(typical[1]) / k, agree)
    return out


def _printed_shapes(
    gray: Gray, geo: _Geometry, k: float, homography: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Centres (copy pixels) of the closed bubble-sized shapes in the bubbles' region."""
    import cv2
    import numpy as np

    x0, y0, x1, y1 = geo.box
    size = (max(8, round((x1 - x0) * k)), max(8, round((y1 - y0) * k)))
    # copy pixel -> template pixel -> image pixel
    m = homography @ np.array([[1 / k, 0, x0], [0, 1 / k, y0], [0, 0, 1]], np.float64)
    flat = cv2.warpPerspective(gray, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=255)
    block = max(3, round(3 * geo.typical * k)) | 1
    binary = cv2.adaptiveThreshold(flat, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 8)
    # Closed shapes: the ink's own components (a filled mark) and the holes the ink
    # encloses (an outline's inside), from their bounding boxes and areas alone.
    _, _, ink, ink_at = cv2.connectedComponentsWithStats(binary, connectivity=8)
    _, _, holes, holes_at = cv2.connectedComponentsWithStats(cv2.bitwise_not(binary), connectivity=4)
    stats = np.concatenate([ink[1:], holes[1:]]).astype(np.float64)
    where = np.concatenate([ink_at[1:], holes_at[1:]])
    w, h, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    # Templates often give a box smaller or bigger than the printed bubble.
    lo, hi = 0.35 * geo.smallest * k, 3.0 * geo.largest * k
    ok = (w >= lo) & (w <= hi) & (h >= lo) & (h <= hi)
    ok &= np.maximum(w, h) <= 2.5 * np.minimum(w, h)
    ok &= area >= 0.5 * w * h  # round or square, not a line or a letter
    return np.asarray(where[ok], np.float64).reshape(-1, 2)


@dataclass(frozen=True)
class _Geometry:
    centres: npt.NDArray[np.float64]  # every bubble centre, template pixels
    #: how far from its centre a bubble's print may lie and still count (layout_score).
    reach: npt.NDArray[np.float64]
    smallest: float  # the smallest bubble side
    typical: float  # the median bubble side
    largest: float
    #: (x0, y0, x1, y1): the bubbles' region with room for a template a bubble off.
    box: tuple[float, float, float, float]
    #: the bubble indices (into ``centres``) of each block, and the blocks' names.
    blocks: tuple[npt.NDArray[np.intp], ...]
    names: tuple[str, ...]
    #: how far a bubble's print may lie from its block's typical shift, per bubble.
    agree: npt.NDArray[np.float64]


# id(template) -> (template, geometry); the template is kept so its id stays its own.
_GEOMETRY: dict[int, tuple[Template, _Geometry]] = {}


def _geometry(template: Template) -> _Geometry:
    hit = _GEOMETRY.get(id(template))
    if hit is not None and hit[0] is template:
        return hit[1]
    import numpy as np

    sizes = np.array([template.bubble_size(f) for f in template.fields for _ in f.centres], np.float64).reshape(-1, 2)
    centres = np.array([c for f in template.fields for c in f.centres], np.float64).reshape(-1, 2)
    if len(centres):
        # Within half a bubble, or nearly half the way to the next bubble when they are
        # far apart: hand-written templates are often that far off the print.
        gap = template.min_gap if len(centres) > 1 else float(np.max(sizes))
        reach = np.maximum(0.5 * np.min(sizes, axis=1), 0.45 * gap)
        pad = 2 * float(np.max(sizes)) + float(np.max(reach))
        lo, hi = centres.min(axis=0) - pad, centres.max(axis=0) + pad
        box = (
            max(0.0, float(lo[0])),
            max(0.0, float(lo[1])),
            min(float(template.width), float(hi[0])),
            min(float(template.height), float(hi[1])),
        )
        names = [f.block_name for f in template.fields for _ in f.centres]
        order: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            order.setdefault(name, []).append(i)
        blocks = tuple(np.array(v, np.intp) for v in order.values())
        agree = np.min(sizes, axis=1) / 3
        small, typical, large = float(np.min(sizes)), float(np.median(sizes)), float(np.max(sizes))
        geo = _Geometry(centres, reach, small, typical, large, box, blocks, tuple(order), agree)
    else:
        geo = _Geometry(centres, np.zeros(0), 1.0, 1.0, 1.0, (0.0, 0.0, 1.0, 1.0), (), (), np.zeros(0))
    if len(_GEOMETRY) >= 16:
        _GEOMETRY.pop(next(iter(_GEOMETRY)))
    _GEOMETRY[id(template)] = (template, geo)
    return geo


# --- pieces ------------------------------------------------------------------------------


def _frame_quad(w: int, h: int) -> Quad:
    import numpy as np

    return np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64)


def _edge_under(quad: Quad, w: int, h: int) -> str:
    """The picture's edge that one side of the page lies on, when exactly one does."""
    tol = ON_EDGE * max(w, h)
    found = []
    for name, axis, at in (("left", 0, 0.0), ("top", 1, 0.0), ("right", 0, w - 1.0), ("bottom", 1, h - 1.0)):
        near = [abs(float(p[axis]) - at) <= tol for p in quad]
        if any(near[i] and near[(i + 1) % 4] for i in range(4)):
            found.append(name)
    return found[0] if len(found) == 1 else ""


def _is_frame(quad: Quad, w: int, h: int) -> bool:
    frame = _frame_quad(w, h)
    tol = AT_FRAME * max(w, h)
    return all(_dist(p, f) < tol for p, f in zip(quad, frame, strict=True))


def _four_corners(contour: npt.NDArray[np.int32]) -> Quad | None:
    """The outline simplified to four corners, clockwise from the picture's top-left."""
    import cv2
    import numpy as np

    hull = cv2.convexHull(contour)
    peri = cv2.arcLength(hull, True)
    approx = None
    for eps in (0.01, 0.02, 0.03, 0.05, 0.08):
        cand = cv2.approxPolyDP(hull, eps * peri, True)
        if len(cand) == 4:
            approx = cand.reshape(4, 2).astype(np.float64)
            break
        if len(cand) < 4:
            break
    if approx is None:
        # A corner cut by the picture's edge leaves five or more sides: the four points
        # farthest out along the diagonals are the page's corners.
        pts = hull.reshape(-1, 2).astype(np.float64)
        s, d = pts.sum(axis=1), pts[:, 0] - pts[:, 1]
        approx = np.array([pts[np.argmin(s)], pts[np.argmax(d)], pts[np.argmax(s)], pts[np.argmin(d)]])
    if len({(round(p[0]), round(p[1])) for p in approx}) < 4 or not _convex(approx):
        return None
    return _clockwise(approx)


def _fit_sides(contour: npt.NDArray[np.int32], corners: Quad) -> Quad | None:
    """Each side refitted as a line through the outline points along it (the middle
    80 %, away from the corners), the corners then the lines' crossings."""
    import cv2
    import numpy as np

    pts = contour.reshape(-1, 2).astype(np.float64)
    lines = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        length = _dist(a, b)
        if length < 8:
            return None
        u = (b - a) / length
        n = np.array([-u[1], u[0]])
        rel = pts - a
        along = rel @ u
        off = np.abs(rel @ n)
        keep = (along > 0.1 * length) & (along < 0.9 * length) & (off < max(3.0, 0.02 * length))
        if np.count_nonzero(keep) < 10:
            lines.append((a, u))
            continue
        vx, vy, x0, y0 = cv2.fitLine(pts[keep].astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    out = []
    for i in range(4):
        (p, u), (q, v) = lines[i - 1], lines[i]
        den = u[0] * v[1] - u[1] * v[0]
        if abs(den) < 1e-6:
            return None
        t = ((q[0] - p[0]) * v[1] - (q[1] - p[1]) * v[0]) / den
        out.append(p + t * u)
    quad = np.array(out, np.float64)
    # The refit must stay near the first estimate; else keep the simplified outline.
    if max(_dist(a, b) for a, b in zip(quad, corners, strict=True)) > 0.05 * _dist(corners[0], corners[2]):
        return corners
    return quad


def _levels(gray: Gray, quad: Quad) -> tuple[float, float]:
    """Ink (darkest print) and paper grey levels inside the page."""
    import cv2
    import numpy as np

    h, w = gray.shape[:2]
    k = min(1.0, 400 / max(h, w))
    small = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST) if k < 1 else gray
    mask = np.zeros(small.shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(quad * k).astype(np.int32), 255)
    # Stay off the page's own edge (a shadow, the desk seen through a torn corner).
    grow = max(3, round(min(small.shape) / 50)) | 1
    mask = np.asarray(cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (grow, grow))), np.uint8)
    inside = small[mask > 0]
    if inside.size < 100:
        inside = small.ravel()
    return float(np.percentile(inside, 0.5)), float(np.percentile(inside, 90))


def _clockwise(pts: Quad) -> Quad:
    import numpy as np

    c = pts.mean(axis=0)
    order = np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))
    ring = pts[order]
    # Start at the corner nearest the picture's top-left.
    first = int(np.argmin(ring.sum(axis=1)))
    return np.roll(ring, -first, axis=0)
