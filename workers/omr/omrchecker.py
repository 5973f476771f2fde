"""Read OMRChecker (v1, master-branch format) files with this project's reader.

Academies migrating from OMRChecker keep their ``template.json``, the marker picture it
names and ``config.json``. :func:`convert_template` turns them into a :class:`Template`:

- coordinates stay in OMRChecker's ``pageDimensions`` frame, whose corners are the four
  marker *centres*; a margin of one marker width is added around that frame so the whole
  marker lies on the page, and every point is shifted by it;
- a bubble at OMRChecker point (x, y) (the top-left of its ``bubbleDimensions`` box) is a
  circle centred in that box, radius half the box's shorter side;
- the marker picture rides along as ``Template.marker_image``, so ``align()`` searches for
  it by template matching instead of looking for solid squares (omrchecker_align.py);
- the ``customLabels`` entry that is the roll number (named like roll/student/id/reg/
  enrol) becomes the student-ID columns; the other custom labels are joined per sheet
  by :func:`join_custom_labels`, as OMRChecker joins them in its CSV.

Refused with ``TEMPLATE_INVALID``: templates without ``CropOnMarkers`` (the reader needs
the corner markers), unknown preprocessors, blocks whose bubble sizes differ by more than
25 % (the reader measures one bubble size per sheet), and anything malformed.
``evaluation.json`` is read by :func:`evaluation_load` (omrchecker_eval.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from workers.omr.template import Field, MarkerImage, Point, Template, TemplateError

#: OMRChecker's built-in field types: bubble values and the direction they run in.
FIELD_TYPES: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    "QTYPE_INT": (tuple("0123456789"), "vertical"),
    "QTYPE_INT_FROM_1": (tuple("1234567890"), "vertical"),
    "QTYPE_MCQ4": (tuple("ABCD"), "horizontal"),
    "QTYPE_MCQ5": (tuple("ABCDE"), "horizontal"),
}
#: OMRChecker's defaults for config.json's dimensions.
DEFAULT_PROCESSING: Final = (666, 820)
#: preprocessors that only clean the image; this reader normalises by itself.
IGNORED_PREPROCESSORS: Final = frozenset({"CropPage", "FeatureBasedAlignment", "Levels", "GaussianBlur", "MedianBlur"})
MAX_FIELDS: Final = 400
MAX_SIZE_SPREAD: Final = 1.25
A4_LONG_INCHES: Final = 11.69
_RANGE = re.compile(r"^(.*?\D)(\d+)\.{2,3}(\d+)$")
_ROLL_NAME = re.compile(r"roll|student|regist|enrol|(^|[^a-z])id($|[^a-z])")


@dataclass(frozen=True)
class OmrCheckerTemplate:
    template: Template
    #: custom labels other than the roll number: output column -> member field labels.
    custom_labels: Mapping[str, tuple[str, ...]]
    #: the custom label read as the student ID, if any.
    roll_label: str | None


def is_omrchecker_template(data: object) -> bool:
    """True for an OMRChecker v1 template.json (and never for this project's format)."""
    return isinstance(data, Mapping) and "format" not in data and "fieldBlocks" in data and "pageDimensions" in data


def load_omrchecker_template(path: str | Path, *, student_id_label: str | None = None) -> OmrCheckerTemplate:
    """Load template.json with the marker picture it names and the config.json that applies."""
    path = Path(path)
    data = read_json(path, "template")
    if not is_omrchecker_template(data):
        raise TemplateError(f"{path} is not an OMRChecker template (pageDimensions and fieldBlocks are required)")
    marker_name = _marker_options(data).get("relativePath")
    if not isinstance(marker_name, str) or not marker_name:
        raise TemplateError("CropOnMarkers.options.relativePath: must name the marker image")
    marker_path = path.parent / marker_name
    try:
        marker = marker_path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"cannot read the marker image {marker_path}: {exc.strerror}") from exc
    name = f"omrchecker:{path.parent.name or 'template'}"[:80]
    return convert_template(
        data, marker=marker, config=find_config(path.parent), name=name, student_id_label=student_id_label
    )


def find_config(folder: Path, levels: int = 3) -> Mapping[str, Any]:
    """The config.json nearest to the template: its folder first, then its parents."""
    for place in [folder, *folder.resolve().parents][: levels + 1]:
        candidate = place / "config.json"
        if candidate.is_file():
            data = read_json(candidate, "config")
            # Only OMRChecker's own config counts, not another tool's config.json up the tree.
            if any(k in data for k in ("dimensions", "threshold_params", "outputs", "alignment_params")):
                return data
    return {}


def convert_template(
    data: Mapping[str, Any],
    *,
    marker: bytes,
    config: Mapping[str, Any] | None = None,
    name: str = "omrchecker",
    student_id_label: str | None = None,
) -> OmrCheckerTemplate:
    """An OMRChecker template dict (+ marker image bytes, config.json dict) as a Template."""
    if not is_omrchecker_template(data):
        raise TemplateError("not an OMRChecker template: pageDimensions and fieldBlocks are required")
    page_w, page_h = _pair(data, "pageDimensions", 50, 20000)
    default_box = _pair(data, "bubbleDimensions", 2, 500)
    marker_w, marker_h = _marker_size(data, marker, config or {}, page_w)
    margin = max(marker_w, marker_h)
    fields = _fields(data, default_box, (page_w, page_h), margin)
    radius = _radius(data, default_box)
    roll_label, roll, custom = _custom_labels(data, [f.label for f in fields], student_id_label)
    by_label = {f.label: f for f in fields}
    id_fields = tuple(by_label[label] for label in roll)
    in_roll = set(roll)
    questions = tuple(f for f in fields if f.label not in in_roll)
    width, height = round(page_w + 2 * margin), round(page_h + 2 * margin)
    corners: tuple[Point, Point, Point, Point] = (
        (margin, margin),
        (margin + page_w, margin),
        (margin + page_w, margin + page_h),
        (margin, margin + page_h),
    )
    # pageDimensions carry no DPI. Taking the page as A4's long side only matters for the
    # reader's too-low-resolution check and the overlay's size.
    dpi = max(50, min(1200, round(max(width, height) / A4_LONG_INCHES)))
    tpl = Template(
        name,
        "",
        width,
        height,
        dpi,
        round(max(marker_w, marker_h)),
        corners,
        radius,
        id_fields,
        questions,
        dict(data),
        MarkerImage(marker, marker_w, marker_h),
    )
    _check_geometry(tpl, marker_w, marker_h)
    return OmrCheckerTemplate(tpl, custom, roll_label)


def join_custom_labels(entry: Mapping[str, Any], sheet: OmrCheckerTemplate) -> dict[str, Any]:
    """A reading's ``to_dict()`` with each custom label's fields joined into one column.

    As in OMRChecker's CSV: "q5" from q5_1 and q5_2 reads "12". A member with several
    marks, or a partly blank label, is sent to review; an all-blank label reads ``[]``.
    """
    answers: Mapping[str, list[str]] = entry["answers"]
    confidence: Mapping[str, float] = entry["confidence"]
    owner = {m: label for label, members in sheet.custom_labels.items() for m in members}
    out_answers: dict[str, list[str]] = {}
    out_conf: dict[str, float] = {}
    review = [r for r in entry["review"] if r not in owner]
    for label, values in answers.items():
        column = owner.get(label)
        if column is None:
            out_answers[label], out_conf[label] = values, confidence[label]
            continue
        if column in out_answers:
            continue
        members = sheet.custom_labels[column]
        parts = [answers.get(m, []) for m in members]
        out_conf[column] = min(confidence.get(m, 1.0) for m in members)
        doubtful = any(m in entry["review"] for m in members) or any(len(p) > 1 for p in parts)
        if any(len(p) > 1 for p in parts) or not any(parts):
            out_answers[column] = []
        else:
            out_answers[column] = ["".join(p[0] if p else "" for p in parts)]
            doubtful = doubtful or not all(parts)
        if doubtful:
            review.append(column)
    return {**entry, "answers": out_answers, "confidence": out_conf, "review": review}


def evaluation_load(source: str | Path | Mapping[str, Any], *, base_dir: str | Path | None = None) -> dict[str, Any]:
    """OMRChecker's evaluation.json as this project's answer key (see omrchecker_eval.py)."""
    from workers.omr.omrchecker_eval import load_evaluation

    return load_evaluation(source, base_dir=base_dir)


def expand_labels(items: object, where: str) -> list[str]:
    """OMRChecker field labels with ranges: ["q1..3", "x"] -> ["q1", "q2", "q3", "x"]."""
    if not isinstance(items, list) or not items:
        raise TemplateError(f"{where}: must be a non-empty list of labels")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item) > 60:
            raise TemplateError(f"{where}: {item!r} is not a label")
        match = _RANGE.match(item)
        if match is None:
            if ".." in item:
                raise TemplateError(f"{where}: {item!r} is not a range like 'q1..10'")
            out.append(item)
            continue
        prefix, first, last = match.group(1), int(match.group(2)), int(match.group(3))
        if not first < last or last - first > 1000:
            raise TemplateError(f"{where}: range {item!r} must go from a lower to a higher number")
        out.extend(f"{prefix}{n}" for n in range(first, last + 1))
    if len(set(out)) != len(out):
        raise TemplateError(f"{where}: a label is listed twice")
    return out


# --- pieces of the conversion --------------------------------------------------------------


def read_json(path: Path, what: str) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read {what} file {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{what} file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TemplateError(f"{what} file {path} must hold a JSON object")
    return data


def _number(value: object, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TemplateError(f"{where}: must be a number")
    if not lo <= value <= hi:
        raise TemplateError(f"{where}: must be between {lo:g} and {hi:g}")
    return float(value)


def _pair(data: Mapping[str, Any], key: str, lo: float, hi: float, where: str = "") -> tuple[float, float]:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != 2:
        raise TemplateError(f"{where}{key}: must be [width, height]")
    return _number(value[0], f"{where}{key}[0]", lo, hi), _number(value[1], f"{where}{key}[1]", lo, hi)


def _marker_options(data: Mapping[str, Any]) -> Mapping[str, Any]:
    pre = data.get("preProcessors", [])
    if not isinstance(pre, list):
        raise TemplateError("preProcessors: must be a list")
    found: Mapping[str, Any] | None = None
    for i, step in enumerate(pre):
        name = step.get("name") if isinstance(step, Mapping) else None
        if name == "CropOnMarkers":
            options = step.get("options", {})
            if found is not None or not isinstance(options, Mapping):
                raise TemplateError("preProcessors: exactly one CropOnMarkers with an options object is supported")
            found = options
        elif name not in IGNORED_PREPROCESSORS:
            raise TemplateError(f"preProcessors[{i}]: {name!r} is not supported")
    if found is None:
        raise TemplateError(
            "preProcessors: CropOnMarkers is required - sheets without four corner markers "
            "(CropPage only, or no preprocessor) are not supported"
        )
    return found


def _marker_size(
    data: Mapping[str, Any], marker: bytes, config: Mapping[str, Any], page_w: float
) -> tuple[float, float]:
    """The marker's size in the pageDimensions frame (an estimate the aligner searches around).

    OMRChecker scales the marker to processing_width / sheetToMarkerWidthRatio (or keeps its
    pixel size) in the processing image. Assuming the markers sit near the sheet's edges, the
    centre-to-centre frame is the processing width less one marker width, and that frame is
    stretched to pageDimensions' width.
    """
    import cv2
    import numpy as np

    options = _marker_options(data)
    img = cv2.imdecode(np.frombuffer(marker, np.uint8), cv2.IMREAD_GRAYSCALE) if marker else None
    if img is None or min(img.shape) < 4:
        raise TemplateError("the marker image cannot be decoded (PNG or JPEG, at least 4 px)")
    dims = config.get("dimensions", {})
    dims = dims if isinstance(dims, Mapping) else {}
    processing = _number(
        dims.get("processing_width", DEFAULT_PROCESSING[0]), "config dimensions.processing_width", 100, 10000
    )
    ratio = options.get("sheetToMarkerWidthRatio")
    native_w = float(img.shape[1])
    in_processing = (
        processing / _number(ratio, "CropOnMarkers.options.sheetToMarkerWidthRatio", 2, 200)
        if ratio is not None
        else native_w
    )
    if in_processing >= processing / 2:
        raise TemplateError("the marker is as wide as half the sheet; check sheetToMarkerWidthRatio")
    width = in_processing * page_w / (processing - in_processing)
    return width, width * img.shape[0] / native_w


def _fields(
    data: Mapping[str, Any], default_box: tuple[float, float], page: tuple[float, float], margin: float
) -> list[Field]:
    blocks = data.get("fieldBlocks")
    if not isinstance(blocks, Mapping) or not blocks:
        raise TemplateError("fieldBlocks: must be an object with at least one block")
    out: list[Field] = []
    for name, block in blocks.items():
        where = f"fieldBlocks.{name}"
        if not isinstance(block, Mapping):
            raise TemplateError(f"{where}: must be an object")
        values, direction = _values(block, where)
        box = _pair(block, "bubbleDimensions", 2, 500, f"{where}.") if "bubbleDimensions" in block else default_box
        ox, oy = _pair(block, "origin", 0, 20000, f"{where}.")
        gap = _number(block.get("bubblesGap"), f"{where}.bubblesGap", 0, 5000)
        label_gap = _number(block.get("labelsGap"), f"{where}.labelsGap", 0, 5000)
        for i, label in enumerate(expand_labels(block.get("fieldLabels"), f"{where}.fieldLabels")):
            centres: list[Point] = []
            for j in range(len(values)):
                # Bubbles run along `direction`; successive labels step across it.
                along, across = j * gap, i * label_gap
                x, y = (ox + across, oy + along) if direction == "vertical" else (ox + along, oy + across)
                if x < -0.5 or y < -0.5 or x + box[0] > page[0] + 0.5 or y + box[1] > page[1] + 0.5:
                    raise TemplateError(f"{where}: bubble {values[j]!r} of {label!r} lies outside pageDimensions")
                centres.append((margin + x + box[0] / 2, margin + y + box[1] / 2))
            out.append(Field(label, values, tuple(centres)))
    labels = [f.label for f in out]
    if len(set(labels)) != len(labels):
        twice = sorted({label for label in labels if labels.count(label) > 1})
        raise TemplateError(f"fieldBlocks: labels used in more than one place: {', '.join(twice[:5])}")
    if len(out) > MAX_FIELDS:
        raise TemplateError(f"fieldBlocks: at most {MAX_FIELDS} fields")
    return out


def _values(block: Mapping[str, Any], where: str) -> tuple[tuple[str, ...], str]:
    kind = block.get("fieldType")
    if kind is not None:
        base = kind[:-4] if isinstance(kind, str) and kind.endswith("_RTL") else kind
        if not isinstance(base, str) or base not in FIELD_TYPES:
            raise TemplateError(f"{where}.fieldType: {kind!r} is not one of {', '.join(FIELD_TYPES)} (or _RTL)")
        values, direction = FIELD_TYPES[base]
        # _RTL: the same bubbles printed the other way round (right to left).
        return (values[::-1] if base != kind else values), direction
    given = block.get("bubbleValues")
    way = block.get("direction", "horizontal")
    if not isinstance(given, list) or not given or not all(isinstance(v, str) and v for v in given):
        raise TemplateError(f"{where}: needs a fieldType or a list of bubbleValues")
    if len(set(given)) != len(given) or len(given) > 26:
        raise TemplateError(f"{where}.bubbleValues: at most 26 distinct values")
    if way not in ("horizontal", "vertical"):
        raise TemplateError(f"{where}.direction: must be 'horizontal' or 'vertical'")
    return tuple(given), str(way)


def _radius(data: Mapping[str, Any], default_box: tuple[float, float]) -> float:
    """One radius for the sheet: the smallest bubble's, so the fill disc is inside every bubble."""
    blocks: Mapping[str, Any] = data["fieldBlocks"]
    sizes = [
        min(_pair(b, "bubbleDimensions", 2, 500) if "bubbleDimensions" in b else default_box) for b in blocks.values()
    ]
    if max(sizes) > MAX_SIZE_SPREAD * min(sizes):
        raise TemplateError(
            f"bubbleDimensions: blocks with bubbles from {min(sizes):g} to {max(sizes):g} px are not supported; "
            "the reader uses one bubble size per sheet (within 25 %)"
        )
    return min(sizes) / 2


def _custom_labels(
    data: Mapping[str, Any], labels: Sequence[str], chosen: str | None
) -> tuple[str | None, tuple[str, ...], dict[str, tuple[str, ...]]]:
    raw = data.get("customLabels", {})
    if not isinstance(raw, Mapping):
        raise TemplateError("customLabels: must be an object")
    known = set(labels)
    used: set[str] = set()
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in raw.items():
        expanded = expand_labels(members, f"customLabels.{name}")
        missing = [m for m in expanded if m not in known]
        if missing:
            raise TemplateError(f"customLabels.{name}: no field is labelled {missing[0]!r}")
        if used & set(expanded) or name in known:
            raise TemplateError(f"customLabels.{name}: overlaps a field label or another custom label")
        used |= set(expanded)
        groups[str(name)] = tuple(expanded)
    if chosen is not None and chosen not in groups:
        raise TemplateError(f"customLabels: there is no {chosen!r} to read as the student ID")
    roll = chosen or next((n for n in groups if _ROLL_NAME.search(n.lower())), None)
    members = groups.pop(roll) if roll is not None else ()
    if "outputColumns" in data:
        expand_labels(data["outputColumns"], "outputColumns")  # validated only: the output keeps field order
    if not isinstance(data.get("emptyValue", ""), str):
        raise TemplateError("emptyValue: must be a string")  # a blank reads [] here anyway
    return roll, members, groups


def _check_geometry(tpl: Template, marker_w: float, marker_h: float) -> None:
    r = tpl.bubble_radius
    for f in tpl.fields:
        for x, y in f.centres:
            for mx, my in tpl.marker_centres:
                if abs(x - mx) < marker_w / 2 + r and abs(y - my) < marker_h / 2 + r:
                    raise TemplateError(f"{f.label}: bubble at ({x:g}, {y:g}) overlaps a corner marker")
    # Touching bubbles leave no paper between them to measure; OMRChecker itself allows it.
    if len([c for f in tpl.fields for c in f.centres]) > 1 and tpl.min_gap < 2 * r:
        raise TemplateError(f"bubbles are {tpl.min_gap:.1f} px apart, closer than their size ({2 * r:g} px)")


# --- stored on the platform -------------------------------------------------------------

#: an exam's sheet template imported from OMRChecker, kept whole so it can be re-read:
#: ``{"format": STORED_FORMAT, "template": {...}, "marker_png": "<base64>", "config": {...}}``
STORED_FORMAT: Final = "omrchecker-v1"


def stored_template_load(raw: Mapping[str, Any]) -> Template:
    """The reader's Template for an imported OMRChecker template (see STORED_FORMAT)."""
    import base64
    import binascii

    template, marker, config = raw.get("template"), raw.get("marker_png"), raw.get("config") or {}
    if not isinstance(template, Mapping) or not isinstance(marker, str) or not isinstance(config, Mapping):
        raise TemplateError("an imported OMRChecker template needs template, marker_png (base64) and config")
    try:
        picture = base64.b64decode(marker, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TemplateError(f"marker_png is not base64: {exc}") from exc
    return convert_template(template, marker=picture, config=config).template
