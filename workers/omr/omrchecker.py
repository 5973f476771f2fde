"""Read OMRChecker files with this project's reader: v1 (the master-branch format), and v2
(its dev branch) rewritten as v1 first (workers/omr/omrchecker_v2.py).

Academies migrating from OMRChecker keep their ``template.json``, the pictures it names
(marker, reference) and ``config.json``. :func:`convert_template` turns them into a
:class:`Template` whose alignment is the one the preprocessors ask for:

- ``CropOnMarkers``: kind "markers". OMRChecker's ``pageDimensions`` frame has the four
  marker *centres* as its corners; a margin of one marker width is added around it so the
  whole marker lies on the page, and every point is shifted by it. The marker picture rides
  along as ``Template.marker_image``; its options (``relativePath``,
  ``sheetToMarkerWidthRatio``, ``min_matching_threshold``, ``max_matching_variation``,
  ``marker_rescale_range``, ``marker_rescale_steps``, ``apply_erode_subtract``) are passed
  to the marker search in ``Template.alignment.options``;
- ``FeatureBasedAlignment``: kind "reference"; the reference picture (bytes) is the page,
  with ``maxFeatures``, ``goodMatchPercent`` and ``2d`` (workers/omr/feature_align.py);
- ``CropPage``: kind "page", the paper's edges are the frame, with ``morphKernel``
  (workers/omr/page_align.py);
- none of these: kind "none", the picture itself is the frame.

``Levels``, ``GaussianBlur`` and ``MedianBlur`` become :class:`~workers.omr.filters.Filter`
records in ``alignment.options["filters"]``, with the ``processing_width`` they were meant
for (workers/omr/filters.py).

A bubble at OMRChecker point (x, y) is the top-left of its box (the block's own
``bubbleDimensions`` or the template's); the field keeps that box as its bubble size,
centred in it. The ``customLabels`` entry that is the roll number (named like
roll/student/id/reg/enrol) becomes the student-ID columns; the other custom labels are
joined per sheet by :func:`join_custom_labels`, as OMRChecker joins them in its CSV (a
blank member written as its block's ``emptyValue`` when that is set). ``outputColumns``
orders the joined columns. ``config.json``'s ``dimensions`` give the processing size the
marker and filter settings are measured in.

Refused with ``TEMPLATE_INVALID``, naming the setting: unknown preprocessors, a picture
that is named but missing or undecodable, bubbles outside ``pageDimensions`` or
overlapping one another or a corner marker, and anything malformed.
``evaluation.json`` is read by :func:`evaluation_load` (omrchecker_eval.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from workers.omr.align import MIN_DPI
from workers.omr.filters import NAMES as FILTER_NAMES
from workers.omr.filters import Filter, parse_filter
from workers.omr.omrchecker_v2 import is_v2_template, v1_from_v2
from workers.omr.template import AlignmentSpec, Field, MarkerImage, Point, Template, TemplateError

#: OMRChecker's built-in field types: bubble values and the direction they run in.
FIELD_TYPES: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    "QTYPE_INT": (tuple("0123456789"), "vertical"),
    "QTYPE_INT_FROM_1": (tuple("1234567890"), "vertical"),
    "QTYPE_MCQ4": (tuple("ABCD"), "horizontal"),
    "QTYPE_MCQ5": (tuple("ABCDE"), "horizontal"),
}
#: OMRChecker's defaults for config.json's dimensions.
DEFAULT_PROCESSING: Final = (666, 820)
#: the preprocessors that find the sheet, by the alignment kind they become; when several
#: are given the most specific wins (markers, then a reference picture, then page edges).
ALIGNING_PREPROCESSORS: Final = {"CropOnMarkers": "markers", "FeatureBasedAlignment": "reference", "CropPage": "page"}
#: CropOnMarkers options passed to the marker search, with the type each must have.
MARKER_OPTIONS: Final[Mapping[str, str]] = {
    "relativePath": "string",
    "sheetToMarkerWidthRatio": "number",
    "min_matching_threshold": "number",
    "max_matching_variation": "number",
    "marker_rescale_range": "pair",
    "marker_rescale_steps": "number",
    "apply_erode_subtract": "boolean",
}
DEFAULT_MARKER: Final = "omr_marker.jpg"
MAX_FIELDS: Final = 400
#: a bubble is read no larger than this share of its gap to the next (``_fields``): boxes
#: up to it were always read as drawn ...
BOX_SHARE_OF_GAP: Final = 1 / 0.9
#: ... and a gap under this share of the box is refused: boxes overlapping by half.
MIN_GAP_SHARE: Final = 0.5
#: the smallest bubble half side, in image pixels, a sheet is read at (see convert_template).
MIN_BUBBLE_RADIUS_PX: Final = 2.5
_RANGE = re.compile(r"^(.*?\D)(\d+)\.{2,3}(\d+)$")
_ROLL_NAME = re.compile(r"roll|student|regist|enrol|(^|[^a-z])id($|[^a-z])")


@dataclass(frozen=True)
class OmrCheckerTemplate:
    template: Template
    #: custom labels other than the roll number: output column -> member field labels.
    custom_labels: Mapping[str, tuple[str, ...]]
    #: the custom label read as the student ID, if any.
    roll_label: str | None
    #: field label -> what OMRChecker writes for it when blank (its block's or the
    #: template's ``emptyValue``); only non-empty ones are listed.
    empty_values: Mapping[str, str] = field(default_factory=dict)
    #: ``outputColumns``: the order of the output columns (custom labels or field labels).
    output_columns: tuple[str, ...] = ()
    #: the files its marker or reference picture was read from. OMRChecker keeps them in
    #: the folder of sheets, so a reader walking that folder must not take them for sheets.
    pictures: tuple[Path, ...] = ()


@dataclass(frozen=True)
class _Steps:
    """The preprocessors of a template: the aligning one and the filters."""

    kind: str
    options: Mapping[str, Any]
    filters: tuple[Filter, ...]


def is_omrchecker_template(data: object) -> bool:
    """True for an OMRChecker template.json, v1 or v2 (and never for this project's format)."""
    return (
        isinstance(data, Mapping) and "format" not in data and "fieldBlocks" in data and "pageDimensions" in data
    ) or is_v2_template(data)


def load_omrchecker_template(path: str | Path, *, student_id_label: str | None = None) -> OmrCheckerTemplate:
    """Load template.json with the pictures it names and the config.json that applies."""
    path = Path(path)
    data = read_json(path, "template")
    if not is_omrchecker_template(data):
        raise TemplateError(
            f"{path} is not an OMRChecker template "
            "(fieldBlocks and pageDimensions, or v2's templateDimensions, are required)"
        )
    config = find_config(path.parent)
    data, config = _as_v1(data, config)
    steps = _steps(data)
    marker = reference = None
    pictures: tuple[Path, ...] = ()
    if steps.kind == "markers":
        name = steps.options.get("relativePath", DEFAULT_MARKER)
        marker = _read_picture(path.parent, name, "CropOnMarkers.options.relativePath", "marker image")
        pictures = (path.parent / name,)
    elif steps.kind == "reference":
        name = steps.options.get("referencePath")
        reference = _read_picture(path.parent, name, "FeatureBasedAlignment.options.reference", "reference picture")
        pictures = (path.parent / str(name),)
    label = f"omrchecker:{path.parent.name or 'template'}"[:80]
    sheet = convert_template(
        data,
        marker=marker,
        reference=reference,
        config=config,
        name=label,
        student_id_label=student_id_label,
    )
    return replace(sheet, pictures=pictures)


def _as_v1(data: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """A v2 template as the v1 template it amounts to, with its processing size in place of
    config.json's (it is the template's own in v2); a v1 template as it is."""
    if not is_v2_template(data):
        return data, config
    converted, dimensions = v1_from_v2(data)
    return converted, {**config, **dimensions}


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
    marker: bytes | None = None,
    reference: bytes | None = None,
    config: Mapping[str, Any] | None = None,
    name: str = "omrchecker",
    student_id_label: str | None = None,
) -> OmrCheckerTemplate:
    """An OMRChecker template dict (+ the pictures it names, config.json dict) as a Template.

    ``marker`` is needed when the template uses CropOnMarkers, ``reference`` when it uses
    FeatureBasedAlignment (the bytes of the files they name). A v2 template is read as the
    v1 template it amounts to (workers/omr/omrchecker_v2.py).
    """
    if not is_omrchecker_template(data):
        raise TemplateError("not an OMRChecker template: pageDimensions and fieldBlocks are required")
    config = config or {}
    data, config = _as_v1(data, config)
    processing = _processing(config)
    steps = _steps(data)
    page_w, page_h = _pair(data, "pageDimensions", 50, 20000)
    default_box = _pair(data, "bubbleDimensions", 2, 500)
    options: dict[str, Any] = dict(steps.options)
    options["filters"] = steps.filters
    options["processing_width"], options["processing_height"] = processing
    marker_image: MarkerImage | None = None
    if steps.kind == "markers":
        if marker is None:
            raise TemplateError("CropOnMarkers.options.relativePath: the marker image is needed")
        marker_w, marker_h = _marker_size(steps.options, marker, processing[0], page_w)
        margin = max(marker_w, marker_h)
        marker_image = MarkerImage(marker, marker_w, marker_h)
    else:
        if steps.kind == "reference":
            if reference is None:
                raise TemplateError("FeatureBasedAlignment.options.reference: the reference picture is needed")
            _check_picture(reference, "FeatureBasedAlignment.options.reference")
            options["reference"] = reference
        marker_w = marker_h = margin = 0.0
    fields, empty = _fields(data, default_box, (page_w, page_h), margin)
    roll_label, roll, custom = _custom_labels(data, [f.label for f in fields], student_id_label)
    output_columns = _output_columns(data, [f.label for f in fields], custom, roll_label)
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
    # The smallest half side of any bubble: what size-blind measurements use.
    radius = min(min(f.size) / 2 if f.size else min(default_box) / 2 for f in fields)
    # pageDimensions carry no DPI, and the page's size says little about how big its
    # bubbles are (a 2550 px page may have 32 px bubbles). What the reader's resolution
    # check (align.MIN_DPI) protects is a bubble's size in pixels, so the DPI is set for
    # that check to mean MIN_BUBBLE_RADIUS_PX image pixels across the smallest bubble's
    # half side, as OMRChecker reads such sheets.
    dpi = max(50, min(1200, round(MIN_DPI * radius / MIN_BUBBLE_RADIUS_PX)))
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
        marker_image,
        alignment=AlignmentSpec(steps.kind, options),
    )
    _check_geometry(tpl, marker_w, marker_h)
    return OmrCheckerTemplate(tpl, custom, roll_label, empty, output_columns)


def join_custom_labels(entry: Mapping[str, Any], sheet: OmrCheckerTemplate) -> dict[str, Any]:
    """A reading's ``to_dict()`` with each custom label's fields joined into one column.

    As in OMRChecker's CSV: "q5" from q5_1 and q5_2 reads "12". A member with several
    marks, or a partly blank label, is sent to review; an all-blank label reads ``[]``.
    A blank member whose block sets an ``emptyValue`` is written as that value ("0no22"),
    as OMRChecker writes it. With ``outputColumns`` the columns it lists come first, in
    its order; the others follow, so nothing read is dropped.
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
        parts = [answers.get(m, []) or _blank(sheet, m) for m in members]
        out_conf[column] = min(confidence.get(m, 1.0) for m in members)
        doubtful = any(m in entry["review"] for m in members) or any(len(p) > 1 for p in parts)
        if any(len(p) > 1 for p in parts) or not any(answers.get(m) for m in members):
            out_answers[column] = []
        else:
            out_answers[column] = ["".join(p[0] if p else "" for p in parts)]
            doubtful = doubtful or not all(answers.get(m) for m in members)
        if doubtful:
            review.append(column)
    if sheet.output_columns:
        first = [c for c in sheet.output_columns if c in out_answers]
        order = first + [c for c in out_answers if c not in set(first)]
        out_answers = {c: out_answers[c] for c in order}
        out_conf = {c: out_conf[c] for c in order}
    return {**entry, "answers": out_answers, "confidence": out_conf, "review": review}


def _blank(sheet: OmrCheckerTemplate, label: str) -> list[str]:
    value = sheet.empty_values.get(label)
    return [value] if value else []


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
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
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


def _processing(config: Mapping[str, Any]) -> tuple[int, int]:
    dims = config.get("dimensions", {})
    if not isinstance(dims, Mapping):
        raise TemplateError("config dimensions: must be an object")
    width = _number(
        dims.get("processing_width", DEFAULT_PROCESSING[0]), "config dimensions.processing_width", 100, 10000
    )
    height = _number(
        dims.get("processing_height", DEFAULT_PROCESSING[1]), "config dimensions.processing_height", 100, 10000
    )
    return round(width), round(height)


def _steps(data: Mapping[str, Any]) -> _Steps:
    """The preprocessors: which one finds the sheet (and its options), and the filters."""
    pre = data.get("preProcessors", [])
    if not isinstance(pre, list):
        raise TemplateError("preProcessors: must be a list")
    found: dict[str, Mapping[str, Any]] = {}
    filters: list[Filter] = []
    for i, step in enumerate(pre):
        name = step.get("name") if isinstance(step, Mapping) else None
        where = f"preProcessors[{i}]"
        options = step.get("options", {}) if isinstance(step, Mapping) else None
        if name in ALIGNING_PREPROCESSORS:
            if name in found:
                raise TemplateError(f"{where}: {name} is given twice")
            if not isinstance(options, Mapping):
                raise TemplateError(f"{where} ({name}).options: must be an object")
            found[str(name)] = options
        elif name in FILTER_NAMES:
            filters.append(parse_filter(str(name), options, f"{where} ({name})"))
        else:
            raise TemplateError(f"{where}: {name!r} is not supported")
    page_kernel = _morph_kernel(found["CropPage"]) if "CropPage" in found else None
    if "CropOnMarkers" in found and "zones" in found["CropOnMarkers"]:
        # v2's dots and lines, already checked (workers/omr/omrchecker_v2.py): kind "zones".
        zones = dict(found["CropOnMarkers"])
        zones["layout"] = zones.pop("type")
        if page_kernel is not None:
            zones["cropPage"] = {"morphKernel": page_kernel}
        return _Steps("zones", zones, tuple(filters))
    if "CropOnMarkers" in found:
        options = _marker_passthrough(found["CropOnMarkers"])
        if page_kernel is not None:
            # OMRChecker crops to the page first and then looks for the markers in the
            # page's quadrants: the marker search may do the same (page_align.find_page).
            options["cropPage"] = {"morphKernel": page_kernel}
        return _Steps("markers", options, tuple(filters))
    if "FeatureBasedAlignment" in found:
        return _Steps("reference", _reference_options(found["FeatureBasedAlignment"]), tuple(filters))
    if page_kernel is not None:
        return _Steps("page", {"morphKernel": page_kernel}, tuple(filters))
    return _Steps("none", {}, tuple(filters))


def _morph_kernel(options: Mapping[str, Any]) -> tuple[int, int]:
    unknown = set(options) - {"morphKernel"}
    if unknown:
        raise TemplateError(f"CropPage.options.{sorted(unknown)[0]}: not one of its options")
    kernel = options.get("morphKernel", [10, 10])
    if not isinstance(kernel, list) or len(kernel) != 2:
        raise TemplateError("CropPage.options.morphKernel: must be [width, height]")
    kx = _number(kernel[0], "CropPage.options.morphKernel[0]", 1, 200)
    ky = _number(kernel[1], "CropPage.options.morphKernel[1]", 1, 200)
    return round(kx), round(ky)


def _marker_passthrough(options: Mapping[str, Any]) -> dict[str, Any]:
    """CropOnMarkers' options, checked, for the marker search (workers/omr/omrchecker_align.py)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        kind = MARKER_OPTIONS.get(key)
        where = f"CropOnMarkers.options.{key}"
        if kind is None and key == "type":
            # OMRChecker v2 and some forks choose the kind of marker here (ArUco codes,
            # dots, lines); a v1 template's markers are found by their picture.
            raise TemplateError(
                f"{where}: markers of type {value!r} are not read here; "
                "CropOnMarkers finds four corner markers by their picture (relativePath)"
            )
        if kind is None:
            raise TemplateError(f"{where}: not an option of CropOnMarkers")
        if kind == "string" and not (isinstance(value, str) and value):
            raise TemplateError(f"{where}: must name a file")
        if kind == "boolean" and not isinstance(value, bool):
            raise TemplateError(f"{where}: must be true or false")
        if kind == "number":
            value = _number(value, where, 0, 1000)
        if kind == "pair":
            if not isinstance(value, list) or len(value) != 2:
                raise TemplateError(f"{where}: must be [low, high]")
            lo, hi = _number(value[0], f"{where}[0]", 1, 1000), _number(value[1], f"{where}[1]", 1, 1000)
            if lo > hi:
                raise TemplateError(f"{where}: low must not be above high")
            value = (lo, hi)
        out[key] = value
    if "min_matching_threshold" in out and not 0 <= out["min_matching_threshold"] <= 1:
        raise TemplateError("CropOnMarkers.options.min_matching_threshold: must be between 0 and 1")
    if "sheetToMarkerWidthRatio" in out and not 2 <= out["sheetToMarkerWidthRatio"] <= 200:
        raise TemplateError("CropOnMarkers.options.sheetToMarkerWidthRatio: must be between 2 and 200")
    return out


def _reference_options(options: Mapping[str, Any]) -> dict[str, Any]:
    from workers.omr.feature_align import DEFAULT_GOOD_MATCH_PERCENT, DEFAULT_MAX_FEATURES

    name = options.get("reference")
    if not isinstance(name, str) or not name:
        raise TemplateError("FeatureBasedAlignment.options.reference: must name the reference picture")
    unknown = set(options) - {"reference", "maxFeatures", "goodMatchPercent", "2d"}
    if unknown:
        raise TemplateError(
            f"FeatureBasedAlignment.options.{sorted(unknown)[0]}: not an option of FeatureBasedAlignment"
        )
    features = _number(
        options.get("maxFeatures", DEFAULT_MAX_FEATURES), "FeatureBasedAlignment.options.maxFeatures", 10, 100000
    )
    share = _number(
        options.get("goodMatchPercent", DEFAULT_GOOD_MATCH_PERCENT),
        "FeatureBasedAlignment.options.goodMatchPercent",
        0.01,
        1,
    )
    flat = options.get("2d", False)
    if not isinstance(flat, bool):
        raise TemplateError("FeatureBasedAlignment.options.2d: must be true or false")
    return {"referencePath": name, "maxFeatures": round(features), "goodMatchPercent": share, "2d": flat}


def _read_picture(folder: Path, name: object, setting: str, what: str) -> bytes:
    if not isinstance(name, str) or not name:
        raise TemplateError(f"{setting}: must name the {what}")
    path = folder / name
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"{setting}: cannot read the {what} {path}: {exc.strerror}") from exc


def _check_picture(data: bytes, setting: str) -> tuple[int, int]:
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) if data else None
    if img is None or min(img.shape) < 4:
        raise TemplateError(f"{setting}: the picture cannot be decoded (PNG or JPEG, at least 4 px)")
    return int(img.shape[1]), int(img.shape[0])


def _marker_size(options: Mapping[str, Any], marker: bytes, processing: int, page_w: float) -> tuple[float, float]:
    """The marker's size in the pageDimensions frame (an estimate the aligner searches around).

    OMRChecker scales the marker to processing_width / sheetToMarkerWidthRatio (or keeps its
    pixel size) in the processing image. Assuming the markers sit near the sheet's edges, the
    centre-to-centre frame is the processing width less one marker width, and that frame is
    stretched to pageDimensions' width.
    """
    try:
        native_w, native_h = _check_picture(marker, "the marker image")
    except TemplateError as exc:
        raise TemplateError("the marker image cannot be decoded (PNG or JPEG, at least 4 px)") from exc
    ratio = options.get("sheetToMarkerWidthRatio")
    in_processing = processing / float(ratio) if ratio is not None else float(native_w)
    if in_processing >= processing / 2:
        raise TemplateError("the marker is as wide as half the sheet; check sheetToMarkerWidthRatio")
    width = in_processing * page_w / (processing - in_processing)
    return width, width * native_h / native_w


def _fields(
    data: Mapping[str, Any], default_box: tuple[float, float], page: tuple[float, float], margin: float
) -> tuple[list[Field], dict[str, str]]:
    blocks = data.get("fieldBlocks")
    if not isinstance(blocks, Mapping) or not blocks:
        raise TemplateError("fieldBlocks: must be an object with at least one block")
    sheet_empty = data.get("emptyValue", "")
    if not isinstance(sheet_empty, str):
        raise TemplateError("emptyValue: must be a string")
    out: list[Field] = []
    empty: dict[str, str] = {}
    for name, block in blocks.items():
        where = f"fieldBlocks.{name}"
        if not isinstance(block, Mapping):
            raise TemplateError(f"{where}: must be an object")
        values, direction = _values(block, where)
        box = _pair(block, "bubbleDimensions", 2, 500, f"{where}.") if "bubbleDimensions" in block else default_box
        ox, oy = _pair(block, "origin", 0, 20000, f"{where}.")
        gap = _number(block.get("bubblesGap"), f"{where}.bubblesGap", 0, 5000)
        label_gap = _number(block.get("labelsGap"), f"{where}.labelsGap", 0, 5000)
        block_empty = block.get("emptyValue", sheet_empty)
        if not isinstance(block_empty, str):
            raise TemplateError(f"{where}.emptyValue: must be a string")
        labels = expand_labels(block.get("fieldLabels"), f"{where}.fieldLabels")
        # Bubbles run along `direction`; successive labels step across it. OMRChecker
        # reads boxes that overlap their neighbours (a box drawn a little larger than the
        # bubble gap), and so does this reader: each bubble is centred where OMRChecker's
        # box is, its size no more than BOX_SHARE_OF_GAP of the gap (the print's own size
        # is measured on the sheet). Boxes overlapping by half or more are no row of
        # bubbles side by side.
        along_size, across_size = (box[1], box[0]) if direction == "vertical" else box
        if len(values) > 1 and gap < MIN_GAP_SHARE * along_size:
            raise TemplateError(
                f"{where}.bubblesGap: bubbles are {gap:g} px apart, less than half their size ({along_size:g} px)"
            )
        if len(labels) > 1 and label_gap < MIN_GAP_SHARE * across_size:
            raise TemplateError(
                f"{where}.labelsGap: rows are {label_gap:g} px apart, less than half their size ({across_size:g} px)"
            )
        along_read = min(along_size, BOX_SHARE_OF_GAP * gap) if len(values) > 1 else along_size
        across_read = min(across_size, BOX_SHARE_OF_GAP * label_gap) if len(labels) > 1 else across_size
        size = (across_read, along_read) if direction == "vertical" else (along_read, across_read)
        for i, label in enumerate(labels):
            centres: list[Point] = []
            for j in range(len(values)):
                along, across = j * gap, i * label_gap
                x, y = (ox + across, oy + along) if direction == "vertical" else (ox + along, oy + across)
                if x < -0.5 or y < -0.5 or x + box[0] > page[0] + 0.5 or y + box[1] > page[1] + 0.5:
                    raise TemplateError(f"{where}: bubble {values[j]!r} of {label!r} lies outside pageDimensions")
                centres.append((margin + x + box[0] / 2, margin + y + box[1] / 2))
            out.append(Field(label, values, tuple(centres), size, "ellipse", str(name)))
            if block_empty:
                empty[label] = block_empty
    labels_all = [f.label for f in out]
    if len(set(labels_all)) != len(labels_all):
        twice = sorted({label for label in labels_all if labels_all.count(label) > 1})
        raise TemplateError(f"fieldBlocks: labels used in more than one place: {', '.join(twice[:5])}")
    if len(out) > MAX_FIELDS:
        raise TemplateError(f"fieldBlocks: at most {MAX_FIELDS} fields")
    return out, empty


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
    return roll, members, groups


def _output_columns(
    data: Mapping[str, Any], labels: Sequence[str], custom: Mapping[str, tuple[str, ...]], roll: str | None
) -> tuple[str, ...]:
    if "outputColumns" not in data:
        return ()
    columns = expand_labels(data["outputColumns"], "outputColumns")
    known = set(labels) | set(custom) | ({roll} if roll else set())
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise TemplateError(f"outputColumns: {unknown[0]!r} is neither a field nor a custom label")
    return tuple(columns)


#: a bubble centred within this share of the marker's guessed size of a marker's centre,
#: along both axes, lies on the marker.
ON_MARKER: Final = 0.3


def _check_geometry(tpl: Template, marker_w: float, marker_h: float) -> None:
    """Refuse a bubble centred on a corner marker (ON_MARKER). The marker's size in the
    frame is a guess: OMRChecker finds markers printed down to 35 % of the size
    ``sheetToMarkerWidthRatio`` gives, and stretches the markers' rectangle onto
    pageDimensions along each axis on its own, so the guess can be twice the print, more
    along the frame's height. A public card's last row, printed just above a marker,
    lay within the whole guessed marker (its ratio gave twice the printed marker, on a
    frame stretched 2.5 times in height)."""
    if tpl.alignment.kind != "markers":
        return
    for f in tpl.fields:
        for x, y in f.centres:
            for mx, my in tpl.marker_centres:
                if abs(x - mx) < ON_MARKER * marker_w and abs(y - my) < ON_MARKER * marker_h:
                    raise TemplateError(f"{f.label}: bubble at ({x:g}, {y:g}) overlaps a corner marker")


# --- stored on the platform -------------------------------------------------------------

#: an exam's sheet template imported from OMRChecker, kept whole so it can be re-read:
#: ``{"format": STORED_FORMAT, "template": {...}, "config": {...}, "marker_png": "<base64>",
#: "reference_png": "<base64>"}``; the pictures are there when the template uses them
#: (CropOnMarkers' marker, FeatureBasedAlignment's reference).
STORED_FORMAT: Final = "omrchecker-v1"


def stored_template_load(raw: Mapping[str, Any]) -> Template:
    """The reader's Template for an imported OMRChecker template (see STORED_FORMAT)."""
    template, config = raw.get("template"), raw.get("config") or {}
    if not isinstance(template, Mapping) or not isinstance(config, Mapping):
        raise TemplateError("an imported OMRChecker template needs template and config")
    marker = _stored_picture(raw, "marker_png")
    reference = _stored_picture(raw, "reference_png")
    return convert_template(template, marker=marker, reference=reference, config=config).template


def _stored_picture(raw: Mapping[str, Any], key: str) -> bytes | None:
    import base64
    import binascii

    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TemplateError(f"{key}: must be the picture in base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TemplateError(f"{key} is not base64: {exc}") from exc
