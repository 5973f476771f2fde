"""How ``question_segmentation`` cuts a scanned worksheet page into one region per question.

Pure OpenCV and NumPy, no model. The page is read by the shared guarded decoder (the
``ocr`` processor's :func:`workers.ocr.decode_page`), then:

1. **Ink.** A pixel is ink when it is darker than both Otsu's threshold and the paper
   level less ``INK_CONTRAST`` (so a blank page with scanner noise has no ink at all);
   specks under a few pixels are dropped.
2. **Deskew.** The ink's row profile is sharpest when text lines are level: angles within
   ``MAX_SKEW_DEG`` are tried on a reduced copy and the page is turned by the best one.
3. **Lines.** The text height ``u`` is the median glyph height. Ink closed horizontally
   over gaps under ``u`` (and vertically over a quarter of it) falls into line segments:
   words join into a line, but not across a column gutter.
4. **Columns.** A gutter is a vertical strip (at least ``0.8 u`` wide, away from the page
   edges) that almost no segment covers, with enough content on both sides that is not
   joined across it. Segments crossing a gutter (a title, a wide passage) make
   full-width sections; the rest of the page is read column by column.
5. **Question starts.** In each column, segments overlapping in height make rows. A row
   starts a question when it begins at the column's left margin and its first token (ink
   up to the first word space) looks like a question number: one to three digit-shaped
   glyphs, optionally with a ``.`` or ``)``. A large gap above plus a hanging indent
   below counts as a start too. With ``read_numbers`` (default) and Tesseract installed,
   the candidate tokens are read in one Tesseract run (``workers.ocr``) to confirm the
   digits and fill ``number``; without Tesseract the geometry alone decides.
6. **Regions.** A question runs from its start row to the row before the next start. Rows
   before the first start are the page header; a line alone at the foot of the page,
   far below everything, is the footer; rows at the top of a later column or section
   continue the previous question (a second entry in its ``parts``). A page without any
   number cue is split at large vertical gaps instead (lower confidence, review).

Boxes are reported in the coordinates of the page as uploaded (the bounding box of the
deskewed region turned back); the crops come from the deskewed page.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from workers.base import BadInput, JobInput, ProcessingError
from workers.segmentation.model import Layout, Question, _Row, _Section, _Seg

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]

MAX_REGIONS: Final = 200
MAX_SKEW_DEG: Final = 5.0
#: ink is at least this much darker than the paper (0..255).
INK_CONTRAST: Final = 50
#: the confidence a question gets from how it was found (the rest comes from the gaps).
CUE_WEIGHT: Final = {"number": 1.0, "shape": 0.85, "indent": 0.6, "gap": 0.4}
_NUMBER_RE: Final = re.compile(r"^[(\[]?(\d{1,3})[.,)\]]?$")
_OCR_LOOKALIKE: Final = str.maketrans({"l": "1", "I": "1", "|": "1", "O": "0", "o": "0", "S": "5"})


def ink_mask(gray: Gray) -> Gray:
    """1 where there is ink, 0 elsewhere (specks removed)."""
    import cv2
    import numpy as np

    paper = float(np.percentile(gray[:: max(1, gray.shape[0] // 400), :: max(1, gray.shape[1] // 400)], 90))
    otsu, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    limit = min(float(otsu), paper - INK_CONTRAST)
    if limit <= 0:
        return np.zeros_like(gray)
    ink = (gray < limit).astype(np.uint8)
    _count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    scale = max(gray.shape) / 2339.0  # 1.0 for A4 at 200 dpi
    min_area = max(3, int(6 * scale * scale))
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return np.asarray(keep[labels], dtype=np.uint8)


def skew_angle(ink: Gray) -> float:
    """How far the page is turned: degrees counter-clockwise, as cv2.getRotationMatrix2D counts."""
    import numpy as np

    step = max(1, max(ink.shape) // 1200)
    ys, xs = np.nonzero(ink[::step, ::step])
    if len(ys) < 50:
        return 0.0
    if len(ys) > 200_000:
        pick = np.random.default_rng(0).choice(len(ys), 200_000, replace=False)
        ys, xs = ys[pick], xs[pick]
    yf, xf = ys.astype(np.float64), xs.astype(np.float64)
    height = int(ink.shape[0] // step) + 1

    def score(angle: float) -> float:
        t = np.deg2rad(angle)
        rows = np.round(yf * np.cos(t) - xf * np.sin(t)).astype(np.int64) + height
        hist = np.bincount(rows)
        return float(np.dot(hist, hist))

    coarse = np.arange(-MAX_SKEW_DEG, MAX_SKEW_DEG + 1e-9, 0.5)
    best = float(max(coarse, key=score))
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    best = float(max(fine, key=score))
    # Points turned by -best level the lines: the page was turned by +best in image
    # coordinates (y down), which cv2.getRotationMatrix2D calls -best.
    return -round(best, 2)


def _deskew(gray: Gray, angle: float) -> tuple[Gray, Any]:
    """The page turned back by ``angle`` on a canvas large enough to keep every corner."""
    import cv2
    import numpy as np

    h, w = gray.shape
    if abs(angle) < 0.05:
        return gray, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    matrix[0, 2] += nw / 2 - w / 2
    matrix[1, 2] += nh / 2 - h / 2
    turned = cv2.warpAffine(
        gray, matrix, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=255
    )
    return np.asarray(turned, dtype=np.uint8), matrix


def text_unit(ink: Gray) -> float:
    """The median glyph height in pixels (the scale every threshold is measured in)."""
    import cv2
    import numpy as np

    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    hs, ws = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_WIDTH]
    limit = ink.shape[0] / 15
    glyphs = hs[(hs >= 5) & (hs < limit) & (ws < ink.shape[1] / 10)]
    if len(glyphs) < 5:
        return max(6.0, float(ink.shape[0]) / 150)
    # Hangul syllables split into several components; the taller half are whole glyphs.
    return float(max(6.0, np.percentile(glyphs, 75)))


def _segments(ink: Gray, unit: float) -> list[_Seg]:
    import cv2

    kx = max(3, round(unit))
    ky = max(1, round(unit / 4))
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (kx, 1)))
    closed = cv2.morphologyEx(closed, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, ky)))
    _, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    segs = []
    for x, y, w, h, _area in stats[1:]:
        segs.append(_Seg(int(x), int(y), int(x + w), int(y + h)))
    return segs


def _gutters(segs: list[_Seg], unit: float) -> list[tuple[int, int]]:
    """Vertical whitespace strips that separate columns (x0, x1), left to right."""
    import numpy as np

    cx0, cx1 = min(s.x0 for s in segs), max(s.x1 for s in segs)
    cy0, cy1 = min(s.y0 for s in segs), max(s.y1 for s in segs)
    width, height = cx1 - cx0, cy1 - cy0
    if width < 10 * unit or height < 5 * unit:
        return []
    cover = np.zeros(width, dtype=np.float64)
    for s in segs:
        cover[s.x0 - cx0 : s.x1 - cx0] += s.y1 - s.y0
    free = cover <= 0.06 * height
    lo, hi = int(0.15 * width), int(0.85 * width)
    runs: list[tuple[int, int]] = []
    x = lo
    while x < hi:
        if free[x]:
            end = x
            while end < width and free[end]:
                end += 1
            start = x
            while start > 0 and free[start - 1]:
                start -= 1
            # The gutter proper is the emptiest stretch of the run (ragged line ends
            # and the next column's numbers make its shoulders).
            floor = float(cover[start:end].min()) + 0.01 * height
            best: tuple[int, int] | None = None
            i = start
            while i < end:
                if cover[i] <= floor:
                    j = i
                    while j < end and cover[j] <= floor:
                        j += 1
                    if best is None or j - i > best[1] - best[0]:
                        best = (i, j)
                    i = j
                i += 1
            if best is not None and best[1] - best[0] >= 0.8 * unit:
                runs.append((best[0] + cx0, best[1] + cx0))
            x = end
        x += 1
    # Widest first; each must leave a real column (wide, well filled, not joined
    # across) on both sides, between it and its accepted neighbours.
    gutters: list[tuple[int, int]] = []
    for g0, g1 in sorted(runs, key=lambda r: r[0] - r[1]):
        if g1 - g0 < 1.5 * unit or len(gutters) == 3:
            continue
        lo_edge = max((b for _a, b in gutters if b <= g0), default=cx0)
        hi_edge = min((a for a, _b in gutters if a >= g1), default=cx1)
        if min(g0 - lo_edge, hi_edge - g1) < max(6 * unit, 0.12 * width):
            continue
        left = sum(s.y1 - s.y0 for s in segs if s.x1 <= g0 and s.x0 >= lo_edge)
        right = sum(s.y1 - s.y0 for s in segs if s.x0 >= g1 and s.x1 <= hi_edge)
        crossing = sum(s.y1 - s.y0 for s in segs if s.x0 < g1 and s.x1 > g0)
        if min(left, right) >= 0.06 * height and crossing <= 0.25 * (left + right):
            gutters.append((g0, g1))
    return sorted(gutters)


def _sections(segs: list[_Seg], gutters: list[tuple[int, int]], unit: float) -> list[_Section]:
    """Reading order: full-width bands and, between them, one section per column."""
    cx0, cx1 = min(s.x0 for s in segs), max(s.x1 for s in segs)
    if not gutters:
        return [_Section(0, 10**9, cx0, cx1, 1, False)]
    spanning = sorted((s for s in segs if any(s.x0 < g1 and s.x1 > g0 for g0, g1 in gutters)), key=lambda s: s.y0)
    bands: list[list[int]] = []
    for s in spanning:
        if bands and s.y0 <= bands[-1][1] + unit / 2:
            bands[-1][1] = max(bands[-1][1], s.y1)
        else:
            bands.append([s.y0, s.y1])
    edges = [cx0] + [g for gutter in gutters for g in gutter] + [cx1]
    col_spans = [(edges[2 * i], edges[2 * i + 1]) for i in range(len(gutters) + 1)]
    sections: list[_Section] = []
    top = -1
    for b0, b1 in [*bands, [10**9, 10**9]]:
        if b0 > top:
            for i, (x0, x1) in enumerate(col_spans):
                sections.append(_Section(top, b0, x0, x1, i + 1, False))
        if b0 < 10**9:
            sections.append(_Section(b0, b1 + 1, cx0, cx1, 1, True))
        top = b1 + 1
    return sections


def _assign(segs: list[_Seg], sections: list[_Section], unit: float) -> None:
    """Put each segment in its section and group each section's segments into rows."""
    members: dict[int, list[_Seg]] = {}
    for s in segs:
        best, best_i = None, -1
        for i, sec in enumerate(sections):
            if not sec.y0 <= s.cy < sec.y1:
                continue
            if sec.full_width or sec.x0 - unit <= s.cx <= sec.x1 + unit:
                best, best_i = sec, i
                if sec.full_width or sec.x0 <= s.cx <= sec.x1:
                    break
        if best is not None:
            members.setdefault(best_i, []).append(s)
    tolerance = unit / 4
    for i, sec in enumerate(sections):
        rows: list[_Row] = []
        for s in sorted(members.get(i, []), key=lambda s: s.y0):
            row = rows[-1] if rows else None
            if row is not None and s.y0 <= row.y1 + tolerance:
                row.x0, row.x1 = min(row.x0, s.x0), max(row.x1, s.x1)
                row.y0, row.y1 = min(row.y0, s.y0), max(row.y1, s.y1)
            else:
                rows.append(_Row(s.x0, s.y0, s.x1, s.y1))
        sec.rows = rows


def _first_token(ink: Gray, row: _Row, unit: float) -> None:
    """Find the row's first word and judge whether its glyphs look like a number."""
    import cv2
    import numpy as np

    x_end = min(row.x1, row.x0 + int(5 * unit))
    strip = ink[row.y0 : row.y1, row.x0 : x_end]
    if strip.size == 0:
        return
    cols: list[bool] = np.asarray(strip.any(axis=0)).astype(bool).tolist()
    # A word space is about 0.45 u; but a lone "1" has wide side bearings, so after a
    # token still narrower than half a glyph the gap must be wider to end it ("1 0.").
    space, wide_space = max(3, round(unit * 0.45)), max(4, round(unit * 0.8))
    start, end, blank = -1, 0, 0
    for i, has_ink in enumerate(cols):
        if has_ink:
            start = i if start < 0 else start
            end, blank = i + 1, 0
        else:
            blank += 1
            if end > 0 and blank >= (wide_space if end - start < unit / 2 else space):
                break
    else:
        if row.x1 > x_end:  # no word space within reach: a long word or a figure
            return
    token = strip[:, :end]
    rows_with_ink = np.nonzero(token.any(axis=1))[0]
    if len(rows_with_ink) == 0:
        return
    ty0, ty1 = int(rows_with_ink[0]), int(rows_with_ink[-1]) + 1
    row.token = (row.x0, row.y0 + ty0, row.x0 + end, row.y0 + ty1)
    if end > 3.5 * unit or ty1 - ty0 > 1.6 * unit:
        return
    count, _, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(token[ty0:ty1]), connectivity=8)
    comps = sorted(((int(x), int(y), int(w), int(h)) for x, y, w, h, _a in stats[1:count]), key=lambda c: c[0])
    if not comps:
        return
    tail = comps[-1]
    full = ty1 - ty0
    # A trailing "." (small, on the baseline) or ")" (tall and thin) ends a number.
    if len(comps) > 1 and (
        (tail[3] < 0.35 * full and tail[1] + tail[3] >= 0.7 * full)
        or (tail[3] >= 0.8 * full and tail[2] <= 0.4 * tail[3])
    ):
        comps = comps[:-1]
    digits = [c for c in comps if c[3] >= 0.55 * full]
    small = [c for c in comps if c[3] < 0.55 * full]
    row.shape_number = (
        1 <= len(digits) <= 3
        and not small
        and all(c[2] <= 0.8 * c[3] for c in digits)
        and all(0.45 * unit <= c[3] <= 1.3 * unit for c in digits)
    )


def _column_left(rows: Sequence[_Row], unit: float) -> int:
    xs = sorted(r.x0 for r in rows)
    for x in xs:
        if sum(1 for other in xs if abs(other - x) <= unit / 2) >= 2:
            return x
    return xs[0]


def _read_tokens(page: Gray, rows: list[_Row], unit: float, tesseract_cmd: str | None) -> bool:
    """Read every candidate token in one Tesseract run; False when OCR is unavailable."""
    import cv2
    import numpy as np

    from workers.ocr import OcrProcessor

    candidates = [r for r in rows if r.token is not None]
    if not candidates:
        return True
    reader = OcrProcessor(tesseract_cmd=tesseract_cmd, timeout_s=60)
    try:
        reader.validate({"lang": "eng", "psm": 6})
    except BadInput:
        return False
    scale = 1.0 if unit >= 20 else 24.0 / unit
    pad, slot = int(unit), int(unit * 2.2)
    pieces = []
    width = 0
    for r in candidates:
        assert r.token is not None
        x0, y0, x1, y1 = r.token
        piece = page[y0:y1, x0:x1]
        if scale != 1.0:
            piece = np.asarray(cv2.resize(piece, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), np.uint8)
        piece = piece[: int(slot * scale)]
        pieces.append(piece)
        width = max(width, piece.shape[1])
    slot_h = int(slot * scale) + pad
    sheet = np.full((slot_h * len(pieces) + pad, width + 2 * pad), 255, dtype=np.uint8)
    for i, piece in enumerate(pieces):
        top = pad + i * slot_h
        sheet[top : top + piece.shape[0], pad : pad + piece.shape[1]] = piece
    ok, buf = cv2.imencode(".png", sheet)
    if not ok:
        return False
    try:
        result = reader.run(JobInput(params={"lang": "eng", "psm": 6}, data=buf.tobytes()))
    except (BadInput, ProcessingError):
        return False
    texts: dict[int, list[tuple[int, str]]] = {}
    for word in result.data["words"]:
        x, y, _w, h = word["box"]
        i = int((y + h / 2 - pad) // slot_h)
        if 0 <= i < len(candidates):
            texts.setdefault(i, []).append((x, word["text"]))
    for i, r in enumerate(candidates):
        r.read = "".join(t for _x, t in sorted(texts.get(i, []))).strip()
        m = _NUMBER_RE.match(r.read.translate(_OCR_LOOKALIKE))
        r.number = int(m.group(1)) if m else None
    return True


def _starts(sections: list[_Section], unit: float, line_gap: float) -> None:
    """Mark the rows that begin a question (``row.cue``)."""
    big_gap = max(1.6 * line_gap, 0.9 * unit)
    for sec in sections:
        if not sec.rows:
            continue
        left = _column_left(sec.rows, unit)
        for i, row in enumerate(sec.rows):
            if row.x0 > left + 0.8 * unit or row.token is None:
                continue
            if row.read is None:
                numeric = row.shape_number
            else:  # read, but only at the body text's size (a title's year is no number)
                x0, y0, x1, y1 = row.token
                numeric = row.number is not None and y1 - y0 <= 1.3 * unit and x1 - x0 <= 3.5 * unit
            gap_above = row.y0 - sec.rows[i - 1].y1 if i else 10**9
            nxt = sec.rows[i + 1] if i + 1 < len(sec.rows) else None
            indent = (
                nxt is not None
                and nxt.y0 - row.y1 < big_gap
                and nxt.x0 >= row.token[2] - unit / 4
                and nxt.x0 <= row.token[2] + 2 * unit
            )
            # A number-like first word starts a question only after more than a line
            # space: a wrapped line may well begin with "3" or "x".
            if numeric and gap_above >= max(1.3 * line_gap, 0.6 * unit):
                row.cue = "number" if row.number is not None else "shape"
            elif gap_above >= big_gap and indent and row.token[2] - row.token[0] <= 3.5 * unit:
                row.cue = "indent"


def _line_gap(sections: list[_Section], unit: float) -> float:
    import numpy as np

    gaps = [b.y0 - a.y1 for sec in sections for a, b in zip(sec.rows, sec.rows[1:], strict=False) if b.y0 > a.y1]
    if not gaps:
        return unit / 2
    return float(max(unit / 4, np.percentile(gaps, 40)))


def _span(rows: Sequence[_Row]) -> tuple[int, int, int, int]:
    return min(r.x0 for r in rows), min(r.y0 for r in rows), max(r.x1 for r in rows), max(r.y1 for r in rows)


def _gap_score(gap: float, line_gap: float) -> float:
    return max(0.0, min(1.0, (gap / max(line_gap, 1.0) - 1.0) / 2.0))


def _build(
    sections: list[_Section], unit: float, line_gap: float, page_h: int
) -> tuple[list[Question], tuple[int, int, int, int] | None, tuple[int, int, int, int] | None]:
    """Questions (reading order), the header and the footer, from the marked rows."""
    any_start = any(r.cue for sec in sections for r in sec.rows)
    # Footer: the last rows of the page, one line high, near the bottom, far from the rest.
    footer: tuple[int, int, int, int] | None = None
    tail = [r for sec in sections for r in sec.rows]
    if len(tail) > 1:
        last = max(tail, key=lambda r: r.y0)
        above = max((r.y1 for r in tail if r.y1 <= last.y0), default=None)
        if (
            last.cue is None
            and last.y1 - last.y0 <= 2 * unit
            and last.y0 >= 0.88 * page_h
            and above is not None
            and last.y0 - above >= 3 * unit
        ):
            footer = (last.x0, last.y0, last.x1, last.y1)
            for sec in sections:
                sec.rows = [r for r in sec.rows if r is not last]
    questions: list[Question] = []
    header_rows: list[_Row] = []
    for sec in sections:
        if not sec.rows:
            continue
        if not any_start:
            block = [sec.rows[0]]
            for prev, row in zip(sec.rows, sec.rows[1:], strict=False):
                gap = row.y0 - prev.y1
                if gap >= max(2.5 * line_gap, 1.5 * unit):
                    questions.append(Question([_span(block)], sec.column, sec.full_width, None, "gap", 0.0))
                    block = []
                block.append(row)
            questions.append(Question([_span(block)], sec.column, sec.full_width, None, "gap", 0.0))
            continue
        current: list[_Row] = []
        current_q: Question | None = questions[-1] if questions else None
        for i, row in enumerate(sec.rows):
            if row.cue:
                if current:
                    _flush(current, current_q, header_rows)
                gap_above: int | None = row.y0 - sec.rows[i - 1].y1 if i else None
                current_q = Question([], sec.column, sec.full_width, row.number, row.cue)
                if gap_above is not None:
                    current_q.gap_score = _gap_score(gap_above, line_gap)
                    if questions and questions[-1].parts and questions[-1].column == sec.column:
                        questions[-1].gap_score = min(questions[-1].gap_score, current_q.gap_score)
                questions.append(current_q)
                current = []
            current.append(row)
        if current:
            _flush(current, current_q, header_rows)
    header = _span(header_rows) if header_rows else None
    return [q for q in questions if q.parts], header, footer


def _flush(rows: list[_Row], question: Question | None, header_rows: list[_Row]) -> None:
    if question is None:
        header_rows.extend(rows)
    else:
        question.parts.append(_span(rows))


def segment(
    gray: Gray,
    *,
    read_numbers: bool = True,
    tesseract_cmd: str | None = None,
    max_regions: int = MAX_REGIONS,
    progress: Callable[[str, int], None] | None = None,
) -> Layout:
    """Find the questions on one greyscale page (see the module doc)."""
    import numpy as np

    height, width = gray.shape
    ink = ink_mask(gray)
    notes: list[str] = []
    if not ink.any():
        return Layout(gray, width, height, 0.0, np.eye(2, 3), 0.0, 0, [], None, None, False, False, ["blank page"])
    angle = skew_angle(ink)
    page, matrix = _deskew(gray, angle)
    if page is not gray:
        ink = ink_mask(page)
    if progress:
        progress("layout", 30)
    unit = text_unit(ink)
    segs = _segments(ink, unit)
    gutters = _gutters(segs, unit)
    sections = _sections(segs, gutters, unit)
    _assign(segs, sections, unit)
    rows = [r for sec in sections for r in sec.rows]
    for row in rows:
        _first_token(ink, row, unit)
    line_gap = _line_gap(sections, unit)
    numbers_read = False
    if read_numbers:
        lefts = {id(sec): _column_left(sec.rows, unit) for sec in sections if sec.rows}
        candidates = [
            r
            for sec in sections
            for r in sec.rows
            if r.token is not None
            and r.x0 <= lefts[id(sec)] + 0.8 * unit
            and r.token[2] - r.token[0] <= 3.5 * unit
            and r.token[3] - r.token[1] <= 1.6 * unit
        ]
        if progress:
            progress("numbers", 50)
        numbers_read = _read_tokens(page, candidates, unit, tesseract_cmd)
        if not numbers_read:
            notes.append("Tesseract is not available; question numbers were not read")
    _starts(sections, unit, line_gap)
    questions, header, footer = _build(sections, unit, line_gap, page.shape[0])
    truncated = len(questions) > max_regions
    if truncated:
        questions = questions[:max_regions]
        notes.append(f"more than {max_regions} regions; only the first {max_regions} are returned")
    pad = max(2, round(unit * 0.3))
    ph, pw = page.shape
    for q in questions:
        q.parts = [
            (max(0, x0 - pad), max(0, y0 - pad), min(pw, x1 + pad), min(ph, y1 + pad)) for x0, y0, x1, y1 in q.parts
        ]
    return Layout(
        page=page,
        width=width,
        height=height,
        angle=angle,
        matrix=matrix,
        unit=unit,
        columns=len(gutters) + 1,
        questions=questions,
        header=header,
        footer=footer,
        numbers_read=numbers_read,
        truncated=truncated,
        notes=notes,
    )


def confidence(layout: Layout) -> float:
    """How cleanly the page came apart: the cues found and the gaps between questions."""
    if not layout.questions:
        return 0.0
    scores = [0.6 * CUE_WEIGHT[q.cue] + 0.4 * q.gap_score for q in layout.questions]
    value = sum(scores) / len(scores)
    numbers = [q.number for q in layout.questions if q.number is not None]
    if numbers and any(b <= a for a, b in itertools.pairwise(numbers)):
        value *= 0.8  # numbers read out of order: a region is probably split or merged
    if layout.truncated:
        value *= 0.5
    return round(value, 4)
