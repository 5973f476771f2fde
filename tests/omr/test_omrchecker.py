"""The OMRChecker v1 importer: template conversion, reading its sheets, evaluation.json."""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.omr.corpus import degrade
from workers.omr.errors import OmrError
from workers.omr.omrchecker import (
    OmrCheckerTemplate,
    convert_template,
    evaluation_load,
    is_omrchecker_template,
    join_custom_labels,
    load_omrchecker_template,
)
from workers.omr.omrchecker_render import render_marker_sheet
from workers.omr.reader import read_gray, read_sheet
from workers.omr.render import render_sheet
from workers.omr.template import DEFAULT_TEMPLATE, Template, TemplateError

FIXTURES = Path(__file__).parent / "fixtures" / "omrchecker"
SAMPLE = FIXTURES / "sample" / "template.json"
MARKER = (FIXTURES / "sample" / "omr_marker.png").read_bytes()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sheet() -> OmrCheckerTemplate:
    return load_omrchecker_template(SAMPLE)


@pytest.fixture
def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return data


# --- a student and a scanner ------------------------------------------------------------


def _answers(template: Template, rng: random.Random) -> dict[str, list[str]]:
    """What one student marks: mostly one value, some blanks, a double mark."""
    out: dict[str, list[str]] = {}
    for i, f in enumerate(template.fields):
        if f in template.id_fields:
            out[f.label] = [rng.choice(f.values)]
        elif i % 9 == 4:
            out[f.label] = []
        elif i % 13 == 6:
            out[f.label] = sorted(rng.sample(f.values, 2), key=f.values.index)
        else:
            out[f.label] = [rng.choice(f.values)]
    return out


def _pencil(template: Template, marks: dict[str, list[str]], rng: random.Random) -> np.ndarray:
    """The blank OMRChecker sheet with grainy pencil fills, as a 0..1 float page."""
    page = render_marker_sheet(template).astype(np.float32) / 255
    r = template.bubble_radius
    size = math.ceil(r * 1.2)
    for f in template.fields:
        for value in marks.get(f.label, []):
            x, y = (round(v) for v in f.centres[f.values.index(value)])
            mask = np.zeros((2 * size + 1, 2 * size + 1), np.uint8)
            cv2.circle(mask, (size, size), round(r * rng.uniform(0.8, 0.95)), 255, -1, cv2.LINE_AA)
            grain = np.random.default_rng(rng.getrandbits(32)).uniform(0.75, 1.0, mask.shape).astype(np.float32)
            dark = rng.uniform(0.7, 0.9) * grain * (mask.astype(np.float32) / 255)
            page[y - size : y + size + 1, x - size : x + size + 1] *= 1 - dark
    return page


def _scan_upside_down(page: np.ndarray, seed: int) -> bytes:
    """Upside down, 1.5 degrees off, slightly smaller, blurred, noisy, JPEG."""
    h, w = page.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 181.5, 0.94)
    m[:, 2] += (60, 40)
    img = cv2.warpAffine(page, m, (w + 120, h + 90), flags=cv2.INTER_LINEAR, borderValue=0.93)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    img = img + np.random.default_rng(seed).normal(0, 4 / 255, img.shape)
    ok, buf = cv2.imencode(".jpg", np.clip(img * 255, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(buf)


def _expected(template: Template, marks: dict[str, list[str]]) -> dict[str, list[str]]:
    return {q.label: marks[q.label] for q in template.questions}


# --- conversion -----------------------------------------------------------------------------


def test_detection_tells_omrchecker_templates_from_project_templates(raw: dict[str, Any]) -> None:
    assert is_omrchecker_template(raw)
    assert not is_omrchecker_template(json.loads(DEFAULT_TEMPLATE.read_text(encoding="utf-8")))
    assert not is_omrchecker_template({"fieldBlocks": {}})  # no pageDimensions
    assert not is_omrchecker_template(["pageDimensions", "fieldBlocks"])


def test_bubbles_are_centred_in_their_boxes_inside_a_one_marker_margin(sheet: OmrCheckerTemplate) -> None:
    t = sheet.template
    margin = 1200 / 16  # sheetToMarkerWidthRatio 17: marker = frame width / (17 - 1)
    right, bottom = margin + 1200, margin + 1650
    assert t.marker_centres == ((margin, margin), (right, margin), (right, bottom), (margin, bottom))
    assert (t.width, t.height) == (1350, 1800)
    assert t.bubble_radius == 15  # half the smaller of the blocks' bubbleDimensions
    fields = {f.label: f for f in t.fields}
    # MCQ: bubbles run right by bubblesGap, questions step down by labelsGap.
    assert fields["q2"].centres[:2] == ((margin + 120 + 15, margin + 675 + 15), (margin + 170 + 15, margin + 675 + 15))
    # QTYPE_INT runs down; successive digits of the roll number step right.
    assert fields["roll2"].centres[3] == (margin + 166 + 15, margin + 236 + 15)
    assert fields["q22"].values == ("D", "C", "B", "A")  # _RTL
    assert fields["q21_1"].values == tuple("1234567890")  # QTYPE_INT_FROM_1
    assert fields["Medium"].values == ("E", "H")
    assert fields["bonus1"].centres[0] == (margin + 120 + 17, margin + 1250 + 17)  # the block's own 34 px boxes


def test_roll_number_custom_label_becomes_the_student_id(sheet: OmrCheckerTemplate) -> None:
    assert sheet.roll_label == "Roll"
    assert [f.label for f in sheet.template.id_fields] == [f"roll{i}" for i in range(1, 9)]
    assert sheet.custom_labels == {"q21": ("q21_1", "q21_2")}
    assert "roll1" not in {q.label for q in sheet.template.questions}


def test_marker_size_without_ratio_comes_from_config_in_a_parent_folder(raw: dict[str, Any], tmp_path: Path) -> None:
    del raw["preProcessors"][1]["options"]["sheetToMarkerWidthRatio"]
    folder = tmp_path / "exam" / "sheet"
    folder.mkdir(parents=True)
    (folder / "template.json").write_text(json.dumps(raw))
    shutil.copy(FIXTURES / "sample" / "omr_marker.png", folder)
    # No config.json: OMRChecker's default processing width, 666 px; the marker is 60 px.
    alone = load_omrchecker_template(folder / "template.json").template
    assert alone.marker_image is not None
    assert math.isclose(alone.marker_image.width, 60 * 1200 / (666 - 60))
    (tmp_path / "exam" / "config.json").write_text(json.dumps({"dimensions": {"processing_width": 1000}}))
    configured = load_omrchecker_template(folder / "template.json").template
    assert configured.marker_image is not None
    assert math.isclose(configured.marker_image.width, 60 * 1200 / (1000 - 60))


BAD_TEMPLATES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("two_crops", lambda d: d["preProcessors"].append(copy.deepcopy(d["preProcessors"][1])), "given twice"),
    ("unknown_pre", lambda d: d["preProcessors"].append({"name": "WarpMagic"}), "'WarpMagic' is not supported"),
    ("field_type", lambda d: d["fieldBlocks"]["Roll"].update(fieldType="QTYPE_BOOL"), "fieldType"),
    ("range_down", lambda d: d["fieldBlocks"]["MCQ_Block_Q1"].update(fieldLabels=["q10..1"]), "lower to a higher"),
    ("label_twice", lambda d: d["fieldBlocks"]["MCQ_Block_Q11"].update(fieldLabels=["q10..19"]), "more than one"),
    ("off_page", lambda d: d["fieldBlocks"]["RTL_Block"].update(origin=[1100, 620]), "outside pageDimensions"),
    ("on_marker", lambda d: d["fieldBlocks"]["Medium"].update(origin=[5, 5]), "overlaps a corner marker"),
    ("custom", lambda d: d["customLabels"].update(Roll=["roll1..9"]), "no field is labelled 'roll9'"),
    ("page", lambda d: d.update(pageDimensions=[1200]), "pageDimensions"),
    ("no_values", lambda d: d["fieldBlocks"]["Medium"].pop("bubbleValues"), "bubbleValues"),
    ("overlapping", lambda d: d["fieldBlocks"]["Roll"].update(bubblesGap=14), "less than half their size"),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [(m, s) for _, m, s in BAD_TEMPLATES], ids=[n for n, _, _ in BAD_TEMPLATES]
)
def test_malformed_template_is_template_invalid_with_a_reason(
    raw: dict[str, Any], mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    mutate(raw)
    with pytest.raises(OmrError) as info:
        convert_template(raw, marker=MARKER)
    assert info.value.code == "TEMPLATE_INVALID"
    assert message in info.value.message


def test_a_bubble_within_a_markers_guessed_size_but_off_its_middle_is_not_refused(raw: dict[str, Any]) -> None:
    # A public card's template gave a marker ratio twice the printed marker's, on a frame
    # stretched 2.5 times in height: its last row, printed just above a marker, lay
    # within the marker's guessed size, and the template was refused. A bubble is now
    # refused only on a marker's middle (the [on_marker] case above).
    margin = convert_template(raw, marker=MARKER).template.marker_centres[0][0]
    h = raw["pageDimensions"][1]
    raw["fieldBlocks"]["Medium"].update(origin=[12, h - 45], direction="horizontal", bubblesGap=60)
    template = convert_template(raw, marker=MARKER).template
    medium = next(f for f in template.fields if f.label == "Medium")
    assert medium.centres[0] == (margin + 27, margin + h - 30)  # 27 and 30 from the marker's centre


def test_boxes_a_little_larger_than_their_gap_are_read_where_omrchecker_reads_them(raw: dict[str, Any]) -> None:
    # A public template draws 101 px boxes 90 px apart; OMRChecker reads such boxes, each
    # overlapping its neighbours. The bubbles keep the boxes' centres, and are read no
    # larger than the gap and a ninth, the most a box was read at before (the print's own
    # size is measured on each sheet).
    raw["fieldBlocks"]["Roll"].update(bubblesGap=25, labelsGap=26)  # 30 px boxes
    fields = {f.label: f for f in convert_template(raw, marker=MARKER).template.fields}
    margin = 1200 / 16
    # Roll is QTYPE_INT: its values run down (the gap), its digits across (labelsGap).
    assert fields["roll1"].centres[:2] == (
        (margin + 120 + 15, margin + 110 + 15),
        (margin + 120 + 15, margin + 135 + 15),
    )
    assert fields["roll2"].centres[0] == (margin + 146 + 15, margin + 110 + 15)
    assert fields["roll1"].size == pytest.approx((26 / 0.9, 25 / 0.9))
    assert fields["q1"].size == (30, 30)  # a block whose boxes fit their gaps is as drawn


def test_missing_marker_image_is_template_invalid(raw: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "template.json").write_text(json.dumps(raw))
    with pytest.raises(OmrError) as info:
        load_omrchecker_template(tmp_path / "template.json")
    assert info.value.code == "TEMPLATE_INVALID"
    assert "omr_marker.png" in info.value.message


def test_undecodable_marker_image_is_template_invalid(raw: dict[str, Any]) -> None:
    with pytest.raises(OmrError, match="marker image cannot be decoded") as info:
        convert_template(raw, marker=b"not a picture")
    assert info.value.code == "TEMPLATE_INVALID"


# --- reading ----------------------------------------------------------------------------------


def test_upside_down_noisy_scan_reads_every_answer(sheet: OmrCheckerTemplate) -> None:
    t = sheet.template
    rng = random.Random(7)
    marks = _answers(t, rng)
    reading = read_sheet(_scan_upside_down(_pencil(t, marks, rng), 7), t)
    assert reading.rotation == 180
    assert reading.answers == _expected(t, marks)
    assert reading.student_id == "".join(marks[f.label][0] for f in t.id_fields)
    assert "student_id" not in reading.review


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_scans_from_the_corpus_scan_model_read_every_answer(sheet: OmrCheckerTemplate, seed: int) -> None:
    """Scale, shift, a few degrees, blur, low contrast, JPEG 30-95 (tests/omr/corpus.py)."""
    t = sheet.template
    rng = random.Random(seed)
    marks = _answers(t, rng)
    data, flipped = degrade(_pencil(t, marks, rng), rng, upside_down=seed % 2 == 1)
    reading = read_sheet(data, t)
    assert reading.rotation in ((180,) if flipped else (0,))
    assert reading.answers == _expected(t, marks)
    assert reading.student_id == "".join(marks[f.label][0] for f in t.id_fields)


def test_blank_sheet_reads_blank_not_every_choice(sheet: OmrCheckerTemplate) -> None:
    t = sheet.template
    reading = read_sheet(_scan_upside_down(render_marker_sheet(t).astype(np.float32) / 255, 3), t)
    assert reading.answers == {q.label: [] for q in t.questions}
    assert reading.student_id == "?" * 8
    assert reading.review == ["student_id"]  # no digits to read; blank questions are certain


def test_project_sheet_is_not_taken_for_an_omrchecker_sheet(sheet: OmrCheckerTemplate, template: Template) -> None:
    with pytest.raises(OmrError) as info:
        read_gray(render_sheet(template), sheet.template)
    assert info.value.code in ("NO_SHEET_FOUND", "TEMPLATE_MISMATCH")


def test_custom_labels_are_joined_and_partial_ones_go_to_review(sheet: OmrCheckerTemplate) -> None:
    entry: dict[str, Any] = {
        "student_id": "12345678",
        "answers": {"Medium": ["E"], "q21_1": ["3"], "q21_2": ["7"], "q1": ["A"]},
        "confidence": {"Medium": 1.0, "q21_1": 0.9, "q21_2": 0.8, "q1": 1.0},
        "review": [],
    }
    joined = join_custom_labels(entry, sheet)
    assert joined["answers"] == {"Medium": ["E"], "q21": ["37"], "q1": ["A"]}
    assert joined["confidence"] == {"Medium": 1.0, "q21": 0.8, "q1": 1.0}
    assert joined["review"] == []
    entry["answers"]["q21_2"] = []
    assert join_custom_labels(entry, sheet)["answers"]["q21"] == ["3"]
    assert join_custom_labels(entry, sheet)["review"] == ["q21"]
    entry["answers"]["q21_1"] = ["3", "4"]
    assert join_custom_labels(entry, sheet)["answers"]["q21"] == []
    assert join_custom_labels(entry, sheet)["review"] == ["q21"]


def test_cli_reads_an_omrchecker_sheet_by_auto_detection_without_django(
    sheet: OmrCheckerTemplate, tmp_path: Path
) -> None:
    t = sheet.template
    rng = random.Random(21)
    marks = _answers(t, rng)
    marks.update(q21_1=["3"], q21_2=["7"])
    (tmp_path / "scan.jpg").write_bytes(_scan_upside_down(_pencil(t, marks, rng), 21))
    out = tmp_path / "out.json"
    script = (
        "import sys\n"
        "from workers.omr.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django was imported'\n"
        "sys.exit(rc)\n"
    )
    args = ["read", "--template", str(SAMPLE), "--out", str(out), str(tmp_path / "scan.jpg")]
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    entry = json.loads(out.read_text(encoding="utf-8"))["scan.jpg"]
    assert set(entry) == {"student_id", "answers", "confidence", "review"}
    assert entry["student_id"] == "".join(marks[f.label][0] for f in t.id_fields)
    expected = {k: v for k, v in _expected(t, marks).items() if not k.startswith("q21_")}
    expected["q21"] = ["37"]
    assert entry["answers"] == expected
    assert set(entry["confidence"]) == set(expected)


def test_cli_render_draws_the_marker_picture_and_reads_back_blank(sheet: OmrCheckerTemplate, tmp_path: Path) -> None:
    from workers.omr.cli import main

    png = tmp_path / "blank.png"
    assert main(["render", "--template", str(SAMPLE), "--out", str(png)]) == 0
    page = np.asarray(cv2.imread(str(png), cv2.IMREAD_GRAYSCALE), np.uint8)
    t = sheet.template
    assert page.shape == (t.height, t.width)
    assert page[round(t.marker_centres[0][1]), round(t.marker_centres[0][0])] < 50  # the marker's dark core
    reading = read_gray(page, t)
    assert all(v == [] for v in reading.answers.values())


# --- evaluation.json --------------------------------------------------------------------------


def test_custom_evaluation_resolves_sections_weights_and_fractions() -> None:
    key = evaluation_load(FIXTURES / "evaluation" / "custom.json")
    default = {"points": 1.0, "incorrect": -0.25, "unmarked": 0.0}
    hard = {"points": 3.0, "incorrect": -2 / 3, "unmarked": 0.5}
    assert key == {
        "questions": {
            "q1": {"correct": ["A"], **default},
            "q2": {"correct": ["B", "C"], **default},
            "q3": {"correct": ["B", "C"], "weights": {"B": 2.0, "C": 1.5}, **default},
            "q4": {"correct": ["D"], **hard},
            "q5": {"correct": ["A"], **hard},
            "q6": {"correct": ["E"], **default},
            "q21": {"correct": ["37"], "points": 4.0, "incorrect": 0.0, "unmarked": 0.0},
        }
    }
    assert list(key["questions"]) == ["q1", "q2", "q3", "q4", "q5", "q6", "q21"]


def test_csv_evaluation_reads_single_any_of_and_weighted_cells() -> None:
    key = evaluation_load(FIXTURES / "evaluation" / "csv.json")
    scheme = {"points": 2.0, "incorrect": -0.5, "unmarked": 0.0}
    assert key == {
        "questions": {
            "q1": {"correct": ["C"], **scheme},
            "q2": {"correct": ["A", "D"], **scheme},
            "q3": {"correct": ["A", "B"], "weights": {"A": 1.0, "B": 1 / 3}, **scheme},
            "q4": {"correct": ["B"], **scheme},
        }
    }


def test_evaluation_dict_finds_its_csv_through_base_dir() -> None:
    data = json.loads((FIXTURES / "evaluation" / "csv.json").read_text(encoding="utf-8"))
    assert evaluation_load(data, base_dir=FIXTURES / "evaluation")["questions"]["q1"]["correct"] == ["C"]
    with pytest.raises(OmrError, match="base folder"):
        evaluation_load(data)


def test_answer_key_image_is_refused_with_a_clear_message() -> None:
    with pytest.raises(OmrError, match=r"answer_key_image_path .* is not supported") as info:
        evaluation_load(FIXTURES / "evaluation" / "image.json")
    assert info.value.code == "TEMPLATE_INVALID"


def _custom(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source_type": "custom",
        "options": {"questions_in_order": ["q1..3"], "answers_in_order": ["A", "B", "C"]},
        "marking_schemes": {"DEFAULT": {"correct": "1", "incorrect": "0", "unmarked": "0"}},
    }
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split("__")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return copy.deepcopy(data)


BAD_EVALUATIONS: list[tuple[str, dict[str, Any], str]] = [
    ("kind", _custom(source_type="image"), "source_type"),
    ("count", _custom(options__answers_in_order=["A", "B"]), "list of 3 answers"),
    ("no_default", _custom(marking_schemes={"S": {"questions": ["q1"], "marking": {}}}), "DEFAULT"),
    ("zero_div", _custom(marking_schemes__DEFAULT={"correct": "1/0", "incorrect": 0, "unmarked": 0}), "'1/0'"),
    ("word", _custom(marking_schemes__DEFAULT={"correct": "one", "incorrect": 0, "unmarked": 0}), "'one'"),
    ("missing", _custom(marking_schemes__DEFAULT={"correct": 1, "incorrect": 0}), "unmarked missing"),
    (
        "unknown_q",
        _custom(marking_schemes__S={"questions": ["q4"], "marking": {"correct": 1, "incorrect": 0, "unmarked": 0}}),
        "'q4' is not in the answer key",
    ),
    (
        "overlap",
        _custom(
            marking_schemes__S={"questions": ["q1..2"], "marking": {"correct": 1, "incorrect": 0, "unmarked": 0}},
            marking_schemes__T={"questions": ["q2"], "marking": {"correct": 2, "incorrect": 0, "unmarked": 0}},
        ),
        "already in section 'S'",
    ),
    ("pair", _custom(options__answers_in_order=["A", [["B"]], "C"]), "[answer, score] pairs"),
    ("one_of_one", _custom(options__answers_in_order=["A", ["B"], "C"]), "at least two"),
    ("number", _custom(options__answers_in_order=["A", 2, "C"]), "must be a string"),
    ("csv_missing", {**_custom(source_type="csv"), "options": {"answer_key_csv_path": "nope.csv"}}, "nope.csv"),
]


@pytest.mark.parametrize(
    ("data", "message"), [(d, m) for _, d, m in BAD_EVALUATIONS], ids=[n for n, _, _ in BAD_EVALUATIONS]
)
def test_malformed_evaluation_is_template_invalid_with_a_reason(data: dict[str, Any], message: str) -> None:
    with pytest.raises(OmrError) as info:
        evaluation_load(data, base_dir=FIXTURES / "evaluation")
    assert info.value.code == "TEMPLATE_INVALID"
    assert message in info.value.message


def test_the_grading_processor_reads_an_imported_omrchecker_template(sheet: OmrCheckerTemplate) -> None:
    import base64

    from workers.base import JobInput
    from workers.omr.omrchecker import STORED_FORMAT
    from workers.omr.processor import OmrGradingProcessor

    stored = {
        "format": STORED_FORMAT,
        "template": json.loads(SAMPLE.read_text(encoding="utf-8")),
        "marker_png": base64.b64encode(MARKER).decode(),
        "config": json.loads((FIXTURES / "config.json").read_text(encoding="utf-8")),
    }
    t = sheet.template
    rng = random.Random(19)
    marks = _answers(t, rng)
    processor = OmrGradingProcessor()
    processor.validate({"template": stored})
    result = processor.run(JobInput(params={"template": stored}, data=_scan_upside_down(_pencil(t, marks, rng), 19)))
    assert result.data["answers"] == _expected(t, marks)
    assert result.data["rotation"] == 180


def test_an_imported_omrchecker_template_with_a_broken_marker_is_template_invalid() -> None:
    from workers.omr.omrchecker import STORED_FORMAT
    from workers.omr.processor import OmrGradingProcessor

    stored = {"format": STORED_FORMAT, "template": json.loads(SAMPLE.read_text()), "marker_png": "not base64!"}
    with pytest.raises(TemplateError) as caught:
        OmrGradingProcessor().validate({"template": stored})
    assert "marker_png" in caught.value.message
