"""Align a sheet by printed dots and lines looked for in zones (OMRChecker v2's dots and lines).

OMRChecker v2's ``CropOnMarkers`` of type ``FOUR_DOTS``, ``TWO_LINES``,
``TWO_LINES_HORIZONTAL``, ``TWO_DOTS_ONE_LINE`` or ``ONE_LINE_TWO_DOTS`` names, for each dot or line the sheet
prints, a zone where it lies (``origin`` and ``dimensions``, widened by ``margins``) in
the pixels of the picture resized to its ``processingImageShape``; the picture is the
page ``CropPage`` found when that comes first. Each dot gives one point (its centre, or a
corner of it), each line two (the ends of its outer or inner edge: a track of timing
marks is a line), and the template's frame is the four points: its corners land on them.
The template keeps that as ``alignment.kind`` "zones" (workers/omr/omrchecker_v2.py)::

    {"layout": "TWO_LINES", "selector": "CENTERS", "processing": [800, 1132],
     "zones": {"leftLine": {"origin": [40, 161], "dimensions": [25, 940],
                            "margins": {"top": 25, "right": 20, "bottom": 15, "left": 20}}, ...},
     "cropPage": {"morphKernel": [10, 10]}}

How a sheet is found: in each zone the print is told from paper by the zone's own grey
levels; a line's marks are joined along it (a closing as long as a tenth of the zone)
and the longest dark shape is the line; a dot is the largest solid dark shape once thin
strokes are opened away. The four points, mapped back to the picture, are the frame, and
the layout tells which way up it lies (page_align.orient, as for a page found by its
edges). A zone with nothing dark in it is NO_SHEET_FOUND, naming the zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from workers.omr.aligners import aligner_register
from workers.omr.errors import NO_SHEET_FOUND, OmrError
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.align import Alignment

    Gray = npt.NDArray[np.uint8]

#: the zones each layout names, in OMRChecker v2's words.
LAYOUTS: Final[Mapping[str, tuple[str, ...]]] = {
    "FOUR_DOTS": ("topLeftDot", "topRightDot", "bottomRightDot", "bottomLeftDot"),
    "TWO_LINES": ("leftLine", "rightLine"),
    "TWO_DOTS_ONE_LINE": ("topLeftDot", "bottomLeftDot", "rightLine"),
    "ONE_LINE_TWO_DOTS": ("leftLine", "topRightDot", "bottomRightDot"),
    "TWO_LINES_HORIZONTAL": ("topLine", "bottomLine"),
}
#: the lines that run across the sheet (the others run down it).
ACROSS: Final = frozenset({"topLine", "bottomLine"})
#: the frame's corner (0 top-left, clockwise) each dot gives, and the two each line gives.
CORNERS: Final[Mapping[str, tuple[int, ...]]] = {
    "topLeftDot": (0,),
    "topRightDot": (1,),
    "bottomRightDot": (2,),
    "bottomLeftDot": (3,),
    "leftLine": (0, 3),
    "topLine": (0, 1),
    "bottomLine": (3, 2),
    "rightLine": (1, 2),
}
#: the selectors (v2's ``defaultSelector``) and what they take: a dot's centre or the
#: corner of it toward (outer) or away from (inner) the frame's corner; a line's outer or
#: inner edge.
SELECTORS: Final[Mapping[str, tuple[str, str]]] = {
    "CENTERS": ("centre", "outer"),
    "OUTER_CORNERS": ("outer", "outer"),
    "INNER_CORNERS": ("inner", "inner"),
}
#: a line must be dark along at least this share of its zone's length ...
MIN_LINE_SHARE: Final = 0.5
#: ... and a dot fill at least this share of its bounding box (a disc fills 0.79).
MIN_DOT_FILL: Final = 0.5
#: ... and be at most this many times as long as it is wide.
MAX_DOT_ASPECT: Final = 2.0
#: a line's end is where its outermost (or innermost) pixel lies in this many rows there.
END_ROWS: Final = 3
#: print is what lies darker than this share of the way from the zone's paper to its ink.
PRINT_SHARE: Final = 0.5


@aligner_register("zones")
def align_zones(gray: Gray, template: Template, *, photo: bool = False) -> list[Alignment]:
    """Aligner "zones": the frame's corners on the dots and lines found in their zones."""
    import cv2
    import numpy as np

    from workers.omr.page_align import find_page, orient

    options = template.alignment.options
    width, height = (int(v) for v in options["processing"])
    to_picture: npt.NDArray[np.float64] = np.eye(3)
    source = gray
    if "cropPage" in options:
        kernel = options["cropPage"].get("morphKernel", (10, 10))
        quad = find_page(gray, morph_kernel=(int(kernel[0]), int(kernel[1])))
        if quad is not None:
            rect = np.array([(0, 0), (width, 0), (width, height), (0, height)], np.float32)
            to_page = cv2.getPerspectiveTransform(np.asarray(quad, np.float32), rect)
            page = cv2.warpPerspective(gray, to_page, (width, height), flags=cv2.INTER_AREA)
            to_picture = np.asarray(np.linalg.inv(to_page), np.float64)
            source = np.asarray(page, np.uint8)
    if source is gray:
        h, w = gray.shape[:2]
        source = np.asarray(cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
        to_picture = np.diag([w / width, h / height, 1.0])
    dot_part, line_edge = SELECTORS[str(options.get("selector", "CENTERS"))]
    corners: dict[int, tuple[float, float]] = {}
    for name in LAYOUTS[str(options["layout"])]:
        zone = options["zones"][name]
        found = _line(source, zone, name, line_edge) if name.endswith("Line") else _dot(source, zone, name, dot_part)
        corners.update(zip(CORNERS[name], found, strict=True))
    points = np.array([corners[i] for i in range(4)], np.float64)
    quad = cv2.perspectiveTransform(points[None], to_picture)[0]
    return orient(gray, template, quad, strict=False)


def _cut(source: Gray, zone: Mapping[str, Any]) -> tuple[Gray, int, int]:
    """The zone grown by its margins, cut from ``source``, and its top-left corner there."""
    h, w = source.shape[:2]
    (x, y), (zw, zh) = zone["origin"], zone["dimensions"]
    m = zone.get("margins", {})
    x0, y0 = max(0, round(x - m.get("left", 0))), max(0, round(y - m.get("top", 0)))
    x1, y1 = min(w, round(x + zw + m.get("right", 0))), min(h, round(y + zh + m.get("bottom", 0)))
    return source[y0:y1, x0:x1], x0, y0


def _print_mask(cut: Gray) -> Gray:
    """The zone's print (255) against its paper (0), told apart by the zone's own levels."""
    import numpy as np

    ink, paper = float(np.percentile(cut, 2)), float(np.percentile(cut, 90))
    if paper - ink < 20:
        return np.zeros_like(cut)
    return np.asarray((cut < paper - PRINT_SHARE * (paper - ink)) * 255, np.uint8)


def _line(source: Gray, zone: Mapping[str, Any], name: str, edge: str) -> tuple[tuple[float, float], ...]:
    """The ends of a line's outer (or inner) edge in ``source`` pixels: (top, bottom) of a
    line down the sheet, (left, right) of one across it."""
    import numpy as np

    cut, x0, y0 = _cut(source, zone)
    across = name in ACROSS
    # A line across the sheet is found as a line down its transposed zone.
    mask = np.ascontiguousarray(_print_mask(cut).T) if across else _print_mask(cut)
    length = zone["dimensions"][0 if across else 1]
    # The outer edge lies toward the sheet's nearest side: left, or top for one across.
    first = (edge == "outer") == (name in ("leftLine", "topLine"))
    (a, start), (b, end) = _down_line(mask, name, length, first)
    if across:
        return (x0 + start, y0 + a), (x0 + end, y0 + b)
    return (x0 + a, y0 + start), (x0 + b, y0 + end)


def _down_line(mask: Gray, name: str, length: float, first: bool) -> tuple[tuple[float, float], tuple[float, float]]:
    """The two ends of the edge of the longest line down ``mask`` (the first column of
    print at each end, or the last): ((column, row) at its top, (column, row) at its
    bottom)."""
    import cv2
    import numpy as np

    run = max(3, round(mask.shape[0] / 10))
    # A timing track's marks, joined along the line; text beside it stays apart. Padded
    # with paper first: a closing takes the picture's border for print and would run the
    # line on to the zone's edge.
    padded = cv2.copyMakeBorder(mask, run, run, 0, 0, cv2.BORDER_CONSTANT, value=0)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, run)))
    joined = np.ascontiguousarray(closed[run:-run])
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined)
    if count < 2:
        raise OmrError(NO_SHEET_FOUND, f"no line was found in the zone {name}")
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_HEIGHT]))
    top, h = int(stats[best, cv2.CC_STAT_TOP]), int(stats[best, cv2.CC_STAT_HEIGHT])
    if h < MIN_LINE_SHARE * length:
        raise OmrError(NO_SHEET_FOUND, f"no line was found in the zone {name}")
    # Each end of the edge from the line's own rows there, not its bounding box: a sheet
    # turned a degree moves the edge's two ends a sixtieth of its length apart.
    ends = []
    for rows in (slice(top, top + END_ROWS), slice(top + h - END_ROWS, top + h)):
        xs = np.nonzero((labels[rows] == best).any(axis=0))[0]
        ends.append(float(xs[0]) if first else float(xs[-1] + 1))
    return (ends[0], float(top)), (ends[1], float(top + h))


def _dot(source: Gray, zone: Mapping[str, Any], name: str, part: str) -> tuple[tuple[float, float]]:
    """A dot's centre (or its corner toward or away from the frame's corner)."""
    import cv2
    import numpy as np

    cut, x0, y0 = _cut(source, zone)
    mask = _print_mask(cut)
    # Thin strokes (text, a frame line through the zone) opened away; a dot stays.
    side = max(3, round(min(zone["dimensions"]) / 12))
    solid = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    _, _, stats, centroids = cv2.connectedComponentsWithStats(solid)
    # A dot is about as wide as high and solid; a band of shade or a frame line is not.
    w_all, h_all, area_all = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    dotlike = (np.maximum(w_all, h_all) <= MAX_DOT_ASPECT * np.minimum(w_all, h_all)) & (
        area_all >= MIN_DOT_FILL * w_all * h_all
    )
    dotlike[0] = False  # the paper
    if not dotlike.any():
        raise OmrError(NO_SHEET_FOUND, f"no dot was found in the zone {name}")
    best = int(np.argmax(np.where(dotlike, area_all, -1)))
    left, top, w, h = (int(v) for v in stats[best, :4])
    if part == "centre":
        cx, cy = centroids[best]
        return ((x0 + float(cx), y0 + float(cy)),)
    corner = CORNERS[name][0] if part == "outer" else (CORNERS[name][0] + 2) % 4
    x = left if corner in (0, 3) else left + w
    y = top if corner in (0, 1) else top + h
    return ((x0 + x, y0 + y),)
