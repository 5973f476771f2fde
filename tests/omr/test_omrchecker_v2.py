"""OMRChecker v2 templates (its dev-branch format) read as the v1 templates they amount to."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from workers.omr.cli import main as cli_main
from workers.omr.omrchecker import convert_template, is_omrchecker_template
from workers.omr.omrchecker_render import render_marker_sheet
from workers.omr.omrchecker_v2 import is_v2_template, v1_from_v2
from workers.omr.template import TemplateError

FIXTURES = Path(__file__).parent / "fixtures" / "omrchecker" / "sample"
MARKER = (FIXTURES / "omr_marker.png").read_bytes()
#: the processing shape ([height, width]) the v1 fixture is measured in (OMRChecker v1's default).
PROCESSING = [820, 666]


@pytest.fixture
def v1() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "template.json").read_text(encoding="utf-8"))
    return data


def _as_v2(v1: dict[str, Any]) -> dict[str, Any]:
    """The fixture written as OMRChecker v2 writes the same card."""
    blocks: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, block in v1["fieldBlocks"].items():
        out = {k: v for k, v in block.items() if k not in ("fieldType", "bubbleValues", "direction")}
        out["fieldDetectionType"] = "BUBBLES_THRESHOLD"
        kind = block.get("fieldType")
        if kind is not None and not kind.endswith("_RTL"):
            out["bubbleFieldType"] = kind
        else:
            # v2 has no _RTL types: the values printed right to left are a type of its own.
            values = list("DCBA") if kind == "QTYPE_MCQ4_RTL" else block["bubbleValues"]
            custom[f"CUSTOM_{name}"] = {"bubbleValues": values, "direction": block.get("direction", "horizontal")}
            out["bubbleFieldType"] = f"CUSTOM_{name}"
        blocks[name] = out
    ratio = v1["preProcessors"][1]["options"]["sheetToMarkerWidthRatio"]
    side = PROCESSING[1] / ratio
    markers = {"type": "FOUR_MARKERS", "referenceImage": "omr_marker.png", "markerDimensions": [side, side]}
    return {
        "templateDimensions": v1["pageDimensions"],
        "bubbleDimensions": v1["bubbleDimensions"],
        "processingImageShape": PROCESSING,
        "preProcessors": [
            {"name": "CropPage", "options": {"morphKernel": [10, 10], "useColoredCanny": False}},
            {"name": "CropOnMarkers", "options": markers},
            {"name": "AutoRotate", "options": {"referenceImage": "omr_marker.png"}},
        ],
        "customLabels": v1["customLabels"],
        "customBubbleFieldTypes": custom,
        "fieldBlocks": blocks,
    }


def test_a_v2_template_is_told_from_v1_and_from_this_projects_format(v1: dict[str, Any]) -> None:
    v2 = _as_v2(v1)
    assert is_v2_template(v2)
    assert is_omrchecker_template(v2)
    assert not is_v2_template(v1)
    assert is_omrchecker_template(v1)
    assert not is_v2_template({**v2, "format": "academy-omr-template/1"})


def test_a_v2_template_converts_to_the_same_sheet_as_its_v1_twin(v1: dict[str, Any]) -> None:
    old = convert_template(v1, marker=MARKER).template
    new = convert_template(_as_v2(v1), marker=MARKER).template
    assert new.fields == old.fields
    assert new.id_fields == old.id_fields
    assert (new.width, new.height, new.dpi, new.marker_size) == (old.width, old.height, old.dpi, old.marker_size)
    assert new.alignment.kind == old.alignment.kind == "markers"
    assert new.alignment.options == old.alignment.options


def test_the_command_line_reads_a_sheet_through_a_v2_template_file(v1: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "card"
    folder.mkdir()
    (folder / "template.json").write_text(json.dumps(_as_v2(v1)), encoding="utf-8")
    (folder / "omr_marker.png").write_bytes(MARKER)
    template = convert_template(v1, marker=MARKER).template
    page = render_marker_sheet(template)
    rng = random.Random(5)
    marked = {}
    for f in [q for q in template.questions if q.block.startswith("MCQ_Block")]:
        value = rng.randrange(len(f.values))
        x, y = f.centres[value]
        cv2.ellipse(page, (round(x), round(y)), (12, 12), 0, 0, 360, 40, -1)
        marked[f.label] = [f.values[value]]
    ok, jpeg = cv2.imencode(".jpg", np.asarray(page, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    (folder / "sheet.jpg").write_bytes(jpeg.tobytes())
    out = tmp_path / "out.json"
    assert cli_main(["read", "--template", str(folder / "template.json"), "--out", str(out), str(folder)]) == 0
    reading = json.loads(out.read_text(encoding="utf-8"))
    assert list(reading) == ["sheet.jpg"]  # the marker picture is the template's, not a sheet
    answers = reading["sheet.jpg"]["answers"]
    assert {label: answers[label] for label in marked} == marked


def test_fields_block_offset_moves_every_block_and_a_field_type_wins_over_a_blocks_values(
    v1: dict[str, Any],
) -> None:
    v2 = _as_v2(v1)
    v2["fieldBlocksOffset"] = [5, -3]
    v2["fieldBlocks"]["MCQ_Block_Q1"]["bubbleValues"] = ["W", "X", "Y", "Z"]
    converted, _ = v1_from_v2(v2)
    for name, block in converted["fieldBlocks"].items():
        x, y = v1["fieldBlocks"][name]["origin"]
        assert block["origin"] == [x + 5, y - 3]
    assert converted["fieldBlocks"]["MCQ_Block_Q1"]["fieldType"] == "QTYPE_MCQ4"
    assert "bubbleValues" not in converted["fieldBlocks"]["MCQ_Block_Q1"]


def test_processing_shape_becomes_the_config_dimensions_and_a_custom_order_the_output_columns(
    v1: dict[str, Any],
) -> None:
    v2 = _as_v2(v1)
    v2["processingImageShape"] = [1640, 1332]
    v2["outputColumns"] = {"sortType": "CUSTOM", "customOrder": ["q11..20", "q1..10"]}
    converted, config = v1_from_v2(v2)
    assert config == {"dimensions": {"processing_width": 1332, "processing_height": 1640}}
    assert converted["outputColumns"] == ["q11..20", "q1..10"]
    v2["outputColumns"] = {"sortType": "ALPHABETICAL", "sortOrder": "DESC"}
    assert "outputColumns" not in v1_from_v2(v2)[0]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: t["preProcessors"][1]["options"].update(type="CUSTOM_ZONES"), "'CUSTOM_ZONES' is not supported"),
        (lambda t: t["preProcessors"][1]["options"].update(type="FOUR_DOTS"), "topLeftDot: the layout needs this zone"),
        (lambda t: t["preProcessors"][1]["options"].update(defaultSelector="INNER_CORNERS"), "defaultSelector"),
        (lambda t: t["fieldBlocks"]["Roll"].update(fieldDetectionType="OCR"), "fieldBlocks.Roll.fieldDetectionType"),
        (lambda t: t["fieldBlocks"]["Roll"].update(bubbleFieldType="CUSTOM_NONE"), "fieldBlocks.Roll.bubbleFieldType"),
        (lambda t: t["preProcessors"].append({"name": "WarpOnPoints"}), "'WarpOnPoints' is not supported"),
    ],
)
def test_what_this_reader_cannot_follow_is_template_invalid_naming_the_setting(
    v1: dict[str, Any], change: Any, named: str
) -> None:
    v2 = copy.deepcopy(_as_v2(v1))
    change(v2)
    with pytest.raises(TemplateError) as info:
        convert_template(v2, marker=MARKER)
    assert info.value.code == "TEMPLATE_INVALID"
    assert named in info.value.message


def test_the_platform_imports_a_v2_template_under_the_same_wrapper_as_v1(v1: dict[str, Any]) -> None:
    import base64

    from academy.services.exams import template_clean
    from workers.omr.omrchecker import stored_template_load

    marker = base64.b64encode(MARKER).decode()
    stored = template_clean({"format": "omrchecker-v1", "template": _as_v2(v1), "config": {}, "marker_png": marker})
    assert stored["template"]["templateDimensions"] == v1["pageDimensions"]  # kept as given
    assert stored_template_load(stored).fields == convert_template(v1, marker=MARKER).template.fields
