"""The sheet template: the project's JSON format, its typed model and its validation.

A template describes one printed sheet in pixels at a reference DPI. Everything the
reader needs - marker centres, bubble centres, the bubble radius - is derived here, so
the renderer and the reader cannot disagree about where a bubble is. See docs/omr.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from workers.omr.errors import TEMPLATE_INVALID, OmrError

FORMAT: Final = "academy-omr-template/1"
TEMPLATES_DIR: Final = Path(__file__).with_name("templates")
DEFAULT_TEMPLATE: Final = TEMPLATES_DIR / "default_40q5c.json"
ID_VALUES: Final = tuple(str(d) for d in range(10))
STUDENT_ID_LABEL: Final = "student_id"

Point = tuple[float, float]


class TemplateError(OmrError):
    """The template itself is malformed (code ``TEMPLATE_INVALID``)."""

    def __init__(self, message: str) -> None:
        super().__init__(TEMPLATE_INVALID, message)


#: bubble shapes a template can name ("ellipse" covers circles: width == height).
BUBBLE_SHAPES: Final = ("ellipse", "rectangle")
#: how a sheet is found in a picture; workers/omr/aligners.py maps each kind to its code.
#: "markers": four corner markers (solid squares with a hollow top-left one, or four
#: identical markers, drawn or given as a picture); "page": the page's edges; "reference":
#: a picture of the blank sheet; "timing": a track of timing marks; "none": the picture
#: is the page already.
ALIGNMENT_KINDS: Final = ("markers", "page", "reference", "timing", "none")


@dataclass(frozen=True)
class Field:
    """One row of bubbles that yields one answer: a question, or one student-ID digit."""

    label: str
    values: tuple[str, ...]
    centres: tuple[Point, ...]
    #: bubble width and height in template pixels; None: a circle of Template.bubble_radius.
    size: tuple[float, float] | None = None
    #: "ellipse" (circles included) or "rectangle".
    shape: str = "ellipse"
    #: the block the field was laid out in: the fields of one block are printed as one grid,
    #: and the reader finds each block's grid on the sheet as a whole (reader.py).
    block: str = ""

    @property
    def block_name(self) -> str:
        """The block the field is fitted and measured with: its own, or ``field:<label>``
        for a field laid out alone (a block of one)."""
        return self.block or f"field:{self.label}"


@dataclass(frozen=True)
class AlignmentSpec:
    """How the sheet is found in a picture: ``kind`` is one of ALIGNMENT_KINDS.

    ``options`` holds what that kind needs beyond the Template's own fields (a reference
    picture's bytes, a timing track's place, CropPage's morphKernel...); each aligner
    documents its keys. For "markers", ``Template.marker_image`` (a picture) or the
    template's marker size (squares) says what to look for.
    """

    kind: str = "markers"
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class MarkerImage:
    """A picture of the corner marker, for sheets whose four corners all show it.

    OMRChecker sheets (see workers/omr/omrchecker.py) print one marker image in every
    corner instead of this project's solid squares; the aligner then finds the markers by
    template matching and the orientation from the bubble layout.
    """

    #: the encoded image file (PNG/JPEG), decoded by the aligner when it needs it.
    data: bytes
    #: its size on the page, template pixels.
    width: float
    height: float


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    width: int
    height: int
    dpi: int
    marker_size: int
    #: marker square centres, clockwise from the top-left (the hollow, orienting one).
    marker_centres: tuple[Point, Point, Point, Point]
    bubble_radius: float
    #: one field per student-ID digit column, left to right (values "0".."9").
    id_fields: tuple[Field, ...]
    questions: tuple[Field, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: set for sheets whose corners show a marker picture (OMRChecker); None = solid squares.
    marker_image: MarkerImage | None = field(default=None, compare=False, repr=False)
    #: how the sheet is found in a picture (workers/omr/aligners.py).
    alignment: AlignmentSpec = field(default_factory=AlignmentSpec)

    @property
    def fields(self) -> tuple[Field, ...]:
        return self.id_fields + self.questions

    def bubble_size(self, f: Field) -> tuple[float, float]:
        """(width, height) of the field's bubbles in template pixels."""
        if f.size is not None:
            return f.size
        return (2 * self.bubble_radius, 2 * self.bubble_radius)

    @property
    def min_gap(self) -> float:
        """The smallest distance between two bubble centres (bounds the sampling rings)."""
        return _min_distance([c for f in self.fields for c in f.centres])

    def to_dict(self) -> dict[str, Any]:
        copied: dict[str, Any] = json.loads(json.dumps(self.raw))
        return copied


# --- loading -------------------------------------------------------------------------


def load_template(source: Mapping[str, Any] | str | Path | bytes) -> Template:
    """Parse a template from a dict, a JSON string/bytes, or a path to a JSON file."""
    if isinstance(source, Mapping):
        return parse_template(source)
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"cannot read template file {source}: {exc.strerror}") from exc
    else:
        text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"template is not valid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TemplateError("template must be a JSON object")
    return parse_template(data)


def default_template() -> Template:
    return load_template(DEFAULT_TEMPLATE)


def parse_template(data: Mapping[str, Any]) -> Template:
    if not isinstance(data, Mapping):
        raise TemplateError("template must be a JSON object")
    if data.get("format") != FORMAT:
        if "format" not in data and "QBlocks" in data and "Dimensions" in data:
            # OMRChecker's own format before v1: its question types were defined in the
            # code of the fork that wrote it, so there is nothing to read them by.
            raise TemplateError(
                "this is an OMRChecker template in the format before v1 (Dimensions, QBlocks), "
                "which is not read: write it as a v1 template (pageDimensions, fieldBlocks)"
            )
        if "format" not in data and "qBlocks" in data and "dimensions" in data:
            # The same, as OMRChecker's development branch wrote it in 2021-22 (lower case).
            raise TemplateError(
                "this is an OMRChecker template in a format before v1 (dimensions, qBlocks), "
                "which is not read: write it as a v1 template (pageDimensions, fieldBlocks)"
            )
        hint = " (this looks like an OMRChecker template; import it first)" if "fieldBlocks" in data else ""
        raise TemplateError(f"format: must be {FORMAT!r}{hint}")
    name = _string(data, "name", max_len=80)
    title = _string(data, "title", max_len=80, default="")
    page = _object(data, "page")
    width = _int(page, "width", 200, 20000, "page.")
    height = _int(page, "height", 200, 20000, "page.")
    dpi = _int(page, "dpi", 50, 1200, "page.")
    marker = _object(data, "marker")
    msize = _int(marker, "size", 8, min(width, height) // 6, "marker.")
    inset = _int(marker, "inset", 0, min(width, height) // 4, "marker.")
    half = inset + msize / 2
    markers: tuple[Point, Point, Point, Point] = (
        (half, half),
        (width - half, half),
        (width - half, height - half),
        (half, height - half),
    )
    bubble = _bubble(data, None, "")
    choices = _choices(data)
    id_fields = _student_id(data, bubble)
    questions = _questions(data, choices, bubble)
    sizes = [f.size for f in id_fields + questions if f.size is not None]
    # The radius every size-blind measurement uses: the smallest half side of any bubble.
    radius = min([bubble.radius, *(min(w, h) / 2 for w, h in sizes)])
    tpl = Template(
        name,
        title,
        width,
        height,
        dpi,
        msize,
        markers,
        radius,
        id_fields,
        questions,
        dict(data),
        alignment=_alignment(data),
    )
    _check_geometry(tpl, inset)
    if tpl.alignment.kind == "timing":
        # A timing track is checked now, not on the first sheet read with it.
        from workers.omr.timing_align import parse_tracks

        parse_tracks(tpl.alignment.options, tpl)
    return tpl


@dataclass(frozen=True)
class _Bubble:
    radius: float
    size: tuple[float, float] | None
    shape: str


def _bubble(data: Mapping[str, Any], base: _Bubble | None, where: str) -> _Bubble:
    """``bubble``: {"radius": r} (a circle) or {"width": w, "height": h[, "shape": s]}.

    Inside a block or ``student_id`` it is optional and overrides the sheet's.
    """
    if base is not None and "bubble" not in data:
        return base
    spec = _object(data, "bubble")
    here = f"{where}bubble."
    shape = spec.get("shape", "ellipse")
    if shape not in BUBBLE_SHAPES:
        raise TemplateError(f"{here}shape: must be one of {', '.join(BUBBLE_SHAPES)}")
    if "width" in spec or "height" in spec:
        w = _number(spec, "width", 6, 400, here)
        h = _number(spec, "height", 6, 400, here)
        if max(w, h) > 4 * min(w, h):
            raise TemplateError(f"{here}: a bubble at most 4 times longer than wide")
        return _Bubble(min(w, h) / 2, (w, h), str(shape))
    radius = float(_number(spec, "radius", 3, 200, here))
    return _Bubble(radius, None if shape == "ellipse" else (2 * radius, 2 * radius), str(shape))


def _alignment(data: Mapping[str, Any]) -> AlignmentSpec:
    spec = data.get("alignment")
    if spec is None:
        return AlignmentSpec()
    if not isinstance(spec, Mapping):
        raise TemplateError("alignment: must be an object")
    kind = spec.get("kind", "markers")
    if kind not in ALIGNMENT_KINDS:
        raise TemplateError(f"alignment.kind: must be one of {', '.join(ALIGNMENT_KINDS)}")
    return AlignmentSpec(str(kind), {k: v for k, v in spec.items() if k != "kind"})


def _choices(data: Mapping[str, Any]) -> tuple[str, ...]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not 2 <= len(choices) <= 10:
        raise TemplateError("choices: must be a list of 2 to 10 strings")
    if not all(isinstance(c, str) and 0 < len(c) <= 8 for c in choices) or len(set(choices)) != len(choices):
        raise TemplateError("choices: must be distinct non-empty strings of at most 8 characters")
    return tuple(choices)


def _student_id(data: Mapping[str, Any], bubble: _Bubble) -> tuple[Field, ...]:
    if data.get("student_id") is None:
        return ()
    sid = _object(data, "student_id")
    own = _bubble(sid, bubble, "student_id.")
    digits = _int(sid, "digits", 1, 12, "student_id.")
    x0, y0 = _point(sid, "origin", "student_id.")
    cgap = _number(sid, "column_gap", 1, 1000, "student_id.")
    rgap = _number(sid, "row_gap", 1, 1000, "student_id.")
    return tuple(
        Field(
            f"{STUDENT_ID_LABEL}[{i}]",
            ID_VALUES,
            tuple((x0 + i * cgap, y0 + d * rgap) for d in range(10)),
            own.size,
            own.shape,
            STUDENT_ID_LABEL,
        )
        for i in range(digits)
    )


def _questions(data: Mapping[str, Any], choices: tuple[str, ...], bubble: _Bubble) -> tuple[Field, ...]:
    blocks = data.get("question_blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 40:
        raise TemplateError("question_blocks: must be a list of 1 to 40 blocks")
    out: list[Field] = []
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"question_blocks[{i}]."
        if not isinstance(block, Mapping):
            raise TemplateError(f"{where[:-1]}: must be an object")
        first = _int(block, "first", 1, 10000, where)
        count = _int(block, "count", 1, 300, where)
        x0, y0 = _point(block, "origin", where)
        cgap = _number(block, "choice_gap", 1, 1000, where)
        rgap = _number(block, "row_gap", 1, 1000, where)
        own = _bubble(block, bubble, where)
        # "step": how far the number goes up from one row to the next (1: down the block;
        # 3: a card numbered across three blocks side by side, row by row).
        step = _int(block, "step", 1, 40, where) if "step" in block else 1
        # "direction": "down" lays each question's choices down a column (choice_gap
        # downwards) and the questions side by side (row_gap to the right).
        direction = block.get("direction", "across")
        if direction not in ("across", "down"):
            raise TemplateError(f"{where}direction: must be 'across' or 'down'")
        for q in range(count):
            label = str(first + q * step)
            if label in seen:
                raise TemplateError(f"{where}first: question {label} is numbered twice")
            seen.add(label)
            if direction == "down":
                centres = tuple((x0 + q * rgap, y0 + c * cgap) for c in range(len(choices)))
            else:
                centres = tuple((x0 + c * cgap, y0 + q * rgap) for c in range(len(choices)))
            out.append(Field(label, choices, centres, own.size, own.shape, f"questions[{i}]"))
    if len(out) > 300:
        raise TemplateError("question_blocks: at most 300 questions")
    return tuple(out)


def _check_geometry(tpl: Template, inset: int) -> None:
    r = tpl.bubble_radius
    far = inset + tpl.marker_size + r  # bubbles must clear the marker squares
    for f in tpl.fields:
        for x, y in f.centres:
            if not (r * 1.5 <= x <= tpl.width - r * 1.5 and r * 1.5 <= y <= tpl.height - r * 1.5):
                raise TemplateError(f"{f.label}: bubble at ({x:g}, {y:g}) is off the page")
            near_x = x < far or x > tpl.width - far
            near_y = y < far or y > tpl.height - far
            if near_x and near_y:
                raise TemplateError(f"{f.label}: bubble at ({x:g}, {y:g}) overlaps a corner marker")
    # Bubbles closer than 2.5 radii would overlap or leave no paper between them, and the
    # reader measures the paper just outside each bubble.
    if tpl.min_gap < 2.5 * r:
        raise TemplateError(f"bubbles are {tpl.min_gap:.1f} px apart; need at least 2.5 x radius")


def _min_distance(points: Sequence[Point]) -> float:
    # Sort by x and sweep: fine for the few hundred bubbles a sheet has.
    pts = sorted(points)
    best = math.inf
    for i, (x, y) in enumerate(pts):
        for x2, y2 in pts[i + 1 :]:
            if x2 - x >= best:
                break
            best = min(best, math.hypot(x2 - x, y2 - y))
    return best


# --- small typed getters ----------------------------------------------------------------


def _object(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise TemplateError(f"{key}: must be an object")
    return value


def _string(data: Mapping[str, Any], key: str, *, max_len: int, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or len(value) > max_len or (default is None and not value):
        raise TemplateError(f"{key}: must be a string of at most {max_len} characters")
    return value


def _number(data: Mapping[str, Any], key: str, lo: float, hi: float, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TemplateError(f"{where}{key}: must be a number")
    if not lo <= value <= hi:
        raise TemplateError(f"{where}{key}: must be between {lo:g} and {hi:g}")
    return float(value)


def _int(data: Mapping[str, Any], key: str, lo: int, hi: int, where: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TemplateError(f"{where}{key}: must be an integer")
    if not lo <= value <= hi:
        raise TemplateError(f"{where}{key}: must be between {lo} and {hi}")
    return value


def _point(data: Mapping[str, Any], key: str, where: str) -> Point:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != 2:
        raise TemplateError(f"{where}{key}: must be [x, y]")
    x = _number({"x": value[0]}, "x", -1e6, 1e6, f"{where}{key}.")
    y = _number({"y": value[1]}, "y", -1e6, 1e6, f"{where}{key}.")
    return (x, y)
