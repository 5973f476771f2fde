"""OMRChecker v2 template.json (the format of OMRChecker's ``dev`` branch) as a v1 template.

v2 renames and regroups what v1 says; where it says the same thing, the template is
rewritten in v1's terms and read as a v1 template (workers/omr/omrchecker.py):

- ``templateDimensions`` is v1's ``pageDimensions``; ``processingImageShape`` ([height,
  width], the template's or CropOnMarkers' own) is config.json's ``dimensions``;
- a block's ``bubbleFieldType`` is a built-in field type (v1's ``fieldType``) or one of the
  template's ``customBubbleFieldTypes`` (its ``bubbleValues`` and ``direction``);
- ``CropOnMarkers`` of type ``FOUR_MARKERS`` is v1's CropOnMarkers: ``referenceImage`` is
  ``relativePath``, ``markerDimensions`` (the marker's size in the processing image) give
  ``sheetToMarkerWidthRatio``, and ``tuningOptions`` carry the marker search's options;
- ``CropOnMarkers`` of the dot and line types (``FOUR_DOTS``, ``TWO_LINES``, ...) has no
  v1 word: it keeps v2's own options (its zones, selector and processing size), and the
  v1 loader makes it the alignment kind "zones" (workers/omr/zone_align.py);
- ``CropPage``, ``FeatureBasedAlignment``, ``GaussianBlur``, ``MedianBlur`` and ``Levels``
  keep their v1 options.

Left out, because this reader does it itself: ``AutoRotate`` (the layout tells the sheet's
turn, workers/omr/layout.py), ``Contrast`` (every bubble is measured against its own
paper and the sheet's ink), a block's ``scanZone`` and the template's ``alignment`` (each
block is looked for near where the template puts it). Refused with TEMPLATE_INVALID,
naming the setting: fields other than bubbles (OCR, barcodes), custom ``scanZones`` and
selectors other than the markers' centres or the dots' and lines' centres and corners.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from workers.omr.template import TemplateError
from workers.omr.zone_align import LAYOUTS, SELECTORS

#: a block's field detection that reads bubbles; v2 also has OCR and BARCODE_QR.
BUBBLES: Final = "BUBBLES_THRESHOLD"
#: OMRChecker v2's processing size ([height, width]) where a template gives none.
DEFAULT_PROCESSING_SHAPE: Final = (900, 650)
#: the top-level keys v1 has; v2's others are said in v1's terms or left out.
V1_KEYS: Final = ("bubbleDimensions", "customLabels", "emptyValue")
#: CropOnMarkers' ``tuningOptions`` that mean what v1's marker options of the same name do.
MARKER_TUNING: Final = (
    "marker_rescale_range",
    "marker_rescale_steps",
    "min_matching_threshold",
    "apply_erode_subtract",
)
#: preprocessors whose options carry over, less v2's own (``V2_STEP_OPTIONS``).
SAME_OPTIONS: Final = ("GaussianBlur", "MedianBlur", "Levels", "FeatureBasedAlignment")
#: options any v2 preprocessor may carry that v1 has no word for: its own processing size
#: (this reader sizes its filters to the template's), its tuning, its feature matcher.
V2_STEP_OPTIONS: Final = frozenset({"processingImageShape", "tuningOptions", "matcherType"})
#: preprocessors this reader does without (see the module doc).
LEFT_OUT: Final = ("AutoRotate", "Contrast")


def is_v2_template(data: object) -> bool:
    """True for an OMRChecker v2 template.json: fieldBlocks framed by templateDimensions."""
    return isinstance(data, Mapping) and "format" not in data and "fieldBlocks" in data and "templateDimensions" in data


def v1_from_v2(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The v1 template.json and config.json ``dimensions`` that say what ``data`` says.

    Raises TemplateError naming the setting this reader cannot follow."""
    if not is_v2_template(data):
        raise TemplateError("not an OMRChecker v2 template: templateDimensions and fieldBlocks are required")
    processing = _shape(data.get("processingImageShape", list(DEFAULT_PROCESSING_SHAPE)), "processingImageShape")
    out: dict[str, Any] = {k: data[k] for k in V1_KEYS if k in data}
    out["pageDimensions"] = data["templateDimensions"]
    columns = data.get("outputColumns")
    if isinstance(columns, Mapping):
        # v2 sorts its columns ({"sortType", "customOrder"}): a custom order is v1's list;
        # a sort by name only shows the same columns in another order.
        columns = columns.get("customOrder")
    if isinstance(columns, list) and columns:
        out["outputColumns"] = columns
    custom = data.get("customBubbleFieldTypes", {})
    if not isinstance(custom, Mapping):
        raise TemplateError("customBubbleFieldTypes: must be an object")
    blocks = data["fieldBlocks"]
    if not isinstance(blocks, Mapping):
        raise TemplateError("fieldBlocks: must be an object with at least one block")
    shift = data.get("fieldBlocksOffset", [0, 0])
    if not (isinstance(shift, list) and len(shift) == 2 and all(isinstance(v, (int, float)) for v in shift)):
        raise TemplateError("fieldBlocksOffset: must be [x, y]")
    out["fieldBlocks"] = {
        name: _block(block, f"fieldBlocks.{name}", custom, (float(shift[0]), float(shift[1])))
        for name, block in blocks.items()
    }
    steps = data.get("preProcessors", [])
    if not isinstance(steps, list):
        raise TemplateError("preProcessors: must be a list")
    out["preProcessors"] = []
    for i, step in enumerate(steps):
        converted = _step(step, f"preProcessors[{i}]", processing)
        if converted is not None:
            out["preProcessors"].append(converted)
    height, width = processing
    return out, {"dimensions": {"processing_width": width, "processing_height": height}}


#: a block's v2-only keys: said in v1's terms (the field type) or left out (see the module doc).
_BLOCK_ONLY_V2: Final = frozenset({"fieldDetectionType", "bubbleFieldType", "scanZone", "alignment"})


def _block(block: object, where: str, custom: Mapping[str, Any], shift: tuple[float, float]) -> dict[str, Any]:
    from workers.omr.omrchecker import FIELD_TYPES

    if not isinstance(block, Mapping):
        raise TemplateError(f"{where}: must be an object")
    detection = block.get("fieldDetectionType", BUBBLES)
    kind = block.get("bubbleFieldType")
    # v1's key is still taken for the field type; some v2 templates put the detection
    # there instead ("fieldType": "BUBBLES_THRESHOLD"), which is what reads bubbles.
    if kind is None and block.get("fieldType") not in (None, BUBBLES):
        kind = block["fieldType"]
    if detection != BUBBLES:
        raise TemplateError(f"{where}.fieldDetectionType: {detection!r} is not read here; only {BUBBLES} is")
    out = {k: v for k, v in block.items() if k not in _BLOCK_ONLY_V2 and k != "fieldType"}
    origin = block.get("origin")
    if shift != (0.0, 0.0) and isinstance(origin, list) and len(origin) == 2:
        out["origin"] = [origin[0] + shift[0], origin[1] + shift[1]]
    if kind is None:
        return out  # bubbleValues (and direction) given on the block itself, as in v1
    # A field type, built in or the template's own, says the values and their direction
    # (in v2 it wins over a block's own bubbleValues).
    out.pop("bubbleValues", None)
    out.pop("direction", None)
    if not isinstance(kind, str):
        raise TemplateError(f"{where}.bubbleFieldType: must name a field type")
    own = custom.get(kind)  # the template's own types come first: one may reuse a built-in's name
    if own is None and kind.removesuffix("_RTL") in FIELD_TYPES:
        out["fieldType"] = kind
        return out
    if not isinstance(own, Mapping):
        known = ", ".join([*FIELD_TYPES, *custom])
        raise TemplateError(
            f"{where}.bubbleFieldType: {kind!r} is neither built in nor in customBubbleFieldTypes ({known})"
        )
    out["bubbleValues"] = own.get("bubbleValues")
    out["direction"] = own.get("direction", "horizontal")
    return out


def _step(step: object, where: str, processing: tuple[int, int]) -> dict[str, Any] | None:
    """One v2 preprocessor as v1's, None where it is left out. ``processing``: the
    template's processing shape, which a step's own options may set for that step."""
    if not isinstance(step, Mapping):
        raise TemplateError(f"{where}: must be an object")
    name = step.get("name")
    options = step.get("options", {})
    if not isinstance(options, Mapping):
        raise TemplateError(f"{where} ({name}).options: must be an object")
    if name in LEFT_OUT:
        return None
    if name in SAME_OPTIONS:
        return {"name": name, "options": {k: v for k, v in options.items() if k not in V2_STEP_OPTIONS}}
    if name == "CropPage":
        kept = {"morphKernel": options["morphKernel"]} if "morphKernel" in options else {}
        return {"name": name, "options": kept}
    if name != "CropOnMarkers":
        raise TemplateError(f"{where}: {name!r} is not supported")
    where = f"{where} (CropOnMarkers).options"
    # Its zones and markerDimensions are pixels of the picture CropOnMarkers works on: the
    # page at its own processing shape, or the template's.
    own = options.get("processingImageShape")
    height, width = _shape(own, f"{where}.processingImageShape") if own else processing
    kind = options.get("type", "FOUR_MARKERS")
    selector = options.get("defaultSelector", "CENTERS")
    if "scanZones" in options:
        raise TemplateError(f"{where}.scanZones: custom zones are not supported; the layout's named zones are")
    if kind in LAYOUTS:
        if selector not in SELECTORS:
            raise TemplateError(f"{where}.defaultSelector: {selector!r} is not one of {', '.join(SELECTORS)}")
        zones = {name: _zone(options.get(name), f"{where}.{name}") for name in LAYOUTS[kind]}
        return {
            "name": name,
            "options": {"type": kind, "zones": zones, "selector": selector, "processing": [width, height]},
        }
    if kind != "FOUR_MARKERS":
        known = ", ".join(["FOUR_MARKERS", *LAYOUTS])
        raise TemplateError(f"{where}.type: {kind!r} is not supported; {known} are")
    if selector != "CENTERS":
        raise TemplateError(f"{where}.defaultSelector: {selector!r} is not supported; the markers' CENTERS are")
    converted: dict[str, Any] = {}
    if "referenceImage" in options:
        converted["relativePath"] = options["referenceImage"]
    dims = options.get("markerDimensions")
    if dims is not None:
        if not isinstance(dims, list) or len(dims) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in dims):
            raise TemplateError(f"{where}.markerDimensions: must be [width, height] above 0")
        converted["sheetToMarkerWidthRatio"] = width / float(dims[0])
    tuning = options.get("tuningOptions", {})
    if not isinstance(tuning, Mapping):
        raise TemplateError(f"{where}.tuningOptions: must be an object")
    converted.update({k: tuning[k] for k in MARKER_TUNING if k in tuning})
    return {"name": name, "options": converted}


def _zone(value: object, where: str) -> dict[str, Any]:
    """A dot's or line's zone: ``origin``, ``dimensions`` and ``margins``, checked."""
    if not isinstance(value, Mapping):
        raise TemplateError(f"{where}: the layout needs this zone (origin and dimensions)")
    out: dict[str, Any] = {}
    for key in ("origin", "dimensions"):
        pair = value.get(key)
        if not (isinstance(pair, list) and len(pair) == 2 and all(_number(v) for v in pair)):
            raise TemplateError(f"{where}.{key}: must be [x, y] in the processing picture's pixels")
        out[key] = [float(pair[0]), float(pair[1])]
    if min(out["dimensions"]) <= 0:
        raise TemplateError(f"{where}.dimensions: must be above 0")
    margins = value.get("margins", {})
    if not isinstance(margins, Mapping) or not all(_number(v) and v >= 0 for v in margins.values()):
        raise TemplateError(f"{where}.margins: must give top, right, bottom and left in pixels")
    out["margins"] = {side: float(margins.get(side, 0)) for side in ("top", "right", "bottom", "left")}
    return out


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shape(value: object, where: str) -> tuple[int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 100 <= v <= 10000 for v in value)
    ):
        raise TemplateError(f"{where}: must be [height, width], each 100 to 10000 px")
    return round(value[0]), round(value[1])
