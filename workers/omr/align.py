"""Find the four corner markers and the sheet's orientation; map template to image.

``align`` dispatches on ``Template.alignment.kind`` through workers/omr/aligners.py; this
module registers "markers". Markers are the only solid, square, dark blobs of their size
on the page, so they are found on a small copy of the page, and the best-shaped set of
four is chosen. Their centres are then measured again at full resolution. On this
project's sheets the top-left marker has a white hole: whichever corner holds it is the
sheet's top-left. Four identical markers (all solid, or all with a hole) leave each turn
that fits the template's aspect, and the bubble layout picks (workers/omr/layout.py).

In photo mode the search takes more shapes (small, blurred, foreshortened markers) and
workers/omr/photo.py tries the candidate rectangles in turn (``ranked_quads``, ``fit``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from workers.omr.aligners import aligner_register
from workers.omr.errors import NO_SHEET_FOUND, RESOLUTION_TOO_LOW, TEMPLATE_MISMATCH, OmrError
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.layout import LayoutFit
    from workers.omr.sample import Samples

WORK_SIDE: Final = 1000  # long side of the copy the markers are searched on
MIN_DPI: Final = 90  # below this a bubble is too few pixels to judge
MAX_CANDIDATES: Final = 14


@dataclass(frozen=True)
class Alignment:
    #: 3x3 perspective transform from template pixels to image pixels.
    homography: npt.NDArray[np.float64]
    #: how far the sheet is turned in the image, clockwise degrees (0, 90, 180, 270).
    rotation: int
    #: image pixels per template pixel.
    scale: float
    ink: float  # grey level of the markers (the darkest thing printed)
    paper: float  # grey level of the paper around them
    #: the bubbles measured through this alignment, when finding it took that already
    #: (photo mode tests each candidate's printed outlines); the reader then reuses them.
    samples: Samples | None = field(default=None, compare=False, repr=False)
    #: the template's blocks found on the sheet through this alignment, when choosing it
    #: took that already (workers/omr/layout.py); the reader then reuses it.
    layout: LayoutFit | None = field(default=None, compare=False, repr=False)
    #: "left", "top", "right" or "bottom": the picture's edge that one side of a page found
    #: by its edges lies on, so the page may run on past it; "" otherwise. The template is
    #: then stretched over the part in view only, and every field goes to review.
    runs_off: str = ""


@dataclass(frozen=True)
class _Blob:
    x: float
    y: float
    side: float


def align(image: npt.NDArray[np.uint8], template: Template, *, photo: bool = False, wide: bool = False) -> Alignment:
    """The template-to-image alignment, by the aligner the template's ``alignment.kind``
    names (workers/omr/aligners.py). ``image`` may be colour (BGR) or greyscale.

    ``wide``: where the aligner leaves the sheet's turn to the layout, the bubbles are
    looked for printed up to layout.WIDE_SIZE times the template's size (the reader's
    second look, ``reader.read_gray``)."""
    return align_turns(image, template, photo=photo, wide=wide)[0]


def align_turns(
    image: npt.NDArray[np.uint8], template: Template, *, photo: bool = False, wide: bool = False
) -> list[Alignment]:
    """The alignments ``align`` chooses among, its choice first: the one alignment an
    aligner finds, or the turns (and rival marker sets) of a sheet whose markers cannot
    say which way up it lies, the one the layout fits best (``pick_orientation``) first
    and the others in the aligner's order, the likelier first. The reader tries the
    next where the bubbles are not printed where the first puts them."""
    from workers.omr.aligners import aligner_get

    gray = as_gray(image)
    found = aligner_get(template.alignment.kind)(gray, template, photo=photo)
    candidates = [found] if isinstance(found, Alignment) else list(found)
    if not candidates:
        raise OmrError(NO_SHEET_FOUND, "no answer sheet was found")
    if len(candidates) == 1:
        return candidates
    from workers.omr.layout import SIZE_RANGE, WIDE_SIZE, pick_orientation

    picked = pick_orientation(gray, template, candidates, largest=WIDE_SIZE if wide else SIZE_RANGE[1])
    return [picked, *(c for c in candidates if c is not picked)]


def as_gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A 2-D greyscale view of a greyscale or BGR image."""
    if image.ndim == 2:
        return image
    import cv2
    import numpy as np

    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


@aligner_register("markers")
def align_markers(gray: npt.NDArray[np.uint8], template: Template, *, photo: bool = False) -> list[Alignment]:
    """Four corner markers: the template's marker picture, or solid squares.

    Squares with one hollow (this project's sheets) give one alignment; four identical
    markers give each turn that fits the template's aspect, for the layout to choose.
    """
    shape = template.alignment.options.get("shape")
    if template.marker_image is None and shape in DRAWN_SHAPES:
        # Four identical discs or L's, named by the template: searched as a picture.
        template = with_drawn_marker(template, str(shape))
    if template.marker_image is not None:
        # Four identical marker pictures (OMRChecker): a different search, see there.
        try:
            return _by_marker_picture(gray, template, photo=photo)
        except OmrError as exc:
            options = template.alignment.options
            if exc.code != NO_SHEET_FOUND or "min_matching_threshold" in options:
                raise
            # Markers whose print matches their picture only loosely (concentric rings
            # seen at a slant) are looked for once more at OMRChecker's own threshold
            # before the sheet is refused; where the template names one, it is taken at
            # its word. Only for a sheet that would be refused: every other reads as at
            # the stricter threshold.
            looser = replace(
                template,
                alignment=replace(template.alignment, options={**options, "min_matching_threshold": LOOSE_MATCH}),
            )
            try:
                return _by_marker_picture(gray, looser, photo=photo)
            except OmrError:
                raise exc from None
    import cv2
    import numpy as np

    k = min(1.0, WORK_SIDE / max(gray.shape))
    # Linear, not area, averaging: 4x cheaper, and the blur below removes the aliasing
    # that would matter; the markers searched for are large solid squares.
    small = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR) if k < 1 else gray
    small = np.asarray(cv2.GaussianBlur(small, (3, 3), 0), dtype=np.uint8)
    blobs = _candidates(small, template, k, photo)
    if photo:
        from workers.omr.photo import align_photo

        return [align_photo(gray, template, blobs, k)]
    quad = _best_quad(blobs, template)
    if quad is None:
        raise OmrError(NO_SHEET_FOUND, "the four corner markers of an answer sheet were not found")
    return fit_candidates(gray, template, quad, k, photo=False)


def _by_marker_picture(gray: npt.NDArray[np.uint8], template: Template, *, photo: bool) -> list[Alignment]:
    """The sheet found by its four identical marker pictures (``align_by_image``); a scan
    whose markers are not near its corners, looked for as in a photo."""
    from workers.omr.omrchecker_align import align_anywhere, align_by_image

    try:
        return align_by_image(gray, template, photo=photo)
    except OmrError as exc:
        if photo or exc.code != NO_SHEET_FOUND or "marker_rescale_range" in template.alignment.options:
            raise
        # A scan's markers are looked for near its corners, at about the size the page
        # predicts; a card whose markers frame only its answer grid (a part of the page)
        # has them anywhere and smaller. They are looked for as in a photo (over each
        # whole quadrant, over a wider range of sizes) before the scan is refused; it is
        # read as a scan either way. Not where the template names the sizes its markers
        # may be matched at: it is taken at its word.
        try:
            found = align_by_image(gray, template, photo=True)
        except OmrError:
            found = []
        # Matched as in a photo, kept as a scan: a flatbed keeps the markers' rectangle a
        # rectangle, so four matches off it are look-alikes.
        if found and not any(_off_parallel(a, template) > SCAN_MAX_SKEW for a in found):
            return found
        # Last, the four looked for anywhere on the scan: an exam paper whose markers
        # frame its answer grid in the top of the page has none in its lower quarters.
        try:
            return align_anywhere(gray, template)
        except OmrError as last:
            if last.code == TEMPLATE_MISMATCH:
                raise  # four markers the template's aspect does not fit: a stretched look may
            raise exc from None


#: the marker correlation OMRChecker itself needs (v1 and v2), below this reader's own
#: (omrchecker_align.MIN_MATCH): the second look of a sheet that would be refused.
LOOSE_MATCH: Final = 0.3
#: a scan's four markers found as a photo's are kept only where the sides joining them
#: miss a parallelogram by at most this many marker widths (``_off_parallel``).
SCAN_MAX_SKEW: Final = 1.0


def _off_parallel(alignment: Alignment, template: Template) -> float:
    """How far, in marker widths, the template's marker centres as ``alignment`` puts
    them in the picture miss a parallelogram (top side against bottom side)."""
    import cv2
    import numpy as np

    tl, tr, br, bl = cv2.perspectiveTransform(np.array([template.marker_centres], np.float64), alignment.homography)[0]
    miss = float(np.hypot(*((tr - tl) - (br - bl))))
    return miss / max(template.marker_size * alignment.scale, 1.0)


#: marker shapes a template may name (``alignment.shape``) that are not squares, and how
#: thick an L's bars are, as a share of its side (vendors print a quarter to a third).
DRAWN_SHAPES: Final = ("circle", "corner")
L_BAR: Final = 0.3
#: paper drawn round a marker picture on each side, as a share of the marker's side: the
#: match then needs paper round the shape, not only the shape.
PICTURE_MARGIN: Final = 0.25


def with_drawn_marker(template: Template, shape: str) -> Template:
    """The template with a picture of its marker drawn from its shape and size: a disc,
    or an L (a bar down the left side and one along the bottom, any turn of it matching)
    filling the marker's square, centred in paper."""
    import cv2
    import numpy as np

    from workers.omr.template import MarkerImage

    side = max(8, round(template.marker_size))
    pad = max(2, round(side * PICTURE_MARGIN))
    pic = np.full((side, side), 255, np.uint8)
    if shape == "circle":
        cv2.circle(pic, (side // 2, side // 2), side // 2 - 1, 0, -1, cv2.LINE_AA)
    else:
        bar = max(2, round(side * L_BAR))
        pic[:, :bar] = 0
        pic[side - bar :, :] = 0
    framed = cv2.copyMakeBorder(pic, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    ok, buf = cv2.imencode(".png", framed)
    assert ok
    full = template.marker_size * (side + 2 * pad) / side
    return replace(template, marker_image=MarkerImage(bytes(buf), full, full))


def fit_candidates(
    gray: npt.NDArray[np.uint8],
    template: Template,
    quad: list[_Blob],
    k: float,
    *,
    photo: bool,
    min_dpi: float = MIN_DPI,
) -> list[Alignment]:
    """The alignments that four marker blobs (found on the copy scaled by ``k``) allow, or
    OmrError when they are not this template's markers or the sheet is too small.

    One hollow marker among three solid ones is the top-left: one alignment. Otherwise
    (four alike: all hollow or all solid) the markers cannot say which way is up: one
    alignment per turn that fits the template's aspect, for the bubble layout to decide
    (workers.omr.layout).
    """
    import cv2
    import numpy as np

    refined = [_refine(gray, b.x / k, b.y / k, b.side / k) for b in quad]
    centres = [(c[0], c[1]) for c in refined]
    holes = [c[2] for c in refined]
    ink = float(np.median([c[3] for c in refined]))
    paper = float(np.median([c[4] for c in refined]))
    if paper - ink < 20:
        raise OmrError(NO_SHEET_FOUND, "the markers hardly differ from the paper")
    # How bright each marker's middle is, from 0 (ink) to 1 (paper): a hollow one is ~1.
    light = [(h - ink) / (paper - ink) for h in holes]
    order = sorted(range(4), key=lambda i: light[i], reverse=True)
    # The hollow one is the top-left; four alike markers (or, in a dim photo, holes that do
    # not stand out clearly) leave every turn to the layout.
    turns = [order[0]] if light[order[0]] >= 0.5 and light[order[1]] <= 0.35 else list(range(4))
    tpl_pts = np.array(template.marker_centres, np.float64)
    sides = [b.side / k for b in quad]
    out: list[Alignment] = []
    first_error: OmrError | None = None
    for first in turns:
        image_pts = np.array([centres[(first + i) % 4] for i in range(4)], np.float64)
        try:
            _check_shape(image_pts, tpl_pts, sides, template, photo)
        except OmrError as exc:
            first_error = first_error or exc
            continue
        homography = cv2.getPerspectiveTransform(tpl_pts.astype(np.float32), image_pts.astype(np.float32))
        scale = _quad_size(image_pts) / _quad_size(tpl_pts)
        if scale * template.dpi < min_dpi:
            raise OmrError(RESOLUTION_TOO_LOW, f"the sheet is scanned at about {scale * template.dpi:.0f} dpi")
        dx, dy = image_pts[1] - image_pts[0]
        rotation = round(math.degrees(math.atan2(dy, dx)) / 90) % 4 * 90
        out.append(Alignment(homography.astype(np.float64), rotation, scale, ink, paper))
    if not out:
        assert first_error is not None
        raise first_error
    return out


def fit(
    gray: npt.NDArray[np.uint8],
    template: Template,
    quad: list[_Blob],
    k: float,
    *,
    photo: bool,
    min_dpi: float = MIN_DPI,
) -> Alignment:
    """The one alignment four marker blobs give, the layout choosing among turns when the
    markers are identical (see fit_candidates)."""
    candidates = fit_candidates(gray, template, quad, k, photo=photo, min_dpi=min_dpi)
    if len(candidates) == 1:
        return candidates[0]
    from workers.omr.layout import pick_orientation

    return pick_orientation(gray, template, candidates)


def _candidates(small: npt.NDArray[np.uint8], template: Template, k: float, photo: bool) -> list[_Blob]:
    import cv2
    import numpy as np

    if photo:
        block = int(max(small.shape) / 8) | 1
        binary = cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 10)
    else:
        _, binary = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    # A scan shows most of the page, so the page is about as big as the image; a photo
    # may show it much smaller.
    page_scale = max(small.shape) / max(template.width, template.height)
    expected = template.marker_size * page_scale
    lo, hi = expected * (0.25 if photo else 0.45), expected * 1.6
    blobs: list[tuple[float, _Blob]] = []
    links = hierarchy[0]
    for contour, link in zip(contours, links, strict=True):
        if link[3] != -1:  # a hole, not a dark component
            continue
        area = cv2.contourArea(contour)
        if not lo * lo <= area <= hi * hi:
            continue
        _, (w, h), _ = cv2.minAreaRect(contour)
        # A photo foreshortens a far marker: 10 x 14 px at 25 degrees of tilt.
        if min(w, h) < (0.55 if photo else 0.75) * max(w, h):
            continue
        if area < 0.87 * w * h and not (photo and _quadrilateral(contour, area)):
            continue  # not a square (filled bubbles are round: area = 0.785 w h)
        if photo and _at_border(contour, small.shape):
            continue  # the desk or a hand cut by the frame: a marker lies inside the photo
        if photo:
            # A tilted, blurred hollow marker fills little of its upright bounding box
            # (its hole grows on the threshold): ink over the shape's own area instead.
            ink = 1 - _hole_area(contours, links, int(link[2])) / max(area, 1e-6)
        else:
            x, y, bw, bh = cv2.boundingRect(contour)
            ink = float(np.count_nonzero(binary[y : y + bh, x : x + bw])) / max(bw * bh, 1)
        if ink < 0.6:
            continue  # an outlined box, not a solid marker
        moments = cv2.moments(contour)
        if moments["m00"] <= 0:
            continue
        blob = _Blob(moments["m10"] / moments["m00"], moments["m01"] / moments["m00"], math.sqrt(area))
        blobs.append((area, blob))
    blobs.sort(key=lambda t: -t[0])
    return [b for _, b in blobs[:MAX_CANDIDATES]]


def _at_border(contour: npt.NDArray[Any], shape: tuple[int, ...]) -> bool:
    import cv2

    x, y, w, h = cv2.boundingRect(contour)
    return x <= 1 or y <= 1 or x + w >= shape[1] - 1 or y + h >= shape[0] - 1


def _hole_area(contours: Any, links: npt.NDArray[Any], child: int) -> float:
    """Total area of the holes of a component, from its first hole on (-1: none)."""
    import cv2

    total = 0.0
    while child != -1:
        total += cv2.contourArea(contours[child])
        child = int(links[child][0])
    return total


def _quadrilateral(contour: npt.NDArray[Any], area: float) -> bool:
    """Photo mode: a square seen in perspective is a convex four-sided shape that fills its
    own outline, whatever its angle; the rectangle test above fails it when it is a small,
    blurred trapezoid. A disc simplified to four corners fills only 2/pi of them (0.64)."""
    import cv2

    hull = cv2.convexHull(contour)
    corners = cv2.approxPolyDP(hull, 0.08 * cv2.arcLength(hull, True), True)
    if len(corners) != 4:
        return False
    # Up to 1.25: a 10-12 px marker whose corners the blur has rounded overshoots its
    # four corners by up to a fifth (still far from a disc's 1.57).
    return 0.85 <= area / max(cv2.contourArea(corners), 1e-6) <= 1.25


def _best_quad(blobs: list[_Blob], template: Template) -> list[_Blob] | None:
    """A scan's markers: the four blobs that make the biggest plausible rectangle, clockwise
    (photo mode tries several instead: workers/omr/photo.py)."""
    quads = ranked_quads(blobs, template, False, limit=1)
    return quads[0] if quads else None


def ranked_quads(blobs: list[_Blob], template: Template, photo: bool, *, limit: int) -> list[list[_Blob]]:
    """Up to ``limit`` sets of four blobs that make a plausible marker rectangle, clockwise,
    the biggest first."""
    tw = template.marker_centres[1][0] - template.marker_centres[0][0]
    th = template.marker_centres[3][1] - template.marker_centres[0][1]
    tpl_ratio = template.marker_size / math.sqrt(tw * th)
    # A photo's markers differ in size: perspective (a near corner looks bigger) and
    # shading (a marker in shadow grows on the adaptive threshold).
    min_side = 0.45 if photo else 0.6
    found: list[tuple[float, list[_Blob]]] = []
    for combo in itertools.combinations(blobs, 4):
        sides = [b.side for b in combo]
        if min(sides) < min_side * max(sides):
            continue
        quad = _clockwise(list(combo))
        pts = [(b.x, b.y) for b in quad]
        area = polygon_area(pts)
        if area <= 0 or not _convex(pts):
            continue
        a, b = _dist(pts[0], pts[1]), _dist(pts[3], pts[2])
        c, d = _dist(pts[0], pts[3]), _dist(pts[1], pts[2])
        tol = 0.6 if photo else 0.85
        if min(a, b) < tol * max(a, b) or min(c, d) < tol * max(c, d):
            continue  # opposite sides must be about equal
        ratio = (sum(sides) / 4) / math.sqrt(area)
        if not 0.6 * tpl_ratio <= ratio <= 1.6 * tpl_ratio:
            continue  # markers far too big or small for that rectangle
        found.append((area, quad))
    found.sort(key=lambda t: -t[0])
    return [q for _, q in found[:limit]]


def _refine(gray: npt.NDArray[np.uint8], x: float, y: float, side: float) -> tuple[float, float, float, float, float]:
    """Full-resolution centre, hole grey, ink grey and paper grey of one marker."""
    import cv2
    import numpy as np

    h, w = gray.shape
    half = int(side * 1.1)
    x0, y0 = max(0, int(x) - half), max(0, int(y) - half)
    x1, y1 = min(w, int(x) + half + 1), min(h, int(y) + half + 1)
    roi = gray[y0:y1, x0:x1]
    _, binary = cv2.threshold(roi, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    cx, cy = x - x0, y - y0
    outer = (
        [c for c, link in zip(contours, hierarchy[0], strict=True) if link[3] == -1] if hierarchy is not None else []
    )
    if outer:
        contour = max(outer, key=cv2.contourArea)
        m = cv2.moments(contour)
        if m["m00"] > 0.25 * side * side:
            cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
            side = math.sqrt(m["m00"])
    r_hole = max(1, int(side * 0.12))
    ix, iy = round(cx), round(cy)
    centre = roi[max(0, iy - r_hole) : iy + r_hole + 1, max(0, ix - r_hole) : ix + r_hole + 1]
    # Ink from the frame between the hole and the edge: a band at 35-45 % of the side.
    inner, band = int(side * 0.3), int(side * 0.42)
    frame = np.concatenate(
        [
            roi[max(0, iy - band) : max(0, iy - inner), max(0, ix - band) : ix + band + 1].ravel(),
            roi[iy + inner + 1 : iy + band + 1, max(0, ix - band) : ix + band + 1].ravel(),
        ]
    )
    paper_pixels = roi[binary == 0]
    return (
        x0 + cx,
        y0 + cy,
        float(np.mean(centre)) if centre.size else 0.0,
        float(np.median(frame)) if frame.size else 0.0,
        float(np.percentile(paper_pixels, 75)) if paper_pixels.size else 255.0,
    )


def _check_shape(
    image_pts: npt.NDArray[np.float64],
    tpl_pts: npt.NDArray[np.float64],
    sides: list[float],
    template: Template,
    photo: bool,
) -> None:
    """Markers found, but are they where *this* template puts them?"""
    top, bottom = _dist(image_pts[0], image_pts[1]), _dist(image_pts[3], image_pts[2])
    left, right = _dist(image_pts[0], image_pts[3]), _dist(image_pts[1], image_pts[2])
    aspect = (top + bottom) / (left + right)
    tpl_aspect = (tpl_pts[1][0] - tpl_pts[0][0]) / (tpl_pts[3][1] - tpl_pts[0][1])
    tol = 0.2 if photo else 0.06
    if abs(aspect / tpl_aspect - 1) > tol:
        raise OmrError(
            TEMPLATE_MISMATCH,
            f"the markers form a {aspect:.2f} rectangle; template {template.name!r} has {tpl_aspect:.2f}",
        )
    scale = _quad_size(image_pts) / _quad_size(tpl_pts)
    size = sum(sides) / len(sides) / scale
    if abs(size / template.marker_size - 1) > 0.3:
        raise OmrError(
            TEMPLATE_MISMATCH, f"the markers are {size:.0f} px; template {template.name!r} has {template.marker_size}"
        )


def quad_plausible(pts: npt.NDArray[np.float64]) -> bool:
    """Four corners that can be a sheet: convex, and opposite sides within a factor 1.5.
    A fit that folds or stretches the page that much is a wrong fit, whatever found it."""
    signs = set()
    for i in range(4):
        (x1, y1), (x2, y2), (x3, y3) = pts[i], pts[(i + 1) % 4], pts[(i + 2) % 4]
        signs.add((x2 - x1) * (y3 - y2) - (y2 - y1) * (x3 - x2) > 0)
    if len(signs) != 1:
        return False
    side = [math.dist(pts[i], pts[(i + 1) % 4]) for i in range(4)]
    return min(side[0], side[2]) * 1.5 >= max(side[0], side[2]) and min(side[1], side[3]) * 1.5 >= max(side[1], side[3])


def _clockwise(blobs: list[_Blob]) -> list[_Blob]:
    cx = sum(b.x for b in blobs) / len(blobs)
    cy = sum(b.y for b in blobs) / len(blobs)
    # Image y points down, so increasing atan2 runs clockwise on screen.
    return sorted(blobs, key=lambda b: math.atan2(b.y - cy, b.x - cx))


def polygon_area(pts: Any) -> float:
    """Signed area of a polygon given as (x, y) pairs (a list or an (n, 2) array); positive
    when the corners run clockwise on screen. Every aligner measures its quads with this one."""
    s = 0.0
    n = len(pts)
    for i in range(n):
        x1, y1 = pts[i]
        x2, y2 = pts[(i + 1) % n]
        s += float(x1) * float(y2) - float(x2) * float(y1)
    return s / 2


def _convex(pts: Any) -> bool:
    """Whether the polygon of (x, y) pairs (a list or an (n, 2) array) turns one way only."""
    signs = set()
    n = len(pts)
    for i in range(n):
        (x1, y1), (x2, y2), (x3, y3) = pts[i], pts[(i + 1) % n], pts[(i + 2) % n]
        signs.add((x2 - x1) * (y3 - y2) - (y2 - y1) * (x3 - x2) > 0)
    return len(signs) == 1


def _quad_size(pts: npt.NDArray[np.float64]) -> float:
    return math.sqrt(abs(polygon_area(pts)))


def _dist(a: tuple[float, float] | npt.NDArray[np.float64], b: tuple[float, float] | npt.NDArray[np.float64]) -> float:
    return math.hypot(float(a[0]) - float(b[0]), float(a[1]) - float(b[1]))
