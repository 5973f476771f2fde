"""Align a sheet whose four corners show the same marker picture (OMRChecker sheets).

The project's own sheets have solid squares and a hollow top-left one; OMRChecker sheets
print one marker image in every corner. So:

1. **Find** - the marker is template-matched (normalised cross-correlation) over a small
   copy of the scan at a dozen scales around the size the template predicts; for each
   scale the best match in each quadrant is kept (on a photo, the best set of each
   quadrant's best few that can be a sheet's corners), and the scale whose four matches
   are jointly best wins (on a photo, with the fours elsewhere that score nearly as
   well, for the layout to choose from). Rotated copies of the marker are tried too
   when the picture is not symmetric, so a sideways or upside-down scan still matches. On a photo, each marker
   size of 12 px or more is matched first on a half-size copy, and on the search copy
   only near the best few matches there (the same scores, at a third of the cost). On a
   scan, every third size is matched over the whole of each quadrant and the sizes
   between only near the best few matches of the size next to them (a marker's match
   hardly moves from one size to the next; at two thirds of the cost).
   Where no marker shows about that size, the search looks again over the template's
   ``marker_rescale_range`` (OMRChecker's 35-100 % by default), at its
   ``min_matching_threshold`` when it sets one.
2. **Refine** - each centre is matched again at full resolution in a small window.
3. **Orient** - identical markers cannot tell up from down. Every corner assignment whose
   rectangle has the template's aspect (for a portrait sheet: 0 and 180 degrees) is
   returned, and the reader keeps the one under which the template's bubbles are printed
   where it puts them (workers/omr/layout.py). A layout that looks the same upside down
   cannot be told apart; it reads upright.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from workers.omr.align import MIN_DPI, Alignment, _convex, _dist, _quad_size
from workers.omr.errors import NO_SHEET_FOUND, RESOLUTION_TOO_LOW, TEMPLATE_INVALID, TEMPLATE_MISMATCH, OmrError
from workers.omr.percentile import percentile_90
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]
    Floats = npt.NDArray[np.float32]

#: normalised correlation a marker match needs in every quadrant.
MIN_MATCH: Final = 0.45
#: the grey-level spread (standard deviation, 0-255) a patch needs to be a marker: ink
#: on paper at least 20 apart (what align_by_image demands of the markers it returns)
#: spreads about 10 over a marker's patch; bare paper or a desk spreads a few.
MIN_MARKER_CONTRAST: Final = 8.0
#: the marker sizes OMRChecker's CropOnMarkers searches by default, in per cent of the size
#: its ``sheetToMarkerWidthRatio`` predicts (its ``marker_rescale_range``).
OMRCHECKER_RESCALE_RANGE: Final = (35, 100)
#: the shorter of two opposite sides of the markers' quadrilateral, as a share of the
#: longer, at least: a photo's perspective shortens the far side, a flatbed keeps both.
PHOTO_SIDES: Final = 0.6
SCAN_SIDES: Final = 0.85
#: a photo's rival fours (``_rivals``): those whose correlation is at least this share of
#: the best four's, at most this many besides it. Four filled bubbles matched a small
#: solid marker's picture 1.4 % better than the markers did at their own size.
RIVAL_SHARE: Final = 0.95
MAX_RIVALS: Final = 2
#: how far (share) a scan's marker rectangle may be from an OMRChecker template's frame.
OMRCHECKER_ASPECT_TOL: Final = 0.12
#: sizes (shares of the size the search found) a marker is matched at, full resolution:
#: the size found is within a step of the search; the centre of a symmetric marker
#: matches at its place whatever the size.
REFINE_SIZES: Final = (1.0,)
#: a photo's markers are searched on a copy with this long side, over these sizes and
#: steps (a photo may show the page much smaller than the frame), and matched at full
#: size within a step of the size found (a foreshortened marker is no longer symmetric).
PHOTO_SEARCH_SIDE: Final = 700
PHOTO_SCALES: Final = (0.3, 1.6, 9)
PHOTO_REFINE_SIZES: Final = (0.88, 1.0, 1.13)
#: the full-resolution match keeps its centre within this share of the marker's size of
#: where the search found it: it makes the centre exact, it does not look again (on a
#: far, tilted photo the desk's dark corner beside the page's, a marker's size away,
#: matched a hollow square better than the marker did).
REFINE_REACH: Final = 0.5
#: long side of the copy a scan's markers are searched on ...
SCAN_SEARCH_SIDE: Final = 500
#: ... over these sizes (shares of the size the template predicts) and steps: a scan
#: shows the page at about its size, and a marker under 10 px matches paper noise.
SCAN_SCALES: Final = (0.7, 1.45, 7)
#: a scan shows the page at about its size: its corner markers lie within this share of
#: the picture from its corners (a quarter: markers an eighth of the page in, and room
#: for a page shifted or shrunk on the scanner bed).
SCAN_REACH: Final = 0.3
#: a photo's weakest marker match must stand out from its surroundings by at least this
#: share of the strongest's ink-to-paper contrast (shaded markers on the omr-dev photos
#: keep 0.43 or more; a match on the desk's texture beside the sheet 0.03).
MIN_CONTRAST_SHARE: Final = 0.25
#: correlation a scan's four marker matches lose per marker width by which they miss a
#: parallelogram (a flatbed scan keeps straight lines parallel): a tenth, so a look-alike
#: two widths off the marker's place (the page's corner next to an L) loses to it.
SCAN_CLOSURE_COST: Final = 0.1


def align_by_image(gray: Gray, template: Template, *, photo: bool = False) -> list[Alignment]:

    info = template.marker_image
    if info is None:  # pragma: no cover - align() only calls this with a marker image
        raise OmrError(TEMPLATE_INVALID, "the template has no marker image")
    variants = _variants(info.data)
    small, k, expected, own, options, threshold = _search_copy(gray, template, photo=photo)
    reach = 0.5 if photo else SCAN_REACH
    if photo and options.get("in_page"):
        # The reader's look at a photo its first alignment gave no sheet for: the
        # markers looked for only in the corners of the page its edges outline.
        in_page = _in_page_fit(gray, template, variants, options, threshold)
        if in_page is None:
            raise OmrError(NO_SHEET_FOUND, "no page with four corner markers was found in the photo")
        return in_page
    # An L-shaped marker (a picture that is not the same turned) looks like the paper's
    # corner against the desk: a photo's markers are then looked for first on the page.
    in_page_first = photo and len(variants) > 1 and "cropPage" not in options
    if in_page_first:
        found_in_page = _in_page_fit(gray, template, variants, options, threshold)
        if found_in_page is not None:
            return found_in_page
    closure = 0.0 if photo else SCAN_CLOSURE_COST
    found = _search(
        small, variants, expected, *own, threshold, reach, closure_cost=closure, coarse=photo, near=not photo
    )
    wide = search_scales(own, options)
    if not found and wide != own:
        # Only where no marker shows about the predicted size: a smaller match inside a
        # marker (the corner of an L, the hole of a hollow square) can outscore the
        # marker itself, so the template's wider range is a second look, not the first.
        found = _search(
            small, variants, expected, *wide, threshold, reach, closure_cost=closure, coarse=photo, near=not photo
        )
    if not found and photo:
        # Where no one size shows all four markers: a photo taken at a slant.
        found = _search(
            small, variants, expected, *own, threshold, reach, closure_cost=closure, coarse=True, mixed_sizes=True
        )
    if not found and size_steps(variants[0], *wide) > wide[2]:
        # Markers that match their picture only near their own size (a bullseye's rings)
        # can print between two of the sizes above and match at neither: looked for once
        # more at sizes as close as they need. A last look, not the first: at closer
        # sizes a printed bubble ringed like the marker passes too, and where the looks
        # above find the markers they choose among fewer look-alikes.
        found = _search(
            small,
            variants,
            expected,
            *wide,
            threshold,
            reach,
            closure_cost=closure,
            coarse=photo,
            near=not photo,
            mixed_sizes=photo,
            fine=True,
        )
    # A scan's four are chosen by their closure; a photo's filled bubbles, about the size
    # of a small marker, can match it as well as the markers match at their own size, so
    # there the rivals go to the layout too.
    fours = _rivals(found) if photo else found[:1]
    fulls = [([(x / k, y / k) for x, y in four.centres], four.width / k) for four in fours]
    if not fulls and "cropPage" in options:
        # CropPage before CropOnMarkers: a photo of a sheet on a desk, the page a small
        # part of the picture. As OMRChecker does, the markers are looked for in the
        # quadrants of the page the paper's edges outline. Straightened, the page shows
        # its markers about the size the template predicts, as a scan does, so a scan's
        # finer steps of size: a photo's steps (a quarter apart) can straddle a marker
        # with fine print and match neither size.
        on_page = _search_in_page(gray, template, variants, options, SCAN_SCALES, threshold)
        fulls = [] if on_page is None else [on_page]
    try:
        if not fulls:
            raise OmrError(NO_SHEET_FOUND, "the four corner markers of the answer sheet were not found")
        return _fits(gray, template, variants, fulls, photo)
    except OmrError as exc:
        retry = None
        if not photo and fulls:
            # The four the quarters gave are no sheet's corners, or not this template's:
            # print in two quarters that matches a plain marker (a bold glyph, a solid
            # square), the markers themselves all in the upper half of the page.
            try:
                retry = align_anywhere(gray, template)
            except OmrError:
                retry = None
        if photo and not in_page_first and "cropPage" not in options:
            retry = _in_page_fit(gray, template, variants, options, threshold)
        if retry is None and photo:
            retry = _as_flat_page(gray, template, exc)
        if retry is None:
            raise
        return retry


def align_anywhere(gray: Gray, template: Template) -> list[Alignment]:
    """A scan's four markers looked for anywhere on it (``_search_anywhere``), not one in
    each quarter: the last look at a scan before it is refused. NO_SHEET_FOUND where no
    four are found; TEMPLATE_MISMATCH where the four found do not fit the template's
    aspect (the reader's stretched look may then take them, as OMRChecker does)."""
    info = template.marker_image
    if info is None:  # pragma: no cover - only called with a marker image
        raise OmrError(TEMPLATE_INVALID, "the template has no marker image")
    variants = _variants(info.data)
    small, k, expected, own, options, threshold = _search_copy(gray, template, photo=False)
    found = _search_anywhere(small, variants, expected, *search_scales(own, options), threshold)
    if not found:
        raise OmrError(NO_SHEET_FOUND, "the four corner markers of the answer sheet were not found")
    four = found[0]
    return _fits(gray, template, variants, [([(x / k, y / k) for x, y in four.centres], four.width / k)], False)


def _search_copy(
    gray: Gray, template: Template, *, photo: bool
) -> tuple[Gray, float, float, tuple[float, float, int], dict[str, Any], float]:
    """The copy of ``gray`` the markers are searched on, its share of ``gray``'s size,
    the marker width the template predicts there, the sizes searched (shares of that
    width, and steps: ``SCAN_SCALES`` or ``PHOTO_SCALES``, or a scan's wider range where
    the template's frame is not the page's shape, see ``_page_sizes``), the alignment
    options with OMRChecker's defaults, and the correlation a match needs."""
    import cv2
    import numpy as np

    info = template.marker_image
    assert info is not None
    # A scan's markers are big on the page: a 500 px copy shows them at 10-20 px, plenty
    # to match, at a quarter of the cost; a photo's may be far smaller.
    k = min(1.0, (PHOTO_SEARCH_SIDE if photo else SCAN_SEARCH_SIDE) / max(gray.shape))
    small = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) if k < 1 else gray
    small = np.asarray(cv2.GaussianBlur(small, (3, 3), 0), dtype=np.uint8)
    # A scan shows most of the page, so the page is about as big as the image; a photo may
    # show it much smaller, hence the wider range there.
    page_scale = max(small.shape) / max(template.width, template.height)
    options = dict(template.alignment.options)
    if "pageDimensions" in template.raw:  # an OMRChecker template: its defaults hold
        options.setdefault("marker_rescale_range", OMRCHECKER_RESCALE_RANGE)
    threshold = float(options.get("min_matching_threshold", MIN_MATCH))
    expected = info.width * page_scale
    if photo:
        return small, k, expected, PHOTO_SCALES, options, threshold
    if "pageDimensions" in template.raw:
        expected, scales = _page_sizes(small.shape, template, expected)
        return small, k, expected, scales, options, threshold
    return small, k, expected, SCAN_SCALES, options, threshold


#: a frame's guess at a scan's marker size agrees with the page's where it is within this
#: factor of one of the page's two guesses (upright, or turned a quarter).
FRAME_AGREES: Final = 1.15


def _page_sizes(shape: tuple[int, ...], template: Template, guess: float) -> tuple[float, tuple[float, float, int]]:
    """A scan's marker width and the sizes it is searched at, through an OMRChecker
    template: ``guess`` (the frame's long side against the picture's) where it agrees
    with the page's own; else the sizes from the page's width to its height.

    OMRChecker sizes its marker as a share of the page's width (its
    ``sheetToMarkerWidthRatio``) and stretches the markers' rectangle onto
    ``pageDimensions`` whatever that frame's shape: a template may draw its fields on a
    frame three times as tall as the page is, or on a frame round a part of the page.
    The frame's long side then says little of the marker's size, the page's width does.
    The sheet's turn is not known yet, so both of the page's sides are taken."""
    info = template.marker_image
    assert info is not None
    # The frame is the marker centres' rectangle and a marker round it: a marker is
    # info.width / (template.width - info.width) of the page's width.
    share = info.width / max(template.width - info.width, 1.0)
    upright, turned = share * shape[1], share * shape[0]
    if any(1 / FRAME_AGREES <= guess / side <= FRAME_AGREES for side in (upright, turned)):
        return guess, SCAN_SCALES
    low, high, _ = SCAN_SCALES
    lower, span = min(upright, turned), max(upright, turned) / min(upright, turned)
    return lower, (low, high * span, _steps_as_dense(SCAN_SCALES, low, high * span))


def _as_flat_page(gray: Gray, template: Template, refused: OmrError) -> list[Alignment] | None:
    """A picture read in photo mode that is a flat page (a scanning app's output, a PDF
    drawn to a picture), its markers looked for as on a scan: four corners of a
    parallelogram. Where every match is chosen on its own, as in a photo, a bubble
    printed about the marker's size can outscore a small marker in its quarter of the
    picture. None where the scan's search finds none either; TEMPLATE_MISMATCH where it
    finds markers the template does not fit (``_looks`` may then stretch the template
    over them, as for a scan)."""
    try:
        return align_by_image(gray, template, photo=False)
    except OmrError as exc:
        if exc.code == TEMPLATE_MISMATCH and refused.code != TEMPLATE_MISMATCH:
            raise
        return None


def _in_page_fit(
    gray: Gray, template: Template, variants: tuple[Floats, ...], options: Mapping[str, Any], threshold: float
) -> list[Alignment] | None:
    """A photo's markers looked for in the quadrants of the page its edges outline,
    straightened: a sheet small and off centre has two markers in one quadrant of the
    picture, each in its own quadrant of the page, and there the four make a
    parallelogram again, as on a scan (so a look-alike near a marker loses to it). The
    straightened page shows its markers about the size the template predicts, near its
    corners. None where no page or no such four markers are found (finding the page
    costs more than the whole search, hence not the first look for every photo)."""
    in_page = _search_in_page(
        gray,
        template,
        variants,
        {**options, "cropPage": {}},
        SCAN_SCALES,
        threshold,
        closure_cost=SCAN_CLOSURE_COST,
        reach=SCAN_REACH,
    )
    if in_page is None:
        return None
    try:
        return _corners_fit(gray, template, variants, in_page, True)
    except OmrError as exc:
        if exc.code == RESOLUTION_TOO_LOW:
            raise  # the sheet was found, and it is too small to read
        return None


def _rivals(fours: list[MarkerFour]) -> list[MarkerFour]:
    """The best four, and up to MAX_RIVALS more that score within RIVAL_SHARE of it and lie
    elsewhere (a corner more than a marker's width from each four kept): the layout
    tells which the template's bubbles are printed under."""
    kept = fours[:1]
    for four in fours[1:]:
        if len(kept) > MAX_RIVALS or four.score < RIVAL_SHARE * fours[0].score:
            break
        if all(_elsewhere(four, other) for other in kept):
            kept.append(four)
    return kept


def _elsewhere(one: MarkerFour, other: MarkerFour) -> bool:
    reach = max(one.width, other.width)
    return any(_dist(a, b) > reach for a, b in zip(one.centres, other.centres, strict=True))


def _fits(
    gray: Gray,
    template: Template,
    variants: tuple[Floats, ...],
    fulls: list[tuple[list[tuple[float, float]], float]],
    photo: bool,
) -> list[Alignment]:
    """The alignments of each set of four marker matches that are the corners of a sheet
    (``_corners_fit``), in the order given; the first set's OmrError where none is."""
    out: list[Alignment] = []
    refused: OmrError | None = None
    for full in fulls:
        try:
            out += _corners_fit(gray, template, variants, full, photo)
        except OmrError as exc:
            refused = refused or exc
    if not out:
        assert refused is not None
        raise refused
    return out


def _corners_fit(
    gray: Gray,
    template: Template,
    variants: tuple[Floats, ...],
    full: tuple[list[tuple[float, float]], float],
    photo: bool,
) -> list[Alignment]:
    """The alignments four marker matches (centres and size in ``gray`` pixels) give,
    refined at full resolution; OmrError when they are not the corners of a sheet."""
    import numpy as np

    corners, size = full
    sizes = PHOTO_REFINE_SIZES if photo else REFINE_SIZES
    refined = [_refine(gray, variants, x, y, size, sizes) for x, y in corners]
    pts = np.array([(r[0], r[1]) for r in refined], np.float64)
    ink = float(np.median([r[2] for r in refined]))
    paper = float(np.median([r[3] for r in refined]))
    if paper - ink < 20:
        raise OmrError(NO_SHEET_FOUND, "the markers hardly differ from the paper")
    contrast = [r[3] - r[2] for r in refined]
    if photo and min(contrast) < MIN_CONTRAST_SHARE * max(contrast):
        # Four markers printed in one ink: shade halves one's contrast at most, a match on
        # the desk's texture (the sheet off centre, two markers in one quadrant) has none.
        raise OmrError(NO_SHEET_FOUND, "one of the four markers found hardly differs from its surroundings")
    if not _sheet_corners([(float(p[0]), float(p[1])) for p in pts], PHOTO_SIDES if photo else SCAN_SIDES):
        raise OmrError(NO_SHEET_FOUND, "the four markers found do not form the corners of a sheet")
    return _turns(template, pts, ink, paper, photo)


def _sheet_corners(pts: list[tuple[float, float]], sides: float) -> bool:
    """Whether four points (TL, TR, BR, BL) can be the corners of a sheet: a convex
    quadrilateral whose opposite sides differ by no more than ``sides`` (the shorter a
    share of the longer)."""
    top, bottom, left, right = (
        _dist(pts[0], pts[1]),
        _dist(pts[3], pts[2]),
        _dist(pts[0], pts[3]),
        _dist(pts[1], pts[2]),
    )
    if min(top, bottom) < sides * max(top, bottom) or min(left, right) < sides * max(left, right):
        return False
    return _convex(pts)


def _search_in_page(
    gray: Gray,
    template: Template,
    variants: tuple[Floats, ...],
    options: Mapping[str, Any],
    own: tuple[float, float, int],
    threshold: float,
    *,
    closure_cost: float = 0.0,
    reach: float = 0.5,
) -> tuple[list[tuple[float, float]], float] | None:
    """The markers searched on the page (``page_align.find_page`` with the template's
    ``cropPage`` kernel) straightened to its own rectangle: each quadrant of the page, the
    marker sized as a share of the page's width (OMRChecker's sheetToMarkerWidthRatio is
    one of the cropped page). Centres and size in ``gray`` pixels, or None."""
    import cv2
    import numpy as np

    from workers.omr.page_align import find_page

    info = template.marker_image
    assert info is not None
    kernel = options["cropPage"].get("morphKernel", (10, 10))
    quad = find_page(
        gray,
        morph_kernel=(int(kernel[0]), int(kernel[1])),
        processing_width=int(options.get("processing_width", 666)),
    )
    if quad is None:
        return None
    page_w = 0.5 * (_dist(quad[0], quad[1]) + _dist(quad[3], quad[2]))
    page_h = 0.5 * (_dist(quad[0], quad[3]) + _dist(quad[1], quad[2]))
    k = min(1.0, SCAN_SEARCH_SIDE / max(page_w, page_h))
    w, h = max(8, round(page_w * k)), max(8, round(page_h * k))
    rect = np.array([(0, 0), (w - 1, 0), (w - 1, h - 1), (0, h - 1)], np.float32)
    to_page = cv2.getPerspectiveTransform(np.asarray(quad, np.float32), rect)
    flat = cv2.warpPerspective(gray, to_page, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    page = np.asarray(cv2.GaussianBlur(flat, (3, 3), 0), dtype=np.uint8)
    # The template frame is the marker centres' rectangle and a marker width round it,
    # so a marker is info.width / (template.width - info.width) of the page it is cut from.
    expected = w * info.width / max(template.width - info.width, 1.0)
    found = _search(page, variants, expected, *own, threshold, reach, closure_cost=closure_cost)
    wide = search_scales(own, options)
    if not found and wide != own:
        found = _search(page, variants, expected, *wide, threshold, reach, closure_cost=closure_cost)
    if not found:
        return None
    back = cv2.perspectiveTransform(np.array([found[0].centres], np.float32), np.linalg.inv(to_page))[0]
    return [(float(x), float(y)) for x, y in back], found[0].width / k


def search_scales(own: tuple[float, float, int], options: Mapping[str, Any]) -> tuple[float, float, int]:
    """The marker sizes searched (low, high share of the size the template predicts, and
    steps): this reader's own range, widened to the template's ``marker_rescale_range``.

    OMRChecker's CropOnMarkers searches its marker from 35 % to 100 % of the size
    ``sheetToMarkerWidthRatio`` predicts unless the template says otherwise, in
    ``marker_rescale_steps`` steps: sheets whose markers print at half that size (a
    template whose ratio was measured on another print) are read by it, so here too. The
    steps keep at least this reader's density (a step of about an eighth in size)."""
    low, high, _ = own
    if "marker_rescale_range" not in options:
        return own
    lo_pct, hi_pct = options["marker_rescale_range"]
    wide_low, wide_high = min(low, lo_pct / 100), max(high, hi_pct / 100)
    wanted = max(_steps_as_dense(own, wide_low, wide_high), int(options.get("marker_rescale_steps", 0)) + 1)
    return wide_low, wide_high, wanted


def _steps_as_dense(own: tuple[float, float, int], low: float, high: float) -> int:
    """How many sizes from ``low`` to ``high`` keep the density of ``own`` (low, high,
    steps): the same ratio from one size to the next."""
    density = (own[2] - 1) / math.log(own[1] / own[0])
    return round(density * math.log(high / low)) + 1


def _turns(template: Template, pts: npt.NDArray[np.float64], ink: float, paper: float, photo: bool) -> list[Alignment]:
    """Each corner assignment that fits the template's aspect (the layout picks one)."""
    import cv2
    import numpy as np

    tpl_pts = np.array(template.marker_centres, np.float64)
    tpl_aspect = (tpl_pts[1][0] - tpl_pts[0][0]) / (tpl_pts[3][1] - tpl_pts[0][1])
    tol = 0.2 if photo else 0.06
    if not photo and "pageDimensions" in template.raw:
        # An OMRChecker template: OMRChecker stretches the four marker centres onto
        # pageDimensions whatever their shape, so its templates are written for a frame
        # that may be a few per cent off the markers' own rectangle.
        tol = OMRCHECKER_ASPECT_TOL
    any_aspect = bool(template.alignment.options.get("any_aspect"))
    if any_aspect:
        # As OMRChecker does it: the markers' rectangle stretched onto the template's
        # frame whatever its shape, every turn a candidate, the likeliest first.
        tol = math.inf
    out: list[Alignment] = []
    misses: list[float] = []
    aspects = []
    for turn in range(4):  # template top-left lies at image corner `turn` (clockwise from top-left)
        image_pts = np.array([pts[(turn + i) % 4] for i in range(4)], np.float64)
        across = _dist(image_pts[0], image_pts[1]) + _dist(image_pts[3], image_pts[2])
        down = _dist(image_pts[0], image_pts[3]) + _dist(image_pts[1], image_pts[2])
        aspects.append(across / down)
        if abs(across / down / tpl_aspect - 1) > tol:
            continue
        scale = _quad_size(image_pts) / _quad_size(tpl_pts)
        if scale * template.dpi < float(template.alignment.options.get("min_dpi", MIN_DPI)):
            raise OmrError(RESOLUTION_TOO_LOW, f"the sheet is scanned at about {scale * template.dpi:.0f} dpi")
        h = cv2.getPerspectiveTransform(tpl_pts.astype(np.float32), image_pts.astype(np.float32))
        out.append(Alignment(h.astype(np.float64), turn * 90, scale, ink, paper))
        misses.append(abs(math.log(across / down / tpl_aspect)))
    if any_aspect:
        out = [a for _, a in sorted(zip(misses, out, strict=True), key=lambda pair: pair[0])]
    if not out:
        raise OmrError(
            TEMPLATE_MISMATCH,
            f"the markers form a {aspects[0]:.2f} rectangle; template {template.name!r} has {tpl_aspect:.2f}",
        )
    return out


@functools.lru_cache(maxsize=8)
def _variants(data: bytes) -> tuple[Floats, ...]:
    """The marker picture, normalised, in each distinct 90-degree rotation."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None or min(img.shape) < 4:
        raise OmrError(TEMPLATE_INVALID, "the marker image cannot be decoded")
    if float(img.std()) < 5:
        # A plain dark square has nothing to correlate; matching it on its paper does.
        pad = max(2, round(max(img.shape) * 0.25))
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    lo, hi = float(img.min()), float(img.max())
    marker: Floats = ((img.astype(np.float32) - lo) * (255 / max(hi - lo, 1.0))).astype(np.float32)
    out: list[Floats] = []
    probe = [cv2.resize(marker, (32, 32), interpolation=cv2.INTER_AREA)]
    for turn in range(4):
        cand = np.ascontiguousarray(np.rot90(marker, -turn))
        thumb = cv2.resize(cand, (32, 32), interpolation=cv2.INTER_AREA)
        if turn and min(float(np.mean(np.abs(thumb - p))) for p in probe) < 12:
            continue  # the same picture turned: no need to search it again
        probe.append(thumb)
        out.append(cand)
    return tuple(out)


#: a marker half a step of size off the size it prints at must still match its own
#: picture at this correlation or more (``size_steps``) ...
SIZE_STEP_MATCH: Final = 0.65
#: ... measured with the picture this many pixels wide (the size a scan's marker has on
#: its search copy), against it a pixel wider at a time up to this share wider.
SIZE_PROBE_WIDTH: Final = 32
SIZE_PROBE_MOST: Final = 1.3


def size_steps(marker: Floats, low: float, high: float, steps: int) -> int:
    """The number of sizes from ``low`` to ``high`` (shares of the size the template
    predicts) a marker is searched at: ``steps``, or more where the marker matches its
    own picture only within a narrower band of sizes than ``steps`` leaves between two
    (``size_tolerance``). OMRChecker's own marker, a bullseye of rings, matches itself
    at 0.84 a thirtieth larger and at 0.53 a tenth larger: a photo's sizes, a fifth
    apart, passed on either side of markers printed between two of them."""
    tolerance = size_tolerance(marker.tobytes(), marker.shape)
    return max(steps, math.ceil(math.log(high / low) / (2 * math.log(tolerance))) + 1)


@functools.lru_cache(maxsize=16)
def size_tolerance(data: bytes, shape: tuple[int, ...]) -> float:
    """How much larger (a ratio over 1) a marker can print than the size it is matched
    at and still match at SIZE_STEP_MATCH: the marker picture (``data``, float32 of
    ``shape``) SIZE_PROBE_WIDTH pixels wide matched on itself drawn wider, a pixel at a
    time, on its paper; interpolated between the widths."""
    import cv2
    import numpy as np

    marker = np.frombuffer(data, np.float32).reshape(shape)
    edge = np.concatenate([marker[0], marker[-1], marker[:, 0], marker[:, -1]])
    paper = float(np.median(edge))
    width = SIZE_PROBE_WIDTH

    def drawn(w: int) -> Floats:
        h = max(3, round(marker.shape[0] * w / marker.shape[1]))
        return np.asarray(cv2.resize(marker, (w, h), interpolation=cv2.INTER_AREA), np.float32)

    probe = drawn(width)
    last_ratio, last_score = 1.0, 1.0
    for wider in range(width + 1, round(width * SIZE_PROBE_MOST) + 1):
        shown = cv2.copyMakeBorder(drawn(wider), width, width, width, width, cv2.BORDER_CONSTANT, value=paper)
        score = float(cv2.matchTemplate(shown, probe, cv2.TM_CCOEFF_NORMED).max())
        ratio = wider / width
        if score < SIZE_STEP_MATCH:
            return last_ratio + (ratio - last_ratio) * (last_score - SIZE_STEP_MATCH) / (last_score - score)
        last_ratio, last_score = ratio, score
    return SIZE_PROBE_MOST


class MarkerFour(NamedTuple):
    """Four marker centres (TL, TR, BR, BL) a search found, in its picture's pixels."""

    centres: list[tuple[float, float]]
    #: the width the marker's picture was matched at.
    width: float
    #: the four matches' correlation, summed (less the closure cost of a scan's search).
    score: float


def _search(
    small: Gray,
    variants: tuple[Floats, ...],
    expected: float,
    low: float,
    high: float,
    steps: int,
    threshold: float = MIN_MATCH,
    reach: float = 0.5,
    *,
    closure_cost: float = 0.0,
    coarse: bool = False,
    near: bool = False,
    mixed_sizes: bool = False,
    fine: bool = False,
) -> list[MarkerFour]:
    """The best four marker centres (TL, TR, BR, BL) at each common scale and turn of the
    marker, the best first (of fours that score alike, the first in the order of sizes
    and turns); each quadrant searched out to ``reach`` of the picture from its corner
    (0.5: all of it). Empty where no scale shows a match in every quadrant.

    ``mixed_sizes`` (only with ``closure_cost`` 0): each quadrant's match may come from a
    size next to the common one (a photo taken at a slant shows its far markers a step
    smaller than its near ones, and a ringed marker matches at one size only); the size
    given is the common one.

    ``closure_cost``: the four markers of a scan lie on a parallelogram; each marker width
    by which a set of four matches misses one costs this much correlation, so a look-alike
    near a marker (the page's own corner for an L) loses to the marker itself. 0: a
    photo's perspective bends that parallelogram, so each quadrant's best few matches are
    kept and the best set of them that can be the corners of a sheet (``_sheet_corners``
    at PHOTO_SIDES) is taken: two quadrants' windows overlap, and their best match may be
    the same filled bubble.

    ``coarse`` (only with ``closure_cost`` 0): each quadrant's best match at a size of at
    least COARSE_MIN_WIDTH is looked for on a half-size copy first and matched on this
    one only near its best few there (see _coarse_to_fine), at a third of the cost.

    ``near``: every NEAR_EVERY-th size is matched over the whole of each quadrant, and a
    size next to one of those only near that size's best few matches there (see
    _seed_size, _near_matches): normalised correlation is local, so there it scores as
    the whole quadrant's match does. A marker's match moves a pixel or so from one size
    to the next; a look-alike the full sizes do not rank among their best few is left out
    at the sizes between too.

    ``fine``: as many sizes as the marker needs between ``low`` and ``high``
    (``size_steps``), ``steps`` at least."""
    import cv2
    import numpy as np

    hs, ws = small.shape
    image = small.astype(np.float32)
    half: Floats | None = None
    if coarse:
        half = np.asarray(cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), np.float32)
    # With ``fine``, more sizes: a size's neighbours (``mixed_sizes``) as many steps off
    # as make the one step of the sizes given.
    beside = 1
    if fine:
        given, steps = steps, size_steps(variants[0], low, high, steps)
        beside = math.ceil((steps - 1) / max(given - 1, 1))
    factors = [float(f) for f in np.geomspace(low, high, steps)]
    # The sizes searched in full come first: the others are searched near their matches.
    order = sorted(range(steps), key=lambda i: (_seed_size(i, steps, near) is not None, i))
    scored_at: dict[tuple[int, int], tuple[float, list[tuple[float, float]]] | None] = {}
    #: each size's and turn's matches per quadrant (``mixed_sizes``).
    kept: dict[tuple[int, int], list[list[tuple[float, float, float]]]] = {}
    seeds: dict[tuple[int, int], list[list[tuple[float, float]]]] = {}
    for i in order:
        width = expected * factors[i]
        if width < 7 or width > min(hs, ws) / 3:
            continue
        source = _seed_size(i, steps, near)
        # One turn of the marker for all four corners: identical markers print the same
        # way up, so a sheet turned in the scanner turns all four alike. Matching each
        # corner with its own turn lets an L-shaped marker's picture fit the page's own
        # corners (paper against the scanner lid is an L at every corner, each turned).
        for v, marker in enumerate(variants):
            peaks: list[list[tuple[float, float, float]]] = [[(-1.0, 0.0, 0.0)] for _ in range(4)]
            zoom = width / marker.shape[1]
            tpl: Floats = np.asarray(
                cv2.resize(marker, (round(width), max(3, round(marker.shape[0] * zoom))), interpolation=cv2.INTER_AREA),
                np.float32,
            )
            if _spread_under(tpl, 1.0):
                continue
            th, tw = tpl.shape
            seed = None if source is None else seeds.get((source, v))
            best_few: list[list[tuple[float, float]]] = [[] for _ in range(4)]
            # Each quadrant (TL, TR, BR, BL) is searched on its own, out to ``reach`` of
            # the picture from its corner: a marker centred in it lies wholly inside.
            cw, ch = round(ws * reach + tw / 2), round(hs * reach + th / 2)
            for q, (x0, y0) in enumerate(((0, 0), (ws - cw, 0), (ws - cw, hs - ch), (0, hs - ch))):
                window = image[max(0, y0) : y0 + ch, max(0, x0) : x0 + cw]
                if window.shape[0] < th or window.shape[1] < tw:
                    continue
                ox, oy = max(0, x0), max(0, y0)
                if half is not None and closure_cost == 0 and tw >= COARSE_MIN_WIDTH:
                    matches = _coarse_to_fine(window, half, (ox, oy), tpl)
                    peaks[q] = [(top, ox + px + tw / 2, oy + py + th / 2) for top, px, py in matches] or peaks[q]
                    continue
                parts = None
                if seed is not None and seed[q]:
                    res, parts = _near_matches(window, tpl, [(cx - ox, cy - oy) for cx, cy in seed[q]])
                else:
                    res = np.asarray(cv2.matchTemplate(window, tpl, cv2.TM_CCOEFF_NORMED), np.float32)
                _, score, _, (px, py) = cv2.minMaxLoc(res)
                if _spread_under(window[py : py + th, px : px + tw], MIN_MARKER_CONTRAST):
                    # Normalised correlation scales a flat patch's noise up to full range,
                    # so a bare desk or paper can outscore a marker seen at a slant.
                    if parts is None:
                        res = _without_flat(res, window, tw, th)
                    else:
                        for (nx, ny), near_res, patch in parts:
                            rh, rw = near_res.shape
                            res[ny : ny + rh, nx : nx + rw] = _without_flat(near_res, patch, tw, th)
                    _, score, _, (px, py) = cv2.minMaxLoc(res)
                if near and source is None:
                    best_few[q] = [(ox + x + tw / 2, oy + y + th / 2) for x, y in _best_few(res, window, tw, th)]
                found = [(float(score), ox + px + tw / 2, oy + py + th / 2)]
                # The quadrant's next best too: the four are chosen together, a scan's by
                # their closure and a photo's by their shape.
                if score >= threshold:
                    found += [
                        (s, ox + x + tw / 2, oy + y + th / 2) for s, x, y in _next_peaks(res, px, py, tw, th, threshold)
                    ]
                peaks[q] = found
            if near and source is None:
                seeds[(i, v)] = best_few
            scored_at[(i, v)] = _best_four(peaks, width, closure_cost, threshold)
            if mixed_sizes:
                kept[(i, v)] = peaks
    if mixed_sizes:
        for i in range(steps):
            for v in range(len(variants)):
                near_sizes = [kept[(j, v)] for j in range(i - beside, i + beside + 1) if (j, v) in kept]
                if (i, v) not in kept or len(near_sizes) < 2:
                    continue
                merged = [
                    max((quads[q] for quads in near_sizes), key=lambda found: max(f[0] for f in found))
                    for q in range(4)
                ]
                scored_at[(i, v)] = _best_four(merged, expected * factors[i], closure_cost, threshold)
    fours = [
        MarkerFour(scored[1], expected * factors[i], scored[0])
        for i in range(steps)
        for v in range(len(variants))
        if (scored := scored_at.get((i, v))) is not None
    ]
    # A stable sort: the first best in the order of sizes and turns wins, as when they
    # are searched one after another.
    return sorted(fours, key=lambda four: -four.score)


#: matches kept per quadrant for the four to be chosen from together (closure_cost > 0).
PEAKS_PER_CORNER: Final = 3
#: a marker this wide (pixels of the search copy) or wider is looked for on a half-size
#: copy first: there it is still 6 px or more, enough to tell it from print and texture;
#: a smaller one is matched on the search copy alone.
COARSE_MIN_WIDTH: Final = 12
#: best matches per quadrant on the half-size copy that are matched again on the search
#: copy, each at least a marker from those before ...
COARSE_CANDIDATES: Final = 3
#: ... within this many pixels of where the half-size match puts it (its rounding is 1-2).
COARSE_RADIUS: Final = 3


#: with ``near`` (a scan), every this many sizes one is matched over the whole of each
#: quadrant, and the sizes next to it only near its best few matches ...
NEAR_EVERY: Final = 3
#: ... this many in each quadrant, each at least a marker from those before and none on
#: a flat patch (the quadrant's best, a look-alike and one more, as PEAKS_PER_CORNER) ...
NEAR_CANDIDATES: Final = 3
#: ... of the best matches tried, at most (paper noise can rank above a marker) ...
NEAR_TRIES: Final = 12
#: ... within this many pixels of the full size's match (a marker's centre moves a pixel
#: or so from one size to the next, the corner of an L a tenth of the size more).
NEAR_RADIUS: Final = 3


def _seed_size(i: int, steps: int, near: bool) -> int | None:
    """The size (index) next to size ``i`` whose best matches size ``i`` is searched near,
    or None where size ``i`` is searched in full: every NEAR_EVERY-th size, and a size
    with none of those next to it."""
    if not near or i % NEAR_EVERY == 0:
        return None
    below = i - i % NEAR_EVERY
    if i - below == 1:
        return below
    if below + NEAR_EVERY - i == 1 and below + NEAR_EVERY < steps:
        return below + NEAR_EVERY
    return None


def _best_few(res: Floats, window: Floats, tw: int, th: int) -> list[tuple[int, int]]:
    """The top-left corners of the NEAR_CANDIDATES best matches in ``res`` on no flat
    patch, each at least a marker from those before."""
    import cv2

    res = res.copy()
    out: list[tuple[int, int]] = []
    for _ in range(NEAR_TRIES):
        _, score, _, (px, py) = cv2.minMaxLoc(res)
        if score <= -1:
            break
        cv2.rectangle(res, (px - tw + 1, py - th + 1), (px + tw - 1, py + th - 1), -1.0, -1)
        if not _spread_under(window[py : py + th, px : px + tw], MIN_MARKER_CONTRAST):
            out.append((px, py))
            if len(out) == NEAR_CANDIDATES:
                break
    return out


def _near_matches(
    window: Floats, tpl: Floats, centres: list[tuple[float, float]]
) -> tuple[Floats, list[tuple[tuple[int, int], Floats, Floats]]]:
    """``tpl`` matched in ``window`` only with its centre within NEAR_RADIUS of each of
    ``centres`` (window pixels): the result map as matchTemplate gives it there, -1
    elsewhere; and each part matched (its top-left corner in the map, its scores, and
    the window's patch they come from)."""
    import numpy as np

    th, tw = tpl.shape
    res = np.full((window.shape[0] - th + 1, window.shape[1] - tw + 1), -1.0, np.float32)
    parts: list[tuple[tuple[int, int], Floats, Floats]] = []
    for cx, cy in centres:
        part = _match_near(window, tpl, round(cx - tw / 2), round(cy - th / 2), NEAR_RADIUS)
        if part is None:
            continue
        (x0, y0), near, _ = part
        res[y0 : y0 + near.shape[0], x0 : x0 + near.shape[1]] = near
        parts.append(part)
    return res, parts


def _match_near(
    window: Floats, tpl: Floats, fx: int, fy: int, radius: int
) -> tuple[tuple[int, int], Floats, Floats] | None:
    """``tpl`` matched in ``window`` with its top-left corner within ``radius`` of (fx, fy)
    only: the first such corner, the scores from there (matchTemplate's own), and the
    window's patch they come from; None when no such corner lies in the window."""
    import cv2
    import numpy as np

    th, tw = tpl.shape
    rh, rw = window.shape[0] - th + 1, window.shape[1] - tw + 1
    x0, y0 = max(0, fx - radius), max(0, fy - radius)
    x1, y1 = min(rw - 1, fx + radius), min(rh - 1, fy + radius)
    if x1 < x0 or y1 < y0:
        return None
    patch = window[y0 : y1 + th, x0 : x1 + tw]
    return (x0, y0), np.asarray(cv2.matchTemplate(patch, tpl, cv2.TM_CCOEFF_NORMED), np.float32), patch


def _coarse_to_fine(window: Floats, half: Floats, origin: tuple[int, int], tpl: Floats) -> list[tuple[float, int, int]]:
    """The best few matches of ``tpl`` in ``window`` (score and top-left corner in it, the
    best first) on no flat patch, found on ``half`` (the search copy at half size;
    ``origin``: the window's top-left corner in the search copy) and matched again at
    full size only near the best few there: normalised correlation is local, so near
    those it is the very score the whole window's match gives."""
    import cv2
    import numpy as np

    th, tw = tpl.shape
    wh, ww = window.shape
    ox, oy = origin
    # The part of the half-size copy inside the window.
    hx0, hy0 = (ox + 1) // 2, (oy + 1) // 2
    hx1, hy1 = (ox + ww) // 2, (oy + wh) // 2
    small_tpl = cv2.resize(tpl, (max(3, round(tw / 2)), max(3, round(th / 2))), interpolation=cv2.INTER_AREA)
    sth, stw = small_tpl.shape
    part = half[hy0:hy1, hx0:hx1]
    if part.shape[0] < sth or part.shape[1] < stw or float(small_tpl.std()) < 1:
        return []
    res = np.asarray(cv2.matchTemplate(part, small_tpl, cv2.TM_CCOEFF_NORMED), np.float32)
    # Averaging halves paper noise, not a marker's print: only the flattest go here, the
    # full-size match below applies the marker's contrast itself.
    res = _without_flat(res, part, stw, sth, MIN_MARKER_CONTRAST / 2)
    found: list[tuple[float, int, int]] = []
    for _ in range(COARSE_CANDIDATES):
        _, score, _, (cx, cy) = cv2.minMaxLoc(res)
        if score <= -1:
            break
        cv2.rectangle(res, (cx - stw + 1, cy - sth + 1), (cx + stw - 1, cy + sth - 1), -1.0, -1)
        # The same centre on the window, as the top-left corner of the full-size template.
        fx = round(2 * (hx0 + cx) + stw - tw / 2) - ox
        fy = round(2 * (hy0 + cy) + sth - th / 2) - oy
        matched = _match_near(window, tpl, fx, fy, COARSE_RADIUS)
        if matched is None:
            continue
        (x0, y0), near, patch = matched
        near = _without_flat(near, patch, tw, th)
        _, top, _, (px, py) = cv2.minMaxLoc(near)
        if top > -1:
            found.append((float(top), x0 + px, y0 + py))
    # A stable sort: of matches that score alike, the one found first leads.
    return sorted(found, key=lambda match: -match[0])


def _next_peaks(res: Floats, px: int, py: int, tw: int, th: int, threshold: float) -> list[tuple[float, int, int]]:
    """The next best matches of one quadrant, each at least a marker away from those before."""
    import cv2

    res = res.copy()
    out: list[tuple[float, int, int]] = []
    for _ in range(PEAKS_PER_CORNER - 1):
        cv2.rectangle(res, (px - tw + 1, py - th + 1), (px + tw - 1, py + th - 1), -1.0, -1)
        _, score, _, (px, py) = cv2.minMaxLoc(res)
        if score < threshold:
            break
        out.append((float(score), px, py))
    return out


def _best_four(
    peaks: list[list[tuple[float, float, float]]], width: float, closure_cost: float, threshold: float
) -> tuple[float, list[tuple[float, float]]] | None:
    """The set of one match per quadrant with the best correlation, less ``closure_cost``
    per marker width by which the four miss a parallelogram; where ``closure_cost`` is 0,
    only sets that can be the corners of a sheet in perspective count (``_sheet_corners``
    at PHOTO_SIDES). None if no set counts. Of sets that score alike, the first in the
    order of each quadrant's matches wins."""
    # A set with a match under the threshold never counts, so such matches are dropped
    # first. The sums are taken in the order a plain sum over the four takes them, and
    # sets whose correlation alone (what they score with no closure cost) cannot beat
    # the best so far are passed over: the same set wins, with the same total, as when
    # every set is scored.
    p0, p1, p2, p3 = ([p for p in quad if p[0] >= threshold] for quad in peaks)
    if not (p0 and p1 and p2 and p3):
        return None
    top3 = max(p[0] for p in p3)
    per_width = max(width, 1.0)
    best_total = -float("inf")
    best: list[tuple[float, float]] | None = None
    for s0, x0, y0 in p0:
        for s1, x1, y1 in p1:
            s01 = s0 + s1
            for s2, x2, y2 in p2:
                s012 = s01 + s2
                if s012 + top3 <= best_total:
                    continue
                dx, dy = x0 + x2 - x1, y0 + y2 - y1
                for s3, x3, y3 in p3:
                    closure = ((dx - x3) ** 2 + (dy - y3) ** 2) ** 0.5 / per_width
                    total = s012 + s3 - closure_cost * closure
                    if total > best_total:
                        four = [(x0, y0), (x1, y1), (x2, y2), (x3, y3)]
                        if closure_cost == 0 and not _sheet_corners(four, PHOTO_SIDES):
                            continue
                        best_total = total
                        best = four
    return None if best is None else (best_total, best)


def _without_flat(res: Floats, window: Floats, tw: int, th: int, spread_min: float = MIN_MARKER_CONTRAST) -> Floats:
    """``res`` with every match on a patch of less contrast (``spread_min``) than a marker
    has set to -1."""
    import cv2
    import numpy as np

    # The mean and mean square over each template-sized patch, anchored at its top-left
    # corner as matchTemplate's result is.
    mean = cv2.boxFilter(window, -1, (tw, th), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    square = cv2.boxFilter(window * window, -1, (tw, th), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    rh, rw = res.shape
    spread = np.sqrt(np.maximum(square[:rh, :rw] - mean[:rh, :rw] ** 2, 0))
    return np.where(spread < spread_min, np.float32(-1), res).astype(np.float32)


def _refine(
    gray: Gray, variants: tuple[Floats, ...], x: float, y: float, width: float, sizes: tuple[float, ...]
) -> tuple[float, float, float, float]:
    """Full-resolution centre, ink grey and paper grey of one marker."""
    import cv2
    import numpy as np

    h, w = gray.shape
    reach = int(width * 1.3) + 4
    x0, y0 = max(0, int(x) - reach), max(0, int(y) - reach)
    cut = gray[y0 : min(h, int(y) + reach + 1), x0 : min(w, int(x) + reach + 1)]
    roi = cut.astype(np.float32)
    best: tuple[float, float, float, Floats] | None = None
    score = -2.0
    for marker in variants:
        for factor in sizes:
            zoom = width * factor / marker.shape[1]
            tw, th = max(3, round(marker.shape[1] * zoom)), max(3, round(marker.shape[0] * zoom))
            if tw >= roi.shape[1] or th >= roi.shape[0]:
                continue
            tpl: Floats = np.asarray(cv2.resize(marker, (tw, th), interpolation=cv2.INTER_AREA), np.float32)
            res: Floats = np.asarray(cv2.matchTemplate(roi, tpl, cv2.TM_CCOEFF_NORMED), np.float32)
            # Only matches centred within REFINE_REACH of the search's centre count.
            cx = np.arange(res.shape[1], dtype=np.float32) + (x0 + (tw - 1) / 2 - x)
            cy = np.arange(res.shape[0], dtype=np.float32) + (y0 + (th - 1) / 2 - y)
            far = cy[:, None] ** 2 + cx[None, :] ** 2 > (REFINE_REACH * width) ** 2
            if far.all():
                continue
            res[far] = -2.0
            _, top, _, (px, py) = cv2.minMaxLoc(res)
            if top > score:
                dx, dy = _subpixel(res, px, py)
                score, best = float(top), (px + dx, py + dy, float(top), tpl)
    if best is None:  # the marker lies against the image edge: keep the coarse estimate
        return x, y, 0.0, 255.0
    fx, fy, _, found = best
    th, tw = found.shape
    ix, iy = round(fx), round(fy)
    patch = roi[iy : iy + th, ix : ix + tw]
    dark = found[: patch.shape[0], : patch.shape[1]] < 96
    ink = float(np.median(patch[dark])) if dark.any() else float(patch.min())
    # As np.percentile of the float32 copy the match ran on.
    paper = percentile_90(cut, float32=True)
    return x0 + fx + (tw - 1) / 2, y0 + fy + (th - 1) / 2, ink, paper


def _spread_under(values: Floats, limit: float) -> bool:
    """Whether ``values`` spread less than ``limit`` (standard deviation), as
    ``float(values.std()) < limit`` says: OpenCV's meanStdDev costs an eighth of numpy's
    std; the two differ in the last digits only, so numpy has the word where the spread
    is that close to the limit."""
    import cv2

    spread = float(cv2.meanStdDev(values)[1][0, 0])
    if abs(spread - limit) > 1e-3 * limit:
        return spread < limit
    return float(values.std()) < limit


def _subpixel(res: Floats, px: int, py: int) -> tuple[float, float]:
    """Parabola through the correlation peak and its neighbours, per axis."""

    def vertex(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        return 0.0 if den >= 0 else max(-0.5, min(0.5, 0.5 * (a - c) / den))

    hh, ww = res.shape
    dx = vertex(float(res[py, px - 1]), float(res[py, px]), float(res[py, px + 1])) if 0 < px < ww - 1 else 0.0
    dy = vertex(float(res[py - 1, px]), float(res[py, px]), float(res[py + 1, px])) if 0 < py < hh - 1 else 0.0
    return dx, dy


#: the strongest matches of the marker over the whole picture that ``_search_anywhere``
#: chooses four from, at most (each at least a marker from those before).
ANYWHERE_PEAKS: Final = 8
#: the correlation each of the four needs: a marker printed to frame a page's answer
#: area matches its picture at 0.7 or more (ring markers on public exam papers), bold
#: bubbles of a dense card matched a hollow square at up to 0.6.
ANYWHERE_MATCH: Final = 0.65
#: ... and nothing within ANYWHERE_AROUND marker widths of it (beyond its own width)
#: matches at more than ANYWHERE_ALONE of its correlation: a marker stands apart from
#: print like it (the public exam papers' ring markers: 0.3 of it round them; the
#: generator's solid squares beside boxes and bold titles: 0.5), a bubble among
#: bubbles does not (0.85-0.97 round those of a dense card).
ANYWHERE_AROUND: Final = 2.5
ANYWHERE_ALONE: Final = 0.75
#: matches looked at, at most, for the ANYWHERE_PEAKS that stand alone.
ANYWHERE_TRIES: Final = 64
#: the four lie within this share of the picture from its left and right sides (or its
#: top and bottom: a scan turned a quarter): they frame the answer area across the page,
#: not a patch of its print.
ANYWHERE_EDGE: Final = 0.2
#: and each side of their quadrilateral is at least this many marker widths long.
ANYWHERE_MIN_SIDE: Final = 3.0


def _search_anywhere(
    small: Gray, variants: tuple[Floats, ...], expected: float, low: float, high: float, steps: int, threshold: float
) -> list[MarkerFour]:
    """The best four marker centres (TL, TR, BR, BL) found anywhere in a scan, not one in
    each quadrant of the picture: a card whose markers frame only its answer area, in the
    top part of a page that prints its questions below, shows all four in the upper half.
    At each size and turn of the marker, the ANYWHERE_PEAKS strongest matches on no flat
    patch, each at ANYWHERE_MATCH or more (``threshold`` where that is higher) and
    standing alone (``_alone``), are taken, and of every four of them that are a sheet's corners (a convex
    quadrilateral, opposite sides alike as SCAN_SIDES says, each ANYWHERE_MIN_SIDE marker
    widths or longer, reaching within ANYWHERE_EDGE of the picture's sides) the one with
    the best correlation less SCAN_CLOSURE_COST per marker width by which it misses a
    parallelogram wins; the best of all sizes first. Empty where none is.

    With four looked for anywhere, dense print can make a sheet's corners, and a stretched
    look (any aspect) can then take them: a 200-question card read through another card's
    template was read so, four of its bubbles taken for the markers. A marker stands
    apart from the print round it; a bubble has its neighbours."""
    import itertools

    import cv2
    import numpy as np

    hs, ws = small.shape
    image = small.astype(np.float32)
    fours: list[MarkerFour] = []
    for factor in np.geomspace(low, high, steps):
        width = expected * float(factor)
        if width < 7 or width > min(hs, ws) / 3:
            continue
        for marker in variants:
            zoom = width / marker.shape[1]
            size = (round(width), max(3, round(marker.shape[0] * zoom)))
            tpl = np.asarray(cv2.resize(marker, size, interpolation=cv2.INTER_AREA), np.float32)
            if _spread_under(tpl, 1.0):
                continue
            th, tw = tpl.shape
            res = _without_flat(
                np.asarray(cv2.matchTemplate(image, tpl, cv2.TM_CCOEFF_NORMED), np.float32), image, tw, th
            )
            whole = res.copy()
            peaks: list[tuple[float, float, float]] = []
            for _ in range(ANYWHERE_TRIES):
                _, score, _, (px, py) = cv2.minMaxLoc(res)
                if score < max(threshold, ANYWHERE_MATCH) or len(peaks) == ANYWHERE_PEAKS:
                    break
                cv2.rectangle(res, (px - tw + 1, py - th + 1), (px + tw - 1, py + th - 1), -1.0, -1)
                if _alone(whole, px, py, tw, th, score):
                    peaks.append((float(score), px + tw / 2, py + th / 2))
            best: MarkerFour | None = None
            for four in itertools.combinations(peaks, 4):
                corners = _clockwise([(x, y) for _, x, y in four])
                if not _framed(corners, width, ws, hs):
                    continue
                (x0, y0), (x1, y1), (x2, y2), (x3, y3) = corners
                closure = math.hypot(x0 + x2 - x1 - x3, y0 + y2 - y1 - y3) / width
                total = sum(s for s, _, _ in four) - SCAN_CLOSURE_COST * closure
                if best is None or total > best.score:
                    best = MarkerFour(corners, width, total)
            if best is not None:
                fours.append(best)
    return sorted(fours, key=lambda four: -four.score)


def _alone(res: Floats, px: int, py: int, tw: int, th: int, score: float) -> bool:
    """Whether the match at (px, py) of ``res`` (matchTemplate's map) stands alone: no
    other match beyond its own marker width and within ANYWHERE_AROUND widths of it
    scores over ANYWHERE_ALONE of ``score``."""
    import cv2

    reach_x, reach_y = round(ANYWHERE_AROUND * tw), round(ANYWHERE_AROUND * th)
    x0, y0 = max(0, px - reach_x), max(0, py - reach_y)
    around = res[y0 : py + reach_y + 1, x0 : px + reach_x + 1].copy()
    cv2.rectangle(around, (px - x0 - tw + 1, py - y0 - th + 1), (px - x0 + tw - 1, py - y0 + th - 1), -1.0, -1)
    return float(around.max()) <= ANYWHERE_ALONE * score


def _clockwise(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Four points as TL, TR, BR, BL: in order of their angle round their centroid
    (clockwise on the picture, whose y grows downward), from the one nearest its top left."""
    cx, cy = sum(x for x, _ in pts) / 4, sum(y for _, y in pts) / 4
    ring = sorted(pts, key=lambda p: math.atan2(p[1] - cy, p[0] - cx))
    first = min(range(4), key=lambda i: ring[i][0] + ring[i][1])
    return ring[first:] + ring[:first]


def _framed(corners: list[tuple[float, float]], width: float, ws: int, hs: int) -> bool:
    """Whether four corners (TL, TR, BR, BL) can be markers framing an answer area of a
    ``ws`` x ``hs`` scan (see ``_search_anywhere``)."""
    tl, tr, br, bl = corners
    across = min(_dist(tl, tr), _dist(bl, br))
    down = min(_dist(tl, bl), _dist(tr, br))
    if min(across, down) < ANYWHERE_MIN_SIDE * width:
        return False
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    sides = min(xs) <= ANYWHERE_EDGE * ws and max(xs) >= (1 - ANYWHERE_EDGE) * ws
    ends = min(ys) <= ANYWHERE_EDGE * hs and max(ys) >= (1 - ANYWHERE_EDGE) * hs
    return (sides or ends) and _sheet_corners(corners, SCAN_SIDES)
