"""Build a template from one blank card and three numbers a teacher knows.

``propose_template(image, questions=N, choices=K, id_digits=D)`` looks at a scan (or, with
``photo=True``, a phone photo) of an unfilled answer card and returns a project template
(workers/omr/template.py) that the reader uses as it is, or refuses with a code and what
it found. It never fills a gap by guessing: a bubble the shape search missed is taken
only where its block's rows and columns put it and its printed outline is there; a
row the card does not print in full, a block with a column too many, blocks that
overlap, a count that does not add up, all refuse.

How, step by step:

1. **Frame.** Four dark, compact blobs of one size near the page's four corners, making a
   rectangle, are corner markers (solid or hollow squares, discs, L-shaped corners): the
   template is aligned by them (alignment ``markers``). Without them the page's edges are
   the frame (alignment ``page``; a scan cropped to the page is its own frame). The card
   is straightened into that frame, so every position below is in template pixels.
2. **Bubbles.** Bubbles are printed as closed outlines, in black, grey or dropout red:
   on the darkest colour channel (where red and pink print shows as dark as black does)
   the paper enclosed by an outline is a white island of a regular shape (an ellipse or
   a rectangle, filling its box and convex). A digit printed inside is an island in that
   island and does not change its outline. A filled example bubble in a legend has no
   white inside and is not one; text counters are too small to share a size with others.
3. **Grid.** Bubbles of one size are grouped: columns of ten evenly spaced bubbles side
   by side are the student-ID block (digits 0..9 top to bottom); runs of exactly K evenly
   spaced bubbles are questions, across (choices in rows) or down (choices in columns),
   and runs with the same start and spacing, evenly spaced, make one block. A block is
   then completed along its lattice (complete_grids): where a place holds no bubble the
   shape search found, the printed ring is looked for there, as dark as the block's own.
4. **Numbering.** Down each column of blocks, then the columns left to right; values
   "1".."K".
5. **Turn.** A blank whose counts do not add up upright is tried a quarter turn each
   way, and taken turned when its print (question numbers before the choices, boxes
   above the student number) says that way is up (upright_evidence).

The module is pure (bytes or arrays in, a dict out): no Django, no Celery.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from workers.omr.align import _dist, as_gray, polygon_area
from workers.omr.errors import OmrError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Image = npt.NDArray[np.uint8]

#: the counts on the card do not match the counts the teacher gave.
BLANK_COUNTS_MISMATCH: Final = "BLANK_COUNTS_MISMATCH"
#: the card is laid out in a way a template cannot say yet (choices down a column), or
#: that the numbering asked for does not fit.
BLANK_LAYOUT_UNSUPPORTED: Final = "BLANK_LAYOUT_UNSUPPORTED"
#: nothing on the picture looks like a bubble sheet.
NOT_A_BUBBLE_SHEET: Final = "NOT_A_BUBBLE_SHEET"
#: a blank whose counts add up only turned sideways, both ways: which way is up is unknown.
BLANK_ORIENTATION_UNKNOWN: Final = "BLANK_ORIENTATION_UNKNOWN"
ORIENTATION_MESSAGE: Final = (
    "which way up the card is could not be told from its print (the question numbers and the "
    "student-number boxes): scan the blank upright"
)

MIN_QUESTIONS: Final = 1
MAX_QUESTIONS: Final = 300
MIN_CHOICES: Final = 2
MAX_CHOICES: Final = 10
MAX_ID_DIGITS: Final = 12
#: the long side of a photo's straightened page (A4 at 200 dpi).
PHOTO_LONG_SIDE: Final = 2339
#: a scan whose page is longer than this (above about 230 dpi) is straightened to
#: PHOTO_LONG_SIDE too.
MAX_SCAN_LONG_SIDE: Final = 2700
#: A4 and US Letter, long side over short side: a photographed page close to one of
#: them (PAPER_SNAP) is taken to be it, since perspective alone cannot tell the aspect.
PAPER_ASPECTS: Final = (math.sqrt(2), 11 / 8.5)
PAPER_SNAP: Final = 0.07
#: a bubble belongs to a size group when its width and height are within this share
#: (as a log ratio) of the group's commonest size.
SIZE_TOL: Final = 0.11
#: spacing along a run of bubbles may vary by this share of the first gap.
GAP_TOL: Final = 0.2
#: how much darker than its neighbourhood a pixel must be to count as print (0..255).
INK_C: Final = 6
#: (ink_c, zoom) of each look for bubbles, tried in turn until the counts add up.
DETECTION_PASSES: Final = ((INK_C, 1.0), (INK_C, 2.0), (4, 2.0), (INK_C, 3.0))
#: how much looking for bubbles a blank may take, every turn of it together, in looks at
#: the frame's own size: a look enlarged z times costs about z of them (measured: the
#: contours, not the pixels, take most of it). Counted in work, not seconds, so that a
#: blank builds the same on a busy worker as on an idle one. Building a template is meant
#: to take under 5 s on a 200-dpi A4 scan, decoding and straightening included
#: (docs/benchmarks.md, "OMR template from a blank card").
LOOK_BUDGET: Final = 10.0
#: more bubble-like shapes than a 300-question card with its ID block could print.
MAX_BUBBLES: Final = 6000


@dataclass(frozen=True)
class Bubble:
    x: float
    y: float
    w: float  # printed outline's width and height, frame pixels
    h: float
    rect: bool  # a rectangle rather than an ellipse
    #: no paper was seen inside it (a blurred outline with its digit, or a filled example
    #: mark): it may complete a row of outlines, never make one.
    filled: bool = False
    #: bubbles of one printed size share a group (size_groups).
    group: int = -1
    #: not found as a shape: its printed outline was checked where its block's lattice
    #: puts it (complete_grids).
    from_ring: bool = False


@dataclass(frozen=True)
class Grid:
    """A block of evenly spaced bubbles: ``rows`` lists of bubbles in reading order."""

    rows: tuple[tuple[Bubble, ...], ...]

    @property
    def first(self) -> Bubble:
        return self.rows[0][0]


@dataclass
class Proposal:
    """What was found: the project template, and what it is drawn from."""

    template: dict[str, Any]
    #: the blank straightened into the template frame (BGR), for the picture of the proposal.
    straight: Image = field(repr=False)
    alignment: str = "markers"
    marker_shape: str | None = None
    #: the frame's corner marker, cut from the straightened blank (greyscale), if any.
    marker_picture: Image | None = field(default=None, repr=False)
    found: dict[str, Any] = field(default_factory=dict)


# --- entry point ------------------------------------------------------------------------


def propose_template(
    image: bytes | Image,
    *,
    questions: int,
    choices: int,
    id_digits: int = 0,
    photo: bool = False,
    name: str = "card",
    numbering: str = "columns",
) -> Proposal:
    """The template of the blank card in ``image`` (encoded bytes, or a BGR/grey array).

    ``numbering``: "columns" numbers down each column of blocks, then left to right;
    "rows" numbers across the page, row by row. Raises OmrError: ``BLANK_COUNTS_MISMATCH``
    (with what was found), ``NOT_A_BUBBLE_SHEET``, or the decoder's codes.
    """
    import numpy as np

    _check_counts(questions, choices, id_digits)
    if numbering not in ("columns", "rows"):
        raise OmrError("INVALID_PAYLOAD", "numbering: must be 'columns' or 'rows'")
    if isinstance(image, bytes):
        from workers.omr.decode import decode_image

        image = decode_image(image)
    colour = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    frame = find_frame(colour, photo=photo)

    budget = _Budget(LOOK_BUDGET)

    def look(turns: int) -> Proposal:
        return _looks(_turned(frame, turns), questions, choices, id_digits, name, numbering, budget)

    # The blank may be scanned sideways: then its counts do not add up upright, and it is
    # tried turned a quarter each way. The card says which way is up by what it prints
    # before each question's choices (its number) and above the student number
    # (write-in boxes, a caption): upright_evidence. A turn is taken only when exactly one
    # of the two says it is upright; else the upright refusal stands, or, when both do,
    # BLANK_ORIENTATION_UNKNOWN. A blank that builds upright is taken as it is: the print
    # cues are not sure enough to turn a card that adds up (one upside down is numbered
    # backwards; its proposal picture shows it).
    try:
        upright = look(0)
    except OmrError as exc:
        if exc.code == BLANK_LAYOUT_UNSUPPORTED:
            raise
        upright_turns = []
        for turns in (1, 3):
            try:
                turned = look(turns)
            except OmrError:
                continue
            if upright_evidence(turned) > 0:
                upright_turns.append((turns, turned))
        if len(upright_turns) == 1:
            return _found_turn(upright_turns[0][1], upright_turns[0][0])
        if upright_turns:
            raise OmrError(BLANK_ORIENTATION_UNKNOWN, ORIENTATION_MESSAGE) from exc
        raise exc
    return upright


def _found_turn(proposal: Proposal, turns: int) -> Proposal:
    proposal.found["turned"] = 90 * turns
    return proposal


@dataclass
class _Budget:
    """What is left of LOOK_BUDGET for one blank, shared by the looks at all its turns."""

    left: float


def _looks(
    frame: Frame, questions: int, choices: int, id_digits: int, name: str, numbering: str, budget: _Budget
) -> Proposal:
    """The proposal from the first of DETECTION_PASSES whose counts add up. The first look
    is always taken; a closer one only while ``budget`` holds its cost (its enlargement)."""
    first_error: OmrError | None = None
    # Faint or tiny print can hide a few outlines from the first look; a closer look
    # (fainter print counted, the page enlarged) is taken only when the counts do not
    # add up, and its result must add up exactly too.
    for ink_c, zoom in DETECTION_PASSES:
        if first_error is not None and zoom > budget.left:
            continue
        budget.left -= zoom
        try:
            return _propose(frame, questions, choices, id_digits, name, numbering, ink_c, zoom)
        except OmrError as exc:
            if exc.code == BLANK_LAYOUT_UNSUPPORTED:
                raise
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _turned(frame: Frame, turns: int) -> Frame:
    """The frame turned ``turns`` quarter turns clockwise (a frame is symmetric: its
    markers stand alike at its four corners, or it is the page)."""
    if turns % 4 == 0:
        return frame
    import numpy as np

    straight = np.ascontiguousarray(np.rot90(frame.straight, k=-turns))
    height, width = straight.shape[:2]
    picture = None if frame.marker_picture is None else np.ascontiguousarray(np.rot90(frame.marker_picture, k=-turns))
    tracks = find_timing_tracks(straight) if frame.kind == "timing" else []
    return replace(
        frame,
        straight=straight,
        width=width,
        height=height,
        dpi=_dpi(width, height),
        marker_picture=picture,
        tracks=tracks,
    )


#: a strip counts as printed on when this share of it is print, and this many times
#: as much as the strip at the other end.
EVIDENCE_INK: Final = 0.01
EVIDENCE_RATIO: Final = 3.0
#: a row or column of a strip this much print is a line (a frame), not a number.
LINE_SHARE: Final = 0.7


def upright_evidence(proposal: Proposal) -> int:
    """How strongly the card's print says the proposal is upright (> 0), upside down
    (< 0), or nothing either way (0).

    A card prints each question's number just before its first choice (left of a row,
    above a column), and the student number's write-in boxes or caption above the ID
    block. Each question row votes by which of its two ends has print beside it and the
    other none; the ID block by the same test above and below it (worth a block of
    rows). The sign of the sum is the answer; a tie is 0."""
    import numpy as np

    from workers.omr.template import parse_template

    tpl = parse_template(proposal.template)
    channel = print_channel(proposal.straight)
    paper = float(np.percentile(channel, 90))
    dark = channel < paper - 60
    h, w = dark.shape

    def ink(x0: float, y0: float, x1: float, y1: float) -> float:
        xa, xb = max(0, round(min(x0, x1))), min(w, round(max(x0, x1)))
        ya, yb = max(0, round(min(y0, y1))), min(h, round(max(y0, y1)))
        if xb <= xa or yb <= ya:
            return 0.0
        strip = dark[ya:yb, xa:xb]
        # A block's frame or a rule beside it is a line through the whole strip; numbers
        # and captions are not.
        lines_across = strip.mean(axis=1) > LINE_SHARE
        lines_down = strip.mean(axis=0) > LINE_SHARE
        kept = strip[~lines_across][:, ~lines_down]
        return float(kept.mean()) if kept.size else 0.0

    def vote(before: float, after: float) -> int:
        if before >= EVIDENCE_INK and before >= EVIDENCE_RATIO * after:
            return 1
        if after >= EVIDENCE_INK and after >= EVIDENCE_RATIO * before:
            return -1
        return 0

    total = 0
    for q in tpl.questions:
        bw, bh = tpl.bubble_size(q)
        (x0, y0), (x1, y1) = q.centres[0], q.centres[-1]
        if abs(x1 - x0) >= abs(y1 - y0):  # choices across: the number is left of the row
            gap = abs(x1 - x0) / max(1, len(q.centres) - 1)
            reach = min(gap, 3 * bw)
            total += vote(
                ink(x0 - bw / 2 - 3, y0 - bh / 2, x0 - bw / 2 - reach, y0 + bh / 2),
                ink(x1 + bw / 2 + 3, y1 - bh / 2, x1 + bw / 2 + reach, y1 + bh / 2),
            )
        else:  # choices down: the number is above the column
            gap = abs(y1 - y0) / max(1, len(q.centres) - 1)
            reach = min(gap, 3 * bh)
            total += vote(
                ink(x0 - bw / 2, y0 - bh / 2 - 3, x0 + bw / 2, y0 - bh / 2 - reach),
                ink(x1 - bw / 2, y1 + bh / 2 + 3, x1 + bw / 2, y1 + bh / 2 + reach),
            )
    if tpl.id_fields:
        firsts = [f.centres[0] for f in tpl.id_fields]
        lasts = [f.centres[-1] for f in tpl.id_fields]
        bw, bh = tpl.bubble_size(tpl.id_fields[0])
        left = min(x for x, _ in firsts) - bw / 2
        right = max(x for x, _ in firsts) + bw / 2
        top, bottom = min(y for _, y in firsts) - bh / 2, max(y for _, y in lasts) + bh / 2
        reach = 4 * bh
        total += 10 * vote(ink(left, top - 3 - reach, right, top - 3), ink(left, bottom + 3, right, bottom + 3 + reach))
    return int(np.sign(total))


def _propose(
    frame: Frame,
    questions: int,
    choices: int,
    id_digits: int,
    name: str,
    numbering: str,
    ink_c: float,
    zoom: float,
) -> Proposal:
    bubbles = find_bubbles(frame.straight, ink_c=ink_c, zoom=zoom)
    if len(bubbles) < choices:
        raise OmrError(
            NOT_A_BUBBLE_SHEET,
            f"no printed answer bubbles were found on this picture ({len(bubbles)} bubble-like shapes)",
        )
    if len(bubbles) > MAX_BUBBLES:
        raise OmrError(
            NOT_A_BUBBLE_SHEET, f"{len(bubbles)} bubble-like shapes: this picture is noise or not an answer sheet"
        )
    channel = print_channel(frame.straight)
    id_grid, rest, id_problem = find_id_block(bubbles, id_digits, channel)
    question_grids, direction = find_question_blocks(rest, choices, channel)
    rows = sum(len(g.rows) for g in question_grids)
    if rows == 0 and id_grid is None:
        raise OmrError(
            NOT_A_BUBBLE_SHEET,
            f"no row of {choices} bubbles and no student-ID block were found: this does not look like "
            f"a bubble answer sheet ({len(bubbles)} bubble-like shapes)",
        )
    if id_problem:
        raise OmrError(BLANK_COUNTS_MISMATCH, id_problem)
    if rows != questions:
        raise OmrError(BLANK_COUNTS_MISMATCH, _questions_message(rows, questions, choices, rest, direction))
    if overlap := _overlap([*question_grids, *([id_grid] if id_grid else [])]):
        # Printed blocks do not overlap; two found so are one block taken apart wrongly
        # (every other row in each), and their numbering would be wrong.
        raise OmrError(BLANK_COUNTS_MISMATCH, overlap)
    if direction == "down":
        # Each question is a column of choices, the questions side by side: a block is
        # read left to right, and the blocks band by band down the page.
        if numbering != "columns":
            raise OmrError(
                BLANK_LAYOUT_UNSUPPORTED, "questions whose choices run down a column are numbered left to right only"
            )
        bands = _lined_up(question_grids, across=False)
        ordered = _sequential([Numbered(g, 0, 1) for band in bands for g in sorted(band, key=lambda g: g.first.x)])
    else:
        ordered = order_blocks(question_grids, numbering)
    template = build_template(
        name=name,
        frame=frame,
        id_grid=id_grid,
        blocks=ordered,
        choices=choices,
        direction=direction,
    )
    from workers.omr.template import TemplateError, parse_template

    try:
        parse_template(template)
    except TemplateError as exc:
        raise OmrError(
            BLANK_COUNTS_MISMATCH, f"the layout found does not make a usable template: {exc.message}"
        ) from exc
    return Proposal(
        template,
        frame.straight,
        frame.kind,
        frame.marker_shape,
        frame.marker_picture,
        {
            "bubbles": len(bubbles),
            # Bubbles the shape search missed, each confirmed by its printed ring where
            # its block's rows and columns put it.
            "bubbles_by_ring": sum(
                b.from_ring for g in (*question_grids, *([id_grid] if id_grid else [])) for r in g.rows for b in r
            ),
            "question_rows": rows,
            "question_blocks": len(question_grids),
            "choices_run": direction,
            "id_digits": 0 if id_grid is None else len(id_grid.rows),
            "alignment": frame.kind,
            "marker_shape": frame.marker_shape,
        },
    )


def _box(grid: Grid) -> tuple[float, float, float, float]:
    bs = [b for r in grid.rows for b in r]
    return (
        min(b.x - b.w / 2 for b in bs),
        min(b.y - b.h / 2 for b in bs),
        max(b.x + b.w / 2 for b in bs),
        max(b.y + b.h / 2 for b in bs),
    )


def _overlap(grids: Sequence[Grid]) -> str:
    """What is wrong when two blocks' areas overlap ("" when none do)."""
    boxes = [_box(g) for g in grids]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                return (
                    f"two blocks of bubbles found overlap, around ({round(max(a[0], b[0]))}, "
                    f"{round(max(a[1], b[1]))}) on the straightened card: their rows could not be told apart"
                )
    return ""


def _check_counts(questions: int, choices: int, id_digits: int) -> None:
    for value, lo, hi, what in (
        (questions, MIN_QUESTIONS, MAX_QUESTIONS, "questions"),
        (choices, MIN_CHOICES, MAX_CHOICES, "choices"),
        (id_digits, 0, MAX_ID_DIGITS, "id_digits"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise OmrError("INVALID_PAYLOAD", f"{what}: must be a whole number from {lo} to {hi}")


def _questions_message(rows: int, questions: int, choices: int, rest: Sequence[Bubble], direction: str) -> str:
    """The refusal: "found 44 question rows of 5, expected 45", with the near misses (rows of 4 or 6:
    a bubble not found, or two rows run together) when there are some."""
    from collections import Counter

    runs = Counter(len(r) for r in _runs(list(rest), across=direction != "down", min_len=max(2, choices - 2)))
    near = [f"{n} of {size}" for size, n in sorted(runs.items()) if size != choices and size <= choices + 2]
    tail = f" (and rows of other lengths: {', '.join(near)})" if near else ""
    return f"found {rows} question rows of {choices}, expected {questions}{tail}"


# --- 1. the frame -------------------------------------------------------------------------


@dataclass
class Frame:
    kind: str  # "markers" or "page"
    straight: Image  # the blank in the template frame, BGR
    width: int
    height: int
    dpi: int
    marker_size: int = 8
    marker_inset: int = 0
    marker_shape: str | None = None
    marker_picture: Image | None = None
    #: timing tracks found along the page's edges (alignment "timing"), template pixels.
    tracks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Blob:
    x: float
    y: float
    w: float
    h: float
    ink: float  # share of its box that is ink
    extent: float = 1.0  # share of its box its outline encloses


def find_frame(colour: Image, *, photo: bool) -> Frame:
    """The corner markers, else the page edges, and the blank straightened into that frame."""
    import numpy as np

    gray = as_gray(colour)
    from workers.omr.page_align import find_page

    page = find_page(gray)
    ih, iw = gray.shape
    if page is None:
        page = np.array([(0, 0), (iw, 0), (iw, ih), (0, ih)], np.float64)
    markers = _find_markers(gray, page, photo=photo)
    if markers is not None:
        return _marker_frame(colour, gray, page, markers, photo=photo)
    return _page_frame(colour, page, photo=photo)


def _find_markers(gray: Image, page: npt.NDArray[np.float64], *, photo: bool) -> list[_Blob] | None:
    import cv2
    import numpy as np

    side = math.sqrt(abs(polygon_area(page)))
    if photo:
        block = int(side / 12) | 1
        binary = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 25)
    else:
        _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    # Every component, not only the outermost: a photo's page edge shades into a dark
    # ring that would enclose the markers.
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return None
    lo, hi = side * 0.012, side * 0.09
    blobs: list[_Blob] = []
    for contour, link in zip(contours, hierarchy[0], strict=True):
        if link[3] != -1:
            continue
        x, y, w, h = cv2.boundingRect(contour)
        if not (lo <= w <= hi and lo <= h <= hi) or min(w, h) < 0.7 * max(w, h):
            continue
        ink = float(np.count_nonzero(binary[y : y + h, x : x + w])) / (w * h)
        if ink < 0.45:
            continue
        # Text and frames are strokes; a marker is a thick shape: most of its ink lies
        # more than a tenth of its side from its edge.
        roi = binary[y : y + h, x : x + w]
        thick = cv2.distanceTransform(roi, cv2.DIST_L2, 3)
        if float(thick.max()) < 0.1 * min(w, h):
            continue
        m = cv2.moments(contour)
        if m["m00"] <= 0:
            continue
        extent = cv2.contourArea(contour) / (w * h)
        blobs.append(_Blob(m["m10"] / m["m00"], m["m01"] / m["m00"], float(w), float(h), ink, extent))
    if len(blobs) < 4:
        return None
    # The blob nearest each page corner, within the outer quarter of the page.
    pts = np.array([(b.x, b.y) for b in blobs])
    chosen: list[_Blob] = []
    for corner in page:
        d = np.hypot(pts[:, 0] - corner[0], pts[:, 1] - corner[1])
        i = int(np.argmin(d))
        if d[i] > 0.25 * side:
            return None
        chosen.append(blobs[i])
    if len({(b.x, b.y) for b in chosen}) < 4:
        return None
    sizes = [math.sqrt(b.w * b.h) for b in chosen]
    if min(sizes) < (0.6 if photo else 0.8) * max(sizes):
        return None
    if max(b.ink for b in chosen) - min(b.ink for b in chosen) > 0.2:
        return None  # four markers are printed alike
    quad = np.array([(b.x, b.y) for b in chosen])
    a, b = _dist(quad[0], quad[1]), _dist(quad[3], quad[2])
    c, d = _dist(quad[0], quad[3]), _dist(quad[1], quad[2])
    tol = 0.7 if photo else 0.95
    if min(a, b) < tol * max(a, b) or min(c, d) < tol * max(c, d):
        return None
    return chosen


def _marker_shape(blobs: Sequence[_Blob], gray: Image) -> str:
    """solid, hollow, circle or corner: from how much of its box is ink and where; or
    "project": this project's own markers, three solid and the top-left one hollow."""
    import numpy as np

    light = []
    for b in blobs:
        k = max(1, round(min(b.w, b.h) * 0.12))
        centre = gray[round(b.y) - k : round(b.y) + k + 1, round(b.x) - k : round(b.x) + k + 1]
        light.append(float(np.mean(centre)) if centre.size else 0.0)
    order = sorted(range(4), key=lambda i: -light[i])
    if order[0] == 0 and light[0] - light[order[1]] > 60 and light[order[1]] - light[order[3]] < 40:
        return "project"
    # A square's outline fills its box, a disc's about pi/4 of it, an L's about half; a
    # hollow square is a square outline with paper inside.
    extent = float(np.median([b.extent for b in blobs]))
    ink = float(np.median([b.ink for b in blobs]))
    if extent < 0.68:
        return "corner"
    if extent < 0.88:
        return "circle"
    return "solid" if ink >= 0.9 else "hollow"


def _square_centre(gray: Image, blob: _Blob) -> tuple[float, float]:
    """The centre of the smallest (turned) rectangle round a marker's ink: for an L, the
    square it fills two sides of, whatever the scan's skew."""
    import cv2

    reach = round(max(blob.w, blob.h))
    x0, y0 = max(0, round(blob.x) - reach), max(0, round(blob.y) - reach)
    roi = gray[y0 : round(blob.y) + reach + 1, x0 : round(blob.x) + reach + 1]
    _, binary = cv2.threshold(roi, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return blob.x, blob.y
    (cx, cy), _, _ = cv2.minAreaRect(max(contours, key=cv2.contourArea))
    return x0 + cx, y0 + cy


def _straight_markers(sgray: Image, centres: Any, size: int) -> list[_Blob] | None:
    """The four markers measured on the straightened page around their centres there."""
    import cv2
    import numpy as np

    out = []
    reach = round(size * 0.8)
    for cx, cy in centres:
        x0, y0 = max(0, round(cx) - reach), max(0, round(cy) - reach)
        roi = sgray[y0 : round(cy) + reach + 1, x0 : round(cx) + reach + 1]
        if roi.size == 0:
            return None
        _, binary = cv2.threshold(roi, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return None
        contour = max(contours, key=cv2.contourArea)
        x, y, w, h = cv2.boundingRect(contour)
        if w * h == 0:
            return None
        ink = float(np.count_nonzero(binary[y : y + h, x : x + w])) / (w * h)
        extent = cv2.contourArea(contour) / (w * h)
        out.append(_Blob(x0 + x + w / 2, y0 + y + h / 2, float(w), float(h), ink, extent))
    return out


def _marker_frame(
    colour: Image, gray: Image, page: npt.NDArray[np.float64], markers: list[_Blob], *, photo: bool
) -> Frame:
    import cv2
    import numpy as np

    shape = _marker_shape(markers, gray)
    if shape == "corner":
        # An L's ink is centred a seventh of its side off its square's centre, towards its
        # inside corner; the reader places a marker by its square, as the template's
        # ``marker`` inset and size describe it.
        quad = np.array([_square_centre(gray, b) for b in markers], np.float64)
    else:
        quad = np.array([(b.x, b.y) for b in markers], np.float64)
    size_img = float(np.mean([math.sqrt(b.w * b.h) for b in markers]))
    across = (_dist(quad[0], quad[1]) + _dist(quad[3], quad[2])) / 2
    down = (_dist(quad[0], quad[3]) + _dist(quad[1], quad[2])) / 2
    # How far the markers sit from the page edge, in picture pixels (the page's own edge
    # when it was found, else the picture's).
    edge = float(np.mean([_dist_to_segment(quad[i], page[j], page[(j + 1) % 4]) for i in range(4) for j in (i - 1, i)]))
    long_side = max(across + 2 * edge, down + 2 * edge)
    k = 1.0
    if photo or long_side > MAX_SCAN_LONG_SIDE:
        # Straighten first at unit scale, then size the page to A4 at 200 dpi (a scan
        # at more is looked at as at 200 dpi: as exact for a template, and faster).
        k = PHOTO_LONG_SIDE / long_side
    msize = max(8, round(size_img * k))
    half_guess = edge * k
    inset = max(0, round(half_guess - msize / 2))
    half = inset + msize / 2
    width, height = round(across * k + 2 * half), round(down * k + 2 * half)
    if photo:
        width, height = _snap_paper(width, height, half)
    tpl = np.array([(half, half), (width - half, half), (width - half, height - half), (half, height - half)])
    hom = cv2.getPerspectiveTransform(quad.astype(np.float32), tpl.astype(np.float32))
    straight = cv2.warpPerspective(colour, hom, (width, height), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    sgray = as_gray(np.asarray(straight, np.uint8))
    m = round(half)
    r = msize // 2 + 1
    picture = sgray[max(0, m - r) : m + r, max(0, m - r) : m + r].copy()
    if photo and shape != "corner":
        # A photo's perspective and blur round a square's corners: its shape is told
        # again where the markers stand square, on the straightened page.
        again = _straight_markers(sgray, tpl, msize)
        if again is not None:
            shape = _marker_shape(again, sgray)
    return Frame(
        "markers",
        np.asarray(straight, np.uint8),
        width,
        height,
        _dpi(width, height),
        msize,
        inset,
        shape,
        picture,
    )


def _page_frame(colour: Image, page: npt.NDArray[np.float64], *, photo: bool) -> Frame:
    import cv2
    import numpy as np

    across = (_dist(page[0], page[1]) + _dist(page[3], page[2])) / 2
    down = (_dist(page[0], page[3]) + _dist(page[1], page[2])) / 2
    k = PHOTO_LONG_SIDE / max(across, down) if photo or max(across, down) > MAX_SCAN_LONG_SIDE else 1.0
    width, height = round(across * k), round(down * k)
    if photo:
        width, height = _snap_paper(width, height, 0)
    tpl = np.array([(0, 0), (width, 0), (width, height), (0, height)], np.float64)
    hom = cv2.getPerspectiveTransform(page.astype(np.float32), tpl.astype(np.float32))
    straight: Image = np.asarray(
        cv2.warpPerspective(colour, hom, (width, height), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255)),
        np.uint8,
    )
    tracks = find_timing_tracks(straight)
    kind = "timing" if tracks else "page"
    return Frame(kind, straight, width, height, _dpi(width, height), tracks=tracks)


#: a timing track has at least this many marks.
MIN_TRACK: Final = 5
MAX_TRACKS: Final = 4


def find_timing_tracks(straight: Image) -> list[dict[str, Any]]:
    """Tracks of evenly spaced solid bars along the page's edges, as the "timing" aligner
    takes them (workers/omr/timing_align.py): first centre, step, count, size."""
    import cv2
    import numpy as np

    gray = as_gray(straight)
    h, w = gray.shape
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    edge = 0.12 * min(w, h)
    bars: list[Bubble] = []
    for contour in contours:
        x, y, bw, bh = cv2.boundingRect(contour)
        if not (min(bw, bh) >= 3 and max(bw, bh) <= 0.06 * min(w, h)) or max(bw, bh) < 1.5 * min(bw, bh):
            continue
        if cv2.contourArea(contour) < 0.8 * bw * bh:
            continue  # a bar is solid and square-cornered
        cx, cy = x + bw / 2, y + bh / 2
        if min(cx, cy, w - cx, h - cy) > edge:
            continue  # timing marks run along an edge
        bars.append(Bubble(cx, cy, float(bw), float(bh), True))
    tracks: list[list[Bubble]] = []
    for across in (False, True):  # down a side edge, then along the top or bottom
        for run in _runs(bars, across=across, min_len=MIN_TRACK):
            tracks.append(run)
    tracks.sort(key=len, reverse=True)
    out: list[dict[str, Any]] = []
    for run in tracks[:MAX_TRACKS]:
        n = len(run)
        step = ((run[-1].x - run[0].x) / (n - 1), (run[-1].y - run[0].y) / (n - 1))
        out.append(
            {
                "first": [round(run[0].x, 1), round(run[0].y, 1)],
                "step": [round(step[0], 2), round(step[1], 2)],
                "count": n,
                "size": [
                    round(float(np.median([b.w for b in run])), 1),
                    round(float(np.median([b.h for b in run])), 1),
                ],
            }
        )
    return out


def _snap_paper(width: int, height: int, half: float) -> tuple[int, int]:
    """A photographed page near A4 or Letter made exactly so (perspective blurs aspect)."""
    long_side, short_side = max(width, height), min(width, height)
    for aspect in PAPER_ASPECTS:
        if abs(long_side / short_side / aspect - 1) <= PAPER_SNAP:
            short_side = round(long_side / aspect)
            break
    return (short_side, long_side) if width <= height else (long_side, short_side)


def _dpi(width: int, height: int) -> int:
    # The frame's long side against A4's 11.69 inches: a reference for the reader's
    # resolution floor, rounded to a plain figure.
    return int(min(600, max(100, round(max(width, height) / 11.69 / 10) * 10)))


# --- 2. the bubbles ----------------------------------------------------------------------


def print_channel(colour: Image) -> Image:
    """The darkest channel of each pixel: red and pink print show there as dark as black."""
    import numpy as np

    return np.asarray(colour.min(axis=2), np.uint8)


def find_bubbles(straight: Image, *, ink_c: float = INK_C, zoom: float = 1.0) -> list[Bubble]:
    """Every printed bubble outline on the straightened blank.

    ``ink_c``: how much darker than its neighbourhood print is (lower finds fainter
    outlines); ``zoom``: work on a copy this many times larger (small bubbles whose digit
    nearly fills them keep their paper inside apart from the digit)."""
    import cv2
    import numpy as np

    ink_src = print_channel(straight)
    if zoom != 1.0:
        ink_src = np.asarray(cv2.resize(ink_src, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC), np.uint8)
    ink_src = np.asarray(cv2.medianBlur(ink_src, 3), np.uint8)
    h, w = ink_src.shape
    block = int(max(15, min(h, w) / 40)) | 1
    ink = np.asarray(
        cv2.adaptiveThreshold(ink_src, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, ink_c), np.uint8
    )
    lo, hi = max(5.0, min(h, w) / 300), min(h, w) / 12
    # The paper an outline encloses (a digit inside is an island in it), grown by the
    # outline's width; and outlines as ink shapes with paper inside, for the digits that
    # touch their outline and cut the enclosed paper in two.
    # Sizes are of the outline's middle line, as a template gives them (and as a printer
    # draws them): the enclosed paper grown by half the stroke on each side, the outline's
    # outside shrunk by as much.
    inner = _regular_shapes(np.asarray(255 - ink, np.uint8), lo, hi, hollow=False)
    stroke = _stroke_width(ink, inner)
    found = [(x, y, bw + stroke, bh + stroke, rect, filled) for x, y, bw, bh, rect, filled in inner]
    found += [
        (x, y, bw - stroke, bh - stroke, r, f) for x, y, bw, bh, r, f in _regular_shapes(ink, lo, hi, hollow=True)
    ]
    # One bubble found both ways, or a digit's counter ("0", "8") inside a bubble: the
    # biggest shape around a centre stands for it, and it has paper inside when any of
    # them showed paper.
    found.sort(key=lambda t: -t[2] * t[3])
    kept: list[list[Any]] = []
    for cand in found:
        for k in kept:
            if abs(cand[0] - k[0]) < k[2] / 2 and abs(cand[1] - k[1]) < k[3] / 2:
                k[5] = k[5] and cand[5]
                break
        else:
            kept.append(list(cand))
    z = 1 / zoom
    kept = [k for k in kept if min(k[2], k[3]) >= 3]
    return size_groups([Bubble(x * z, y * z, bw * z, bh * z, rect, f) for x, y, bw, bh, rect, f in kept])


def size_groups(bubbles: list[Bubble]) -> list[Bubble]:
    """The bubbles, each with the group of its printed size.

    Measured sizes scatter by a pixel or two, and two blocks may differ by little more
    (26 and 30 px circles), so a fixed tolerance between two bubbles either splits a
    block or merges two. Instead the commonest size is taken as a group's centre and
    every bubble near it joins, then the commonest of the rest, and so on.
    """
    import numpy as np

    if not bubbles:
        return []
    sizes = np.log(np.array([(b.w, b.h) for b in bubbles], np.float64))
    near = np.max(np.abs(sizes[:, None, :] - sizes[None, :, :]), axis=2) <= SIZE_TOL
    group = np.full(len(bubbles), -1)
    n = 0
    while (group < 0).any():
        free = group < 0
        density = (near & free[None, :]).sum(axis=1) * free
        centre = int(np.argmax(density))
        group[free & near[centre]] = n
        n += 1
    return [replace(b, group=int(g)) for b, g in zip(bubbles, group, strict=True)]


#: x, y, width, height, rectangle, filled
Shape = tuple[float, float, float, float, bool, bool]


def _regular_shapes(binary: Image, lo: float, hi: float, *, hollow: bool) -> list[Shape]:
    """Components of ``binary`` shaped like a bubble: an ellipse or a rectangle filling
    its box, convex, ``lo``..``hi`` px a side. ``hollow``: with paper inside (an outline)."""
    import cv2

    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    links = hierarchy[0]
    found: list[Shape] = []
    for contour, link in zip(contours, links, strict=True):
        if link[3] != -1:
            continue  # a hole, not a component
        _, _, bw, bh = cv2.boundingRect(contour)
        if not (lo <= bw <= hi and lo <= bh <= hi) or max(bw, bh) > 4 * min(bw, bh):
            continue
        area = cv2.contourArea(contour)
        extent = area / (bw * bh)
        if extent < 0.68:
            continue
        hull = cv2.contourArea(cv2.convexHull(contour))
        if hull <= 0 or area / hull < 0.92:
            continue
        if hollow:
            # All its holes together: a digit touching the outline cuts the paper inside
            # into pieces.
            child, holes = int(link[2]), 0.0
            while child != -1:
                holes += cv2.contourArea(contours[child])
                child = int(links[child][0])
            filled = holes < 0.05 * area  # a filled blob, or an outline blurred shut
        else:
            filled = False
        # The centroid, not the box's middle: sub-pixel, as the reader measures markers.
        m = cv2.moments(contour)
        if m["m00"] <= 0:
            continue
        found.append((m["m10"] / m["m00"], m["m01"] / m["m00"], float(bw), float(bh), extent > 0.9, filled))
    return found


def _stroke_width(ink: Image, inner: Sequence[Shape]) -> float:
    """How thick the outlines are (as thresholded): median over a sample of the rings."""
    import numpy as np

    widths: list[float] = []
    h, w = ink.shape
    for x, y, bw, bh, _, _ in inner[:: max(1, len(inner) // 200)]:
        cx, cy = round(x), round(y)
        for dx, dy, start in ((1, 0, bw / 2), (-1, 0, bw / 2), (0, 1, bh / 2), (0, -1, bh / 2)):
            n = 0
            px, py = cx + dx * round(start), cy + dy * round(start)
            while 0 <= px < w and 0 <= py < h and ink[py, px] and n < 12:
                n += 1
                px, py = px + dx, py + dy
            if 0 < n < 12:
                widths.append(n)
    return float(np.median(widths)) if widths else 2.0


# --- 3. the grid -------------------------------------------------------------------------


def _same_size(a: Bubble, b: Bubble) -> bool:
    return a.group == b.group


def _runs(bubbles: list[Bubble], *, across: bool, min_len: int) -> list[list[Bubble]]:
    """Runs of same-sized, evenly spaced bubbles on one line (a row when ``across``)."""
    lines: list[list[Bubble]] = []

    def key(b: Bubble) -> float:
        return b.y if across else b.x

    def along(b: Bubble) -> float:
        return b.x if across else b.y

    for b in sorted(bubbles, key=key):
        tol = 0.3 * (b.h if across else b.w)
        # The nearest line of bubbles of this size (compared with the line's first bubble,
        # so that sizes cannot drift along it).
        near = [line for line in lines if abs(key(b) - key(line[-1])) <= tol and _same_size(b, line[0])]
        if near:
            min(near, key=lambda line: abs(key(b) - key(line[-1]))).append(b)
        else:
            lines.append([b])
    runs: list[list[Bubble]] = []
    for line in lines:
        line.sort(key=along)
        run: list[Bubble] = [line[0]]
        gap = 0.0
        for b in line[1:]:
            g = along(b) - along(run[-1])
            size = b.w if across else b.h
            # Printed bubbles stand apart, paper between them at least a quarter of their
            # size: boxes drawn side by side sharing their borders (write-in boxes) are no run.
            if len(run) == 1 and size * 1.25 <= g <= 5 * max(b.w, b.h):
                run.append(b)
                gap = g
            elif len(run) > 1 and abs(g - gap) <= GAP_TOL * gap:
                run.append(b)
            else:
                if len(run) >= min_len:
                    runs.append(run)
                run, gap = [b], 0.0
        if len(run) >= min_len:
            runs.append(run)
    return runs


def _outlined(run: Sequence[Bubble]) -> bool:
    """Most of a run's bubbles showed paper inside: printed outlines, not a row of blobs."""
    return 2 * sum(not b.filled for b in run) > len(run)


def _grids(runs: list[list[Bubble]], *, across: bool) -> list[Grid]:
    """Runs with the same start, length and spacing, evenly stacked: one block each."""

    def start(b: Bubble) -> float:
        return b.x if across else b.y

    def stack(b: Bubble) -> float:
        return b.y if across else b.x

    runs = sorted(runs, key=lambda r: stack(r[0]))
    used = [False] * len(runs)
    grids: list[Grid] = []
    for i, run in enumerate(runs):
        if used[i]:
            continue
        used[i] = True
        members = [run]
        step = 0.0
        gap = _mean_gap(run, across)
        for j in range(i + 1, len(runs)):
            other = runs[j]
            if used[j] or len(other) != len(run) or not _same_size(other[0], run[0]):
                continue
            if abs(start(other[0]) - start(members[-1][0])) > 0.3 * min(run[0].w, run[0].h):
                continue
            if abs(_mean_gap(other, across) - gap) > 0.1 * gap:
                continue
            d = stack(other[0]) - stack(members[-1][0])
            if d <= 0:
                continue
            if len(members) == 1:
                if d > 6 * max(run[0].w, run[0].h):
                    break
                step = d
            elif abs(d - step) > 0.12 * step:
                if d > step * 1.12:
                    break
                continue
            members.append(other)
            used[j] = True
        grids.append(Grid(tuple(tuple(m) for m in members)))
    return grids


def _mean_gap(run: Sequence[Bubble], across: bool) -> float:
    a = run[0].x if across else run[0].y
    b = run[-1].x if across else run[-1].y
    return (b - a) / max(1, len(run) - 1)


def find_id_block(
    bubbles: list[Bubble], digits: int, channel: Image | None = None
) -> tuple[Grid | None, list[Bubble], str]:
    """The student-ID block (``digits`` columns of ten), the bubbles left over, and what
    is wrong with it ("" when it was found as expected). ``channel``: the print channel
    of the straightened blank, to complete the blocks by (complete_grids)."""
    if digits == 0:
        return None, bubbles, ""
    runs = _runs(bubbles, across=False, min_len=9)
    if channel is not None:
        runs = _lengthen(runs, 10, bubbles, channel)
    columns = [r for r in runs if len(r) == 10 and _outlined(r)]
    grids = _grids(columns, across=False)
    if channel is not None:
        grids = complete_grids(grids, bubbles, channel)
    grids = [g for g in grids if len(g.rows) >= 2]
    exact = [g for g in grids if len(g.rows) == digits]
    if len(exact) != 1:
        if len(grids) == 1:
            seen = f"a block of {len(grids[0].rows)}"
        elif grids:
            seen = "blocks of " + ", ".join(str(len(g.rows)) for g in sorted(grids, key=lambda g: -len(g.rows)))
        else:
            seen = "no block of"
        problem = f"found {seen} student-ID columns (of 10 bubbles), expected one block of {digits}"
        return (exact[0] if exact else None), bubbles, problem
    grid = exact[0]
    taken = {id(b) for row in grid.rows for b in row}
    return grid, [b for b in bubbles if id(b) not in taken], ""


def find_question_blocks(bubbles: list[Bubble], choices: int, channel: Image | None = None) -> tuple[list[Grid], str]:
    """The question blocks, choices running "across" (rows) or "down" (columns);
    ``channel`` as for find_id_block."""
    best: tuple[list[Grid], str] = ([], "across")
    best_rows = -1
    for across in (True, False):
        runs = _runs(bubbles, across=across, min_len=max(2, choices - 1))
        if channel is not None:
            runs = _lengthen(runs, choices, bubbles, channel)
        runs = [r for r in runs if len(r) == choices and _outlined(r)]
        grids = _grids(runs, across=across)
        if channel is not None:
            grids = complete_grids(grids, bubbles, channel)
        rows = sum(len(g.rows) for g in grids)
        if rows > best_rows:
            best, best_rows = (grids, "across" if across else "down"), rows
    return best


#: a found bubble stands at a lattice place when its centre is within this share of the
#: block's smaller bubble side, and is of the block's size within this log ratio.
PLACE_TOL: Final = 0.3
PLACE_SIZE_TOL: Final = 0.25
#: a place with no bubble found there holds one when its printed ring is, sector by
#: sector, at least this share as dark against the paper around it as the block's own
#: found bubbles' rings are (their median), and that median is print, not noise (grey levels).
RING_SHARE: Final = 0.45
MIN_RING_CONTRAST: Final = 8.0
RING_SECTORS: Final = 8


def _lattice(rows: Sequence[Sequence[Bubble]]) -> tuple[Any, Any, Any]:
    """A block's first centre and its two steps (along a row, between rows) as vectors,
    fitted over every bubble of it."""
    import numpy as np

    n_rows, n_cols = len(rows), len(rows[0])
    ii, jj = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    design = np.stack([np.ones(ii.size), jj.ravel(), ii.ravel()], axis=1)
    xy = np.array([[(b.x, b.y) for b in r] for r in rows], np.float64).reshape(-1, 2)
    coef, *_ = np.linalg.lstsq(design, xy, rcond=None)
    return coef[0], coef[1], coef[2]


def ring_contrast(channel: Image, x: float, y: float, w: float, h: float, *, rect: bool) -> float:
    """How much darker a bubble's printed outline at (x, y), w x h, is than the paper
    just outside it, in its least dark sector (grey levels; about 0 where nothing is
    printed, and low where only a stroke of text crosses the place)."""
    import numpy as np

    rx, ry = w / 2, h / 2
    x0, x1 = math.floor(x - 1.7 * rx), math.ceil(x + 1.7 * rx) + 1
    y0, y1 = math.floor(y - 1.7 * ry), math.ceil(y + 1.7 * ry) + 1
    if x0 < 0 or y0 < 0 or x1 > channel.shape[1] or y1 > channel.shape[0]:
        return 0.0
    patch = channel[y0:y1, x0:x1].astype(np.float32)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dx, dy = (xx - x) / rx, (yy - y) / ry
    r = np.maximum(np.abs(dx), np.abs(dy)) if rect else np.hypot(dx, dy)
    # The ring a pixel or so either side of the outline (sizes are measured to about a
    # pixel); the paper from a third out to 0.6 of the bubble's size beyond it.
    band = 0.15 + 1.0 / min(rx, ry)
    ring = np.abs(r - 1) <= band
    out = (r >= 1 + band + 0.1) & (r <= 1.6 + band)
    sector = ((np.arctan2(dy, dx) + math.pi) / (2 * math.pi) * RING_SECTORS).astype(int) % RING_SECTORS
    worst = math.inf
    for k in range(RING_SECTORS):
        ring_k, out_k = patch[ring & (sector == k)], patch[out & (sector == k)]
        if ring_k.size == 0 or out_k.size == 0:
            return 0.0
        # The paper's brighter part: a frame line or text beside the bubble darkens some
        # of the band outside it, not the paper between.
        worst = min(worst, float(np.percentile(out_k, 75)) - float(np.percentile(ring_k, 25)))
    return worst


def complete_grids(grids: list[Grid], bubbles: Sequence[Bubble], channel: Image) -> list[Grid]:
    """The blocks, each completed along its lattice where the card prints more of it.

    The shape search misses a bubble here and there (a digit that fills a small bubble and
    touches its outline, faint or blurred print, a size measured a pixel off), and a row
    with one missing is no row: its block then comes out split, a row short, or (every
    other row missed) as a block of twice the spacing. A block of two rows or more fixes
    where its rows are; a place of it holds a bubble when a found bubble of the block's
    size stands there, or, where none was found, a printed ring (ring_contrast) as dark as
    the block's own. The biggest blocks first: each is taken at a half or a third of its
    spacing when every place between its rows holds a bubble, then grows row by row at
    both ends while every place of the next row does. A block whose bubbles it takes is
    merged into it. Nothing is taken on position alone: a place with nothing printed
    stops the growth, and the counts are checked after.
    """
    import numpy as np

    if not grids or not bubbles:
        return grids
    pts = np.array([(b.x, b.y) for b in bubbles], np.float64)
    owner: dict[int, int] = {}
    for gi, g in enumerate(grids):
        for run in g.rows:
            for b in run:
                owner[id(b)] = gi
    rows_of: list[list[tuple[Bubble, ...]] | None] = [list(g.rows) for g in grids]
    done: set[int] = set()  # blocks completed: what they hold is theirs

    def free(b: Bubble) -> bool:
        return owner.get(id(b)) not in done

    def take(gi: int, row: tuple[Bubble, ...]) -> None:
        for b in row:
            other = owner.get(id(b), gi)
            if other != gi:  # the rest of that block is on this lattice too, or lost
                for r in rows_of[other] or ():
                    for ob in r:
                        owner.pop(id(ob), None)
                rows_of[other] = None
            owner[id(b)] = gi

    for gi in sorted(range(len(grids)), key=lambda i: -len(grids[i].rows)):
        rows = rows_of[gi]
        if rows is None or len(rows) < 2:
            continue
        look = _Look.of(rows, channel)
        n = len(rows[0])
        # A block found at a multiple of its spacing (rows missed between): halve or
        # third it while every place between its rows holds a bubble.
        while len(rows) >= 2 and (dense := _denser(rows, look, pts, bubbles, free)) is not None:
            for added in dense:
                take(gi, added)
            rows = dense
        for forward in (True, False):
            while True:
                origin, along, between = _lattice(rows)
                row = look.row(origin + (len(rows) if forward else -1) * between, along, n, pts, bubbles, free)
                if row is None:
                    break
                take(gi, row)
                rows = [*rows, row] if forward else [row, *rows]
        rows_of[gi] = rows
        done.add(gi)
    return [Grid(tuple(r)) for r in rows_of if r is not None]


def _lengthen(runs: list[list[Bubble]], length: int, bubbles: Sequence[Bubble], channel: Image) -> list[list[Bubble]]:
    """The runs, each one bubble short of ``length`` taken one further at the one end
    where a bubble of its size is printed (a found one that no run holds, or a printed
    ring as dark as its own). A run that could go on at both ends is left as it is: the
    card prints more than a run there."""
    import numpy as np

    if not bubbles:
        return runs
    pts = np.array([(b.x, b.y) for b in bubbles], np.float64)
    held = {id(b) for r in runs for b in r}
    out = []
    for run in runs:
        if len(run) != length - 1 or len(run) < 2:
            out.append(run)
            continue
        look = _Look.of([run], channel)
        first = np.array([run[0].x, run[0].y])
        step = (np.array([run[-1].x, run[-1].y]) - first) / (len(run) - 1)
        ends = [
            look.row(first - step, step, 1, pts, bubbles, lambda b: id(b) not in held),
            look.row(first + len(run) * step, step, 1, pts, bubbles, lambda b: id(b) not in held),
        ]
        if (ends[0] is None) == (ends[1] is None):
            out.append(run)
            continue
        grown = [*ends[0], *run] if ends[0] is not None else [*run, *(ends[1] or ())]
        held.update(id(b) for b in grown)
        out.append(grown)
    return out


def _denser(
    rows: list[tuple[Bubble, ...]],
    look: _Look,
    pts: Any,
    bubbles: Sequence[Bubble],
    free: Callable[[Bubble], bool],
) -> list[tuple[Bubble, ...]] | None:
    """The block at a half, third or fifth of its spacing, when every place between its
    rows holds a bubble; else None."""
    origin, along, between = _lattice(rows)
    n = len(rows[0])
    for m in (2, 3, 5):
        dense: list[tuple[Bubble, ...]] = [rows[0]]
        for i in range(len(rows) - 1):
            for k in range(1, m):
                row = look.row(origin + (i + k / m) * between, along, n, pts, bubbles, free)
                if row is None:
                    break
                dense.append(row)
            else:
                dense.append(rows[i + 1])
                continue
            break
        else:
            return dense
    return None


@dataclass
class _Look:
    """What a block's bubbles look like: their size, shape and ring contrast."""

    w: float
    h: float
    rect: bool
    group: int
    ring: float  # the median ring_contrast of its found bubbles
    channel: Image = field(repr=False)

    @classmethod
    def of(cls, rows: Sequence[Sequence[Bubble]], channel: Image) -> _Look:
        import numpy as np

        members = [b for r in rows for b in r]
        w = float(np.median([b.w for b in members]))
        h = float(np.median([b.h for b in members]))
        rect = 2 * sum(b.rect for b in members) > len(members)
        sample = members[:: max(1, len(members) // 24)]
        ring = float(np.median([ring_contrast(channel, b.x, b.y, w, h, rect=rect) for b in sample]))
        return cls(w, h, rect, rows[0][0].group, ring, channel)

    def hits(self, places: Sequence[Any], pts: Any, bubbles: Sequence[Bubble]) -> list[Bubble | None]:
        """The found bubble standing at each place, if any."""
        import numpy as np

        xs = np.array([float(p[0]) for p in places])
        ys = np.array([float(p[1]) for p in places])
        d = np.hypot(pts[:, 0, None] - xs, pts[:, 1, None] - ys)
        nearest = np.argmin(d, axis=0)
        tol = PLACE_TOL * min(self.w, self.h)
        return [bubbles[int(k)] if d[int(k), j] <= tol else None for j, k in enumerate(nearest)]

    def row(
        self, start: Any, along: Any, n: int, pts: Any, bubbles: Sequence[Bubble], free: Callable[[Bubble], bool]
    ) -> tuple[Bubble, ...] | None:
        """The row of ``n`` bubbles from ``start``, or None when a place of it holds none
        or a bubble that is not ``free`` (another block's, completed before)."""
        places = [start + j * along for j in range(n)]
        out: list[Bubble] = []
        for place, hit in zip(places, self.hits(places, pts, bubbles), strict=True):
            x, y = float(place[0]), float(place[1])
            if hit is not None and not free(hit):
                return None
            if hit is not None and max(abs(math.log(hit.w / self.w)), abs(math.log(hit.h / self.h))) <= PLACE_SIZE_TOL:
                out.append(hit)
            # No shape found there, or one measured another size (blur joins an outline
            # to its digit): the printed ring decides.
            elif self.ring >= MIN_RING_CONTRAST and (
                ring_contrast(self.channel, x, y, self.w, self.h, rect=self.rect) >= RING_SHARE * self.ring
            ):
                out.append(Bubble(x, y, self.w, self.h, self.rect, group=self.group, from_ring=True))
            else:
                return None
        return tuple(out)


@dataclass(frozen=True)
class Numbered:
    """A block with its numbering: row i is question ``first + i * step``."""

    grid: Grid
    first: int
    step: int


def _sequential(blocks: list[Numbered]) -> list[Numbered]:
    """The same blocks in the same order, each numbered on from the last, step 1."""
    out, first = [], 1
    for b in blocks:
        out.append(Numbered(b.grid, first, 1))
        first += len(b.grid.rows)
    return out


def _lined_up(grids: Sequence[Grid], *, across: bool) -> list[list[Grid]]:
    """The grids in columns (``across``: by the left of their first bubble, left to
    right) or in bands (by its top, top to bottom): a grid joins the last group when its
    first bubble starts within a bubble's width (height) of that group's first grid's."""
    groups: list[list[Grid]] = []
    for g in sorted(grids, key=lambda g: g.first.x if across else g.first.y):
        if groups and (
            abs(groups[-1][0].first.x - g.first.x) <= g.first.w
            if across
            else abs(groups[-1][0].first.y - g.first.y) <= g.first.h
        ):
            groups[-1].append(g)
        else:
            groups.append([g])
    return groups


def order_blocks(grids: list[Grid], numbering: str) -> list[Numbered]:
    """The blocks with the numbers their questions get.

    "columns": blocks whose first bubbles line up form a column; the numbers run down each
    column, block after block, then on to the next column to the right. "rows": blocks
    side by side form a band; the numbers run across the band's first rows, then its
    second rows..., band after band down the page. Across a band the blocks must have the
    same number of rows, save that the last ones may be one row short.
    """
    out: list[Numbered] = []
    first = 1
    if numbering == "columns":
        cols = _lined_up(grids, across=True)
        for g in (g for col in cols for g in sorted(col, key=lambda g: g.first.y)):
            out.append(Numbered(g, first, 1))
            first += len(g.rows)
        return out
    for band in _lined_up(grids, across=False):
        band.sort(key=lambda g: g.first.x)
        counts = [len(g.rows) for g in band]
        if any(c not in (counts[0], counts[0] - 1) for c in counts) or counts != sorted(counts, reverse=True):
            raise OmrError(
                BLANK_LAYOUT_UNSUPPORTED,
                f"blocks side by side have {', '.join(map(str, counts))} rows: numbering across them "
                "row by row needs blocks of one length",
            )
        for j, g in enumerate(band):
            out.append(Numbered(g, first + j, len(band)))
        first += sum(counts)
    return out


# --- 4. the template ---------------------------------------------------------------------


def _fit(grid: Grid) -> tuple[float, float, float, float, float, float]:
    """origin x, y, the step along a row and the step between rows (as vectors' main
    components), and the bubble size, fitted over the whole grid."""
    import numpy as np

    rows = grid.rows
    n_rows, n_cols = len(rows), len(rows[0])
    xs = np.array([[b.x for b in r] for r in rows])
    ys = np.array([[b.y for b in r] for r in rows])
    ii, jj = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    design = np.stack([np.ones(ii.size), jj.ravel(), ii.ravel()], axis=1)
    cx, *_ = np.linalg.lstsq(design, xs.ravel(), rcond=None)
    cy, *_ = np.linalg.lstsq(design, ys.ravel(), rcond=None)
    w = float(np.median([b.w for r in rows for b in r]))
    h = float(np.median([b.h for r in rows for b in r]))
    # step along a row: (cx[1], cy[1]); between rows: (cx[2], cy[2])
    return float(cx[0]), float(cy[0]), float(cx[1]) + float(cy[1]), float(cx[2]) + float(cy[2]), w, h


def _bubble_spec(grid: Grid) -> dict[str, Any]:
    _, _, _, _, w, h = _fit(grid)
    rect = sum(b.rect for r in grid.rows for b in r) > len(grid.rows) * len(grid.rows[0]) / 2
    return {"width": round(w, 1), "height": round(h, 1), "shape": "rectangle" if rect else "ellipse"}


def build_template(
    *, name: str, frame: Frame, id_grid: Grid | None, blocks: list[Numbered], choices: int, direction: str
) -> dict[str, Any]:
    qblocks: list[dict[str, Any]] = []
    for block in blocks:
        x0, y0, cgap, rgap, _, h = _fit(block.grid)
        count = len(block.grid.rows)
        entry: dict[str, Any] = {
            "first": block.first,
            "count": count,
            "origin": [round(x0, 1), round(y0, 1)],
            "choice_gap": round(cgap, 2),
            "row_gap": round(rgap if count > 1 else max(h * 2, 1.0), 2),
            "bubble": _bubble_spec(block.grid),
        }
        if block.step != 1:
            entry["step"] = block.step
        if direction == "down":
            entry["direction"] = "down"
        qblocks.append(entry)
    default = qblocks[0]["bubble"]
    data: dict[str, Any] = {
        "format": "academy-omr-template/1",
        "name": name,
        "title": "",
        "page": {"width": frame.width, "height": frame.height, "dpi": frame.dpi},
        "marker": {"size": frame.marker_size, "inset": frame.marker_inset},
        "bubble": default,
    }
    if id_grid is not None:
        x0, y0, rgap, cgap, _, _ = _fit(id_grid)  # a column's rows are its digits
        data["student_id"] = {
            "digits": len(id_grid.rows),
            "origin": [round(x0, 1), round(y0, 1)],
            "column_gap": round(cgap, 2),
            "row_gap": round(rgap, 2),
            "bubble": _bubble_spec(id_grid),
        }
    data["choices"] = [str(c) for c in range(1, choices + 1)]
    data["question_blocks"] = qblocks
    if frame.kind == "markers" and frame.marker_shape == "project":
        data["alignment"] = {"kind": "markers"}  # the hollow one tells which way is up
    elif frame.kind == "markers":
        data["alignment"] = {"kind": "markers", "identical": True, "shape": frame.marker_shape}
    elif frame.kind == "timing":
        data["alignment"] = {"kind": "timing", "tracks": frame.tracks}
    else:
        data["alignment"] = {"kind": "page"}
    return data


# --- geometry -----------------------------------------------------------------------------


def _dist_to_segment(p: Any, a: Any, b: Any) -> float:
    ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    px, py = float(p[0]), float(p[1])
    dx, dy = bx - ax, by - ay
    length = dx * dx + dy * dy
    t = 0.0 if length == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


# --- what is handed back ------------------------------------------------------------------

#: the picture of a proposal is drawn at this share of the template's size.
PICTURE_SCALE: Final = 0.6
FOUND_COLOUR: Final = (40, 160, 40)  # BGR: the bubbles found
LABEL_COLOUR: Final = (200, 60, 0)  # question numbers and ID digits


def proposal_picture(proposal: Proposal) -> bytes:
    """The blank as straightened, with every bubble the template has drawn on it: its
    outline, each question's number left of its first choice, each ID column's number
    above it and the digit values beside the first column. A PNG, for a person to check."""
    import cv2

    from workers.omr.template import parse_template

    tpl = parse_template(proposal.template)
    k = PICTURE_SCALE
    pic = cv2.resize(proposal.straight, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    # Fade the card so what is drawn on it stands out.
    pic = cv2.addWeighted(pic, 0.55, pic * 0 + 255, 0.45, 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for f in tpl.fields:
        w, h = tpl.bubble_size(f)
        for x, y in f.centres:
            c = (round(x * k), round(y * k))
            if f.shape == "rectangle":
                cv2.rectangle(
                    pic,
                    (round((x - w / 2) * k), round((y - h / 2) * k)),
                    (round((x + w / 2) * k), round((y + h / 2) * k)),
                    FOUND_COLOUR,
                    2,
                )
            else:
                cv2.ellipse(pic, c, (max(1, round(w / 2 * k)), max(1, round(h / 2 * k))), 0, 0, 360, FOUND_COLOUR, 2)
    for q in tpl.questions:
        x, y = q.centres[0]
        w, _ = tpl.bubble_size(q)
        text = q.label
        (tw, th), _ = cv2.getTextSize(text, font, 0.5, 1)
        org = (round((x - w) * k) - tw, round(y * k) + th // 2)
        # On a white patch: the card prints its own numbers about here.
        cv2.rectangle(pic, (org[0] - 2, org[1] - th - 2), (org[0] + tw + 2, org[1] + 3), (255, 255, 255), -1)
        cv2.putText(pic, text, org, font, 0.5, LABEL_COLOUR, 1, cv2.LINE_AA)
    for i, f in enumerate(tpl.id_fields):
        x, y = f.centres[0]
        _, h = tpl.bubble_size(f)
        cv2.putText(pic, str(i + 1), (round(x * k) - 4, round((y - h) * k)), font, 0.45, LABEL_COLOUR, 1, cv2.LINE_AA)
        if i == 0:
            w, _ = tpl.bubble_size(f)
            for value, (vx, vy) in zip(f.values, f.centres, strict=True):
                cv2.putText(
                    pic, value, (round((vx - w) * k) - 10, round(vy * k) + 5), font, 0.45, LABEL_COLOUR, 1, cv2.LINE_AA
                )
    ok, buf = cv2.imencode(".png", pic, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
        raise RuntimeError("PNG encoding failed")
    return bytes(buf)


def omrchecker_files(proposal: Proposal) -> dict[str, bytes]:
    """The proposal as an OMRChecker v1 ``template.json`` (and the marker picture it
    names): the frame runs between the four marker centres (CropOnMarkers), or is the
    page (CropPage). Questions are ``q1..qN`` with values "1".."K"; the student number is
    QTYPE_INT columns ``id1..idD`` joined as the custom label ``student_id``."""
    import json

    import cv2

    from workers.omr.template import parse_template

    tpl = parse_template(proposal.template)
    data = proposal.template
    if proposal.alignment == "markers":
        half = data["marker"]["inset"] + data["marker"]["size"] / 2
        fx = fy = half
        dims = [round(tpl.width - 2 * half), round(tpl.height - 2 * half)]
    else:
        fx = fy = 0.0
        dims = [tpl.width, tpl.height]
    default_w, default_h = tpl.bubble_size(tpl.questions[0])
    blocks: dict[str, Any] = {}
    if tpl.id_fields:
        sid = data["student_id"]
        w, h = tpl.bubble_size(tpl.id_fields[0])
        x0, y0 = tpl.id_fields[0].centres[0]
        blocks["StudentID"] = {
            "fieldType": "QTYPE_INT",
            "fieldLabels": [f"id1..{len(tpl.id_fields)}"],
            "origin": [round(x0 - w / 2 - fx), round(y0 - h / 2 - fy)],
            "bubblesGap": sid["row_gap"],
            "labelsGap": sid["column_gap"],
            "bubbleDimensions": [round(w), round(h)],
        }
    for block in data["question_blocks"]:
        first, count = block["first"], block["count"]
        w, h = block["bubble"]["width"], block["bubble"]["height"]
        x0, y0 = block["origin"]
        entry: dict[str, Any] = {
            "bubbleValues": list(data["choices"]),
            "direction": "vertical" if block.get("direction") == "down" else "horizontal",
            "fieldLabels": _omrchecker_labels(first, count, int(block.get("step", 1))),
            "origin": [round(x0 - w / 2 - fx), round(y0 - h / 2 - fy)],
            "bubblesGap": block["choice_gap"],
            "labelsGap": block["row_gap"],
        }
        if (w, h) != (default_w, default_h):
            entry["bubbleDimensions"] = [round(w), round(h)]
        blocks[f"Questions_{first}"] = entry
    out: dict[str, Any] = {
        "pageDimensions": dims,
        "bubbleDimensions": [round(default_w), round(default_h)],
        "fieldBlocks": blocks,
        "emptyValue": "",
        "preProcessors": [],
    }
    if tpl.id_fields:
        out["customLabels"] = {"student_id": [f"id1..{len(tpl.id_fields)}"]}
    files: dict[str, bytes] = {}
    if proposal.alignment == "markers" and proposal.marker_picture is not None:
        ok, buf = cv2.imencode(".png", proposal.marker_picture)
        if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
            raise RuntimeError("PNG encoding failed")
        files["omr_marker.png"] = bytes(buf)
        out["preProcessors"].append(
            {
                "name": "CropOnMarkers",
                "options": {
                    "relativePath": "omr_marker.png",
                    "sheetToMarkerWidthRatio": round(tpl.width / data["marker"]["size"], 2),
                },
            }
        )
    else:
        out["preProcessors"].append({"name": "CropPage", "options": {"morphKernel": [10, 10]}})
    files["template.json"] = (json.dumps(out, indent=2, ensure_ascii=False) + "\n").encode()
    return files


def _omrchecker_labels(first: int, count: int, step: int) -> list[str]:
    if step != 1:
        return [f"q{first + i * step}" for i in range(count)]
    return [f"q{first}..{first + count - 1}" if count > 1 else f"q{first}"]


def template_renumber(template: Mapping[str, Any], numbering: str) -> dict[str, Any]:
    """A proposed template with its questions numbered again: "columns" (down each column
    of blocks, then left to right) or "rows" (across the blocks side by side, row by row),
    as :func:`order_blocks` numbers them. The blocks and their bubbles stay where they are.
    Raises OmrError: INVALID_PAYLOAD for another numbering, BLANK_LAYOUT_UNSUPPORTED when
    the blocks side by side differ in length (see order_blocks)."""
    import copy

    if numbering not in ("columns", "rows"):
        raise OmrError("INVALID_PAYLOAD", "numbering: must be 'columns' or 'rows'")
    out: dict[str, Any] = copy.deepcopy(dict(template))
    blocks = out.get("question_blocks")
    if not isinstance(blocks, list) or not blocks:
        raise OmrError("TEMPLATE_INVALID", "question_blocks: the template has no question blocks")
    if any(b.get("direction") == "down" for b in blocks):
        if numbering == "columns":
            return out  # questions whose choices run down are numbered left to right as found
        raise OmrError(
            BLANK_LAYOUT_UNSUPPORTED, "questions whose choices run down a column are numbered left to right only"
        )
    grids = []
    for block in blocks:
        (x, y), count = block["origin"], int(block["count"])
        size = block.get("bubble") or out.get("bubble") or {}
        w = float(size.get("width", 2 * size.get("radius", 10)))
        h = float(size.get("height", 2 * size.get("radius", 10)))
        # Stand-in grids: only their first bubble and their length matter to order_blocks.
        first = Bubble(float(x), float(y), w, h, False)
        grids.append(Grid(tuple((first,) for _ in range(count))))
    by_grid = {id(g): b for g, b in zip(grids, blocks, strict=True)}
    renumbered = []
    for numbered in order_blocks(grids, numbering):
        block = dict(by_grid[id(numbered.grid)])
        block["first"] = numbered.first
        block.pop("step", None)
        if numbered.step != 1:
            block["step"] = numbered.step
        renumbered.append(block)
    out["question_blocks"] = renumbered
    return out
