"""OMRChecker v1 templates in full: every preprocessor with its options, per-block bubble
sizes, custom bubble values, customLabels, outputColumns, emptyValue and config.json's
dimensions become the reader's Template (workers/omr/omrchecker.py)."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from workers.omr.errors import OmrError
from workers.omr.filters import Filter, apply_filters, levels_table
from workers.omr.omrchecker import convert_template, join_custom_labels, load_omrchecker_template, stored_template_load

FIXTURES = Path(__file__).parent / "fixtures" / "omrchecker"
SAMPLE = FIXTURES / "sample" / "template.json"
MARKER = (FIXTURES / "sample" / "omr_marker.png").read_bytes()


def _plain(*pre: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A small markerless template: two MCQ blocks and a roll number."""
    data: dict[str, Any] = {
        "pageDimensions": [600, 800],
        "bubbleDimensions": [24, 24],
        "preProcessors": list(pre),
        "fieldBlocks": {
            "Roll": {
                "fieldType": "QTYPE_INT",
                "fieldLabels": ["roll1..3"],
                "origin": [60, 60],
                "bubblesGap": 34,
                "labelsGap": 40,
            },
            "Mcq": {
                "fieldType": "QTYPE_MCQ4",
                "fieldLabels": ["q1..5"],
                "origin": [300, 420],
                "bubblesGap": 50,
                "labelsGap": 40,
                "bubbleDimensions": [30, 20],
            },
            "YesNo": {
                "bubbleValues": ["yes", "no"],
                "direction": "vertical",
                "fieldLabels": ["agree"],
                "origin": [300, 700],
                "bubblesGap": 40,
                "labelsGap": 0,
                "emptyValue": "none",
            },
        },
        "customLabels": {"Roll": ["roll1..3"]},
    }
    data.update(extra)
    return data


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf)


# --- which preprocessor finds the sheet -----------------------------------------------------


def test_crop_page_aligns_by_the_page_with_its_morph_kernel_and_no_margin() -> None:
    t = convert_template(_plain({"name": "CropPage", "options": {"morphKernel": [6, 14]}})).template
    assert t.alignment.kind == "page"
    assert t.alignment.options["morphKernel"] == (6, 14)
    assert (t.width, t.height) == (600, 800)
    assert t.marker_image is None
    fields = {f.label: f for f in t.fields}
    assert fields["q1"].centres[0] == (300 + 15, 420 + 10)  # the box's own 30 x 20, centred


def test_no_preprocessor_means_the_picture_is_the_page() -> None:
    t = convert_template(_plain()).template
    assert t.alignment.kind == "none"
    assert (t.width, t.height) == (600, 800)


def test_feature_based_alignment_carries_the_reference_and_its_options() -> None:
    reference = _png(np.full((400, 300), 255, np.uint8))
    step = {
        "name": "FeatureBasedAlignment",
        "options": {"reference": "ref.png", "maxFeatures": 800, "goodMatchPercent": 0.3, "2d": True},
    }
    t = convert_template(_plain({"name": "CropPage"}, step), reference=reference).template
    assert t.alignment.kind == "reference"  # the reference wins over CropPage: it is the frame
    opts = t.alignment.options
    assert (opts["reference"], opts["maxFeatures"], opts["goodMatchPercent"], opts["2d"]) == (reference, 800, 0.3, True)


def test_feature_based_alignment_without_its_picture_names_the_setting(tmp_path: Path) -> None:
    step = {"name": "FeatureBasedAlignment", "options": {"reference": "missing.png"}}
    (tmp_path / "template.json").write_text(json.dumps(_plain(step)))
    with pytest.raises(OmrError) as info:
        load_omrchecker_template(tmp_path / "template.json")
    assert info.value.code == "TEMPLATE_INVALID"
    assert "FeatureBasedAlignment.options.reference" in info.value.message
    assert "missing.png" in info.value.message


def test_load_reads_the_reference_picture_next_to_the_template(tmp_path: Path) -> None:
    reference = _png(np.full((400, 300), 255, np.uint8))
    (tmp_path / "ref.png").write_bytes(reference)
    step = {"name": "FeatureBasedAlignment", "options": {"reference": "ref.png"}}
    (tmp_path / "template.json").write_text(json.dumps(_plain(step)))
    t = load_omrchecker_template(tmp_path / "template.json").template
    assert t.alignment.options["reference"] == reference
    assert t.alignment.options["maxFeatures"] == 500  # OMRChecker's defaults
    assert t.alignment.options["goodMatchPercent"] == 0.15


def test_crop_on_markers_options_reach_the_marker_search() -> None:
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    data["preProcessors"][1]["options"].update(
        min_matching_threshold=0.4, marker_rescale_range=[60, 120], marker_rescale_steps=8, apply_erode_subtract=False
    )
    t = convert_template(data, marker=MARKER).template
    opts = t.alignment.options
    assert t.alignment.kind == "markers"
    assert opts["min_matching_threshold"] == 0.4
    assert opts["marker_rescale_range"] == (60, 120)
    assert opts["marker_rescale_steps"] == 8
    assert opts["apply_erode_subtract"] is False
    assert opts["sheetToMarkerWidthRatio"] == 17
    assert opts["relativePath"] == "omr_marker.png"
    assert opts["cropPage"] == {"morphKernel": (10, 10)}  # the fixture crops to the page first


def test_crop_on_markers_default_marker_file_is_omr_marker_jpg(tmp_path: Path) -> None:
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    del data["preProcessors"][1]["options"]["relativePath"]
    (tmp_path / "template.json").write_text(json.dumps(data))
    with pytest.raises(OmrError, match=r"omr_marker\.jpg"):
        load_omrchecker_template(tmp_path / "template.json")
    (tmp_path / "omr_marker.jpg").write_bytes(MARKER)
    assert load_omrchecker_template(tmp_path / "template.json").template.marker_image is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_matching_threshold": 1.5}, "min_matching_threshold"),
        ({"marker_rescale_range": [120, 60]}, "marker_rescale_range"),
        ({"apply_erode_subtract": "yes"}, "apply_erode_subtract"),
        ({"sheetToMarkerWidthRatio": 1}, "sheetToMarkerWidthRatio"),
        ({"warp": True}, "CropOnMarkers.options.warp"),
        ({"type": "aruco"}, "markers of type 'aruco' are not read here"),
    ],
    ids=["threshold", "range", "erode", "ratio", "unknown", "kind of marker"],
)
def test_a_bad_crop_on_markers_option_is_refused_naming_it(options: dict[str, Any], message: str) -> None:
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    data["preProcessors"][1]["options"].update(options)
    with pytest.raises(OmrError) as info:
        convert_template(data, marker=MARKER)
    assert info.value.code == "TEMPLATE_INVALID"
    assert message in info.value.message


# --- filters -------------------------------------------------------------------------------------


def test_levels_gaussian_and_median_blur_become_filters_in_order_with_the_processing_width() -> None:
    data = _plain(
        {"name": "Levels", "options": {"low": 0.2, "high": 0.9, "gamma": 0.5}},
        {"name": "GaussianBlur", "options": {"kSize": [5, 5], "sigmaX": 1}},
        {"name": "MedianBlur", "options": {"kSize": 3}},
    )
    t = convert_template(data, config={"dimensions": {"processing_width": 1000, "processing_height": 1400}}).template
    assert t.alignment.options["filters"] == (
        Filter("Levels", (0.2, 0.9, 0.5)),
        Filter("GaussianBlur", (5.0, 5.0, 1.0)),
        Filter("MedianBlur", (3.0,)),
    )
    assert (t.alignment.options["processing_width"], t.alignment.options["processing_height"]) == (1000, 1400)


def test_levels_maps_grey_as_omrchecker_defines_it() -> None:
    table = levels_table(0.2, 0.8, 1.0)
    lo, hi = int(255 * 0.2), int(255 * 0.8)
    assert table[lo] == 0
    assert table[lo - 10] == 0
    assert table[hi] == 255
    assert table[250] == 255
    mid = (lo + hi) // 2
    assert table[mid] == int((mid - lo) / (hi - lo) * 255)
    gamma = levels_table(0.0, 1.0, 2.0)
    assert gamma[64] == int((64 / 255) ** 0.5 * 255)  # gamma 2 lightens the mid-tones


def test_a_blur_is_scaled_from_the_processing_width_to_the_picture() -> None:
    img = np.zeros((200, 2000), np.uint8)
    img[:, 1000:] = 255
    small_blur = apply_filters(img, [Filter("GaussianBlur", (3.0, 3.0, 0.0))], processing_width=2000)
    big_blur = apply_filters(img, [Filter("GaussianBlur", (3.0, 3.0, 0.0))], processing_width=500)
    # The same kernel means 4x the blur on a picture 4x the processing width.
    assert np.count_nonzero((small_blur[100] > 5) & (small_blur[100] < 250)) <= 2
    assert np.count_nonzero((big_blur[100] > 5) & (big_blur[100] < 250)) >= 6


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"name": "Levels", "options": {"low": 0.8, "high": 0.2}}, "high (0.2) must be above low"),
        ({"name": "GaussianBlur", "options": {"kSize": [4, 4]}}, "kSize[0]: must be an odd number"),
        ({"name": "MedianBlur", "options": {"kSize": 2}}, "MedianBlur).options.kSize"),
        ({"name": "CropPage", "options": {"morphKernel": [10]}}, "CropPage.options.morphKernel"),
        ({"name": "CropPage", "options": {"kernel": [10, 10]}}, "CropPage.options.kernel"),
        ({"name": "FeatureBasedAlignment", "options": {}}, "FeatureBasedAlignment.options.reference"),
        ({"name": "Sharpen", "options": {}}, "'Sharpen' is not supported"),
    ],
    ids=["levels", "gauss", "median", "morph", "page_option", "reference", "unknown"],
)
def test_a_bad_preprocessor_option_is_refused_naming_the_setting(step: dict[str, Any], message: str) -> None:
    with pytest.raises(OmrError) as info:
        convert_template(_plain(step))
    assert info.value.code == "TEMPLATE_INVALID"
    assert message in info.value.message


# --- fields, labels, output -------------------------------------------------------------------


def test_each_block_keeps_its_own_bubble_size_and_custom_values() -> None:
    t = convert_template(_plain()).template
    fields = {f.label: f for f in t.fields}
    assert fields["q1"].size == (30, 20)
    assert fields["roll1"].size == (24, 24)
    assert fields["agree"].values == ("yes", "no")
    assert fields["agree"].centres == ((312, 712), (312, 752))  # vertical: down by bubblesGap
    assert fields["q1"].block == "Mcq"
    assert t.bubble_radius == 10  # the smallest half side (the 30 x 20 boxes)


def test_bubble_sizes_that_differ_a_lot_between_blocks_are_read_not_refused() -> None:
    data = _plain()
    data["fieldBlocks"]["Mcq"].update(bubbleDimensions=[46, 46], bubblesGap=60, labelsGap=60)
    t = convert_template(data).template
    assert {f.size for f in t.fields} == {(24, 24), (46, 46)}


def test_bubbles_overlapping_by_half_are_refused_naming_the_gap() -> None:
    # Boxes a little larger than their gap are read (OMRChecker reads them); boxes
    # overlapping by half or more are no row of bubbles side by side.
    data = _plain()
    data["fieldBlocks"]["Mcq"]["bubblesGap"] = 14  # 30 px wide boxes, 14 px apart
    with pytest.raises(OmrError, match=r"fieldBlocks.Mcq.bubblesGap: bubbles are 14 px apart, less than half"):
        convert_template(data)
    data["fieldBlocks"]["Mcq"]["bubblesGap"] = 20  # read, each bubble the gap and a ninth wide
    fields = convert_template(data).template.fields
    assert [f.size for f in fields if f.block_name == "Mcq"] == [pytest.approx((20 / 0.9, 20))] * 5


def test_config_processing_width_sets_the_marker_size() -> None:
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    wide = convert_template(data, marker=MARKER, config={"dimensions": {"processing_width": 1700}}).template
    plain = convert_template(data, marker=MARKER).template
    assert wide.marker_image is not None
    assert plain.marker_image is not None
    # sheetToMarkerWidthRatio 17 of any processing width: the same share of the frame.
    assert math.isclose(wide.marker_image.width, plain.marker_image.width)
    with pytest.raises(OmrError, match="processing_width"):
        convert_template(data, marker=MARKER, config={"dimensions": {"processing_width": "wide"}})


def test_empty_value_fills_blank_members_of_a_joined_label_and_output_columns_order_them() -> None:
    data = _plain(outputColumns=["q2", "Joined", "q1"])
    data["fieldBlocks"]["Pair"] = {
        "fieldType": "QTYPE_INT",
        "fieldLabels": ["j1", "j2"],
        "origin": [60, 420],
        "bubblesGap": 34,
        "labelsGap": 40,
        "emptyValue": "-",
    }
    data["customLabels"]["Joined"] = ["j1", "j2"]
    sheet = convert_template(data)
    assert sheet.empty_values == {"agree": "none", "j1": "-", "j2": "-"}
    assert sheet.output_columns == ("q2", "Joined", "q1")
    answers = {"q1": ["A"], "q2": [], "q3": ["B"], "q4": ["C"], "q5": ["D"], "agree": ["yes"], "j1": ["4"], "j2": []}
    entry = {"student_id": "123", "answers": answers, "confidence": dict.fromkeys(answers, 1.0), "review": []}
    joined = join_custom_labels(entry, sheet)
    assert list(joined["answers"])[:3] == ["q2", "Joined", "q1"]
    assert joined["answers"]["Joined"] == ["4-"]  # as OMRChecker writes it
    assert "Joined" in joined["review"]  # a partly blank number is still checked by a person
    with pytest.raises(OmrError, match="outputColumns: 'q9'"):
        convert_template(_plain(outputColumns=["q9"]))


def test_a_stored_template_without_markers_needs_no_marker_picture() -> None:
    reference = _png(np.full((400, 300), 255, np.uint8))
    step = {"name": "FeatureBasedAlignment", "options": {"reference": "ref.png"}}
    stored = {
        "format": "omrchecker-v1",
        "template": _plain(step),
        "config": {},
        "reference_png": base64.b64encode(reference).decode(),
    }
    t = stored_template_load(stored)
    assert t.alignment.kind == "reference"
    assert t.alignment.options["reference"] == reference
    assert (
        stored_template_load({"format": "omrchecker-v1", "template": _plain(), "config": {}}).alignment.kind == "none"
    )


def test_an_exam_keeps_the_reference_picture_of_an_imported_template() -> None:
    from academy.services.exams import template_clean

    reference = base64.b64encode(_png(np.full((400, 300), 255, np.uint8))).decode()
    step = {"name": "FeatureBasedAlignment", "options": {"reference": "ref.png"}}
    stored = {"format": "omrchecker-v1", "template": _plain(step), "config": {}, "reference_png": reference}
    kept = template_clean(stored)
    assert kept["reference_png"] == reference
    assert stored_template_load(kept).alignment.options["reference"] == base64.b64decode(reference)


def _draw(sheet_fields: Any, marks: dict[str, list[str]], page: tuple[int, int]) -> np.ndarray:
    """The template's page printed (ellipse outlines, a heading) and filled in, 2x size."""
    img = np.full((page[1] * 2, page[0] * 2), 250, np.uint8)
    cv2.putText(img, "UNIT TEST  ANSWER CARD", (80, 90), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 30, 3)
    for f in sheet_fields:
        w, h = f.size
        for value, (x, y) in zip(f.values, f.centres, strict=True):
            centre, axes = (round(2 * x), round(2 * y)), (round(0.9 * w), round(0.9 * h))
            cv2.ellipse(img, centre, axes, 0, 0, 360, 90, 2, cv2.LINE_AA)
            if value in marks.get(f.label, []):
                cv2.ellipse(img, centre, (axes[0] - 4, axes[1] - 4), 0, 0, 360, 30, -1, cv2.LINE_AA)
    return img


def test_the_command_line_reads_a_crop_page_sheet_photographed_on_a_desk(tmp_path: Path) -> None:
    from workers.omr.cli import main

    data = _plain({"name": "CropPage", "options": {"morphKernel": [10, 10]}})
    (tmp_path / "template.json").write_text(json.dumps(data))
    t = convert_template(data).template
    marks = {"roll1": ["4"], "roll2": ["0"], "roll3": ["7"], "q1": ["B"], "q2": [], "q3": ["D"], "q4": ["A"]}
    marks |= {"q5": ["C"], "agree": ["no"]}
    page = _draw(t.fields, marks, (600, 800))
    src = np.array([(0, 0), (1200, 0), (1200, 1600), (0, 1600)], np.float32)
    dst = np.array([(1180, 1420), (260, 1500), (200, 260), (1110, 190)], np.float32)  # upside down, tilted
    desk = np.full((1700, 1400), 70, np.uint8)
    photo = cv2.warpPerspective(
        page, cv2.getPerspectiveTransform(src, dst), (1400, 1700), dst=desk, borderMode=cv2.BORDER_TRANSPARENT
    )
    (tmp_path / "sheet.jpg").write_bytes(bytes(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]))
    out = tmp_path / "out.json"
    assert (
        main(["read", "--template", str(tmp_path / "template.json"), "--out", str(out), str(tmp_path / "sheet.jpg")])
        == 0
    )
    entry = json.loads(out.read_text(encoding="utf-8"))["sheet.jpg"]
    assert entry["student_id"] == "407"
    assert entry["answers"] == {k: v for k, v in marks.items() if not k.startswith("roll")}
    assert entry["review"] == []


def test_a_small_scan_of_an_omrchecker_sheet_is_judged_by_its_bubbles_pixels_not_its_page() -> None:
    from workers.omr.omrchecker_render import render_marker_sheet
    from workers.omr.reader import read_gray

    sheet = load_omrchecker_template(SAMPLE)
    page = render_marker_sheet(sheet.template)
    # 0.4 x: bubbles 12 px across on a page 540 px wide, about 65 dpi if it were A4.
    small = np.asarray(cv2.resize(page, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA), np.uint8)
    reading = read_gray(small, sheet.template)
    assert all(v == [] for v in reading.answers.values())
    tiny = np.asarray(cv2.resize(page, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA), np.uint8)
    with pytest.raises(OmrError) as info:
        read_gray(tiny, sheet.template)  # 4.5 px bubbles: too few pixels to judge
    assert info.value.code == "RESOLUTION_TOO_LOW"


def test_markers_a_few_per_cent_off_the_omrchecker_frame_are_stretched_onto_it() -> None:
    from workers.omr.omrchecker_render import render_marker_sheet
    from workers.omr.reader import read_gray

    sheet = load_omrchecker_template(SAMPLE)
    page = render_marker_sheet(sheet.template)
    # Printed 8 % wider than the template's frame, as OMRChecker templates often are.
    wide = np.asarray(cv2.resize(page, None, fx=1.08 * 0.6, fy=0.6, interpolation=cv2.INTER_AREA), np.uint8)
    reading = read_gray(wide, sheet.template)
    assert all(v == [] for v in reading.answers.values())


@pytest.mark.parametrize("share", [0.2, 0.26])
def test_a_pen_stroke_through_a_bubble_goes_to_review_not_blank(share: float) -> None:
    # A thin dark line down the middle of q5's C: a person sees something there. It
    # covers a fifth of the bubble whatever its size (4 and 5.2 px of half size here),
    # under the midpoint, and only the one bubble standing out in its row shows it.
    from workers.omr.reader import read_gray

    t = convert_template(_plain()).template
    marks = {"roll1": ["4"], "roll2": ["0"], "roll3": ["7"], "q1": ["B"], "q3": ["D"], "q4": ["A"], "agree": ["no"]}
    page = _draw(t.fields, marks, (600, 800))
    x, y = t.fields[[f.label for f in t.fields].index("q5")].centres[2]
    cv2.line(page, (round(2 * x), round(2 * y - 16)), (round(2 * x), round(2 * y + 16)), 40, 6)
    small = np.asarray(cv2.resize(page, None, fx=share, fy=share, interpolation=cv2.INTER_AREA), np.uint8)
    reading = read_gray(small, t).to_dict()
    assert reading["answers"]["q5"] == []
    assert reading["review"] == ["q5"]
    # The same sheet without the stroke reads as it is, nothing flagged.
    clean = np.asarray(
        cv2.resize(_draw(t.fields, marks, (600, 800)), None, fx=share, fy=share, interpolation=cv2.INTER_AREA),
        np.uint8,
    )
    assert read_gray(clean, t).to_dict()["review"] == []


def test_bubbles_under_seven_pixels_across_are_read_and_their_doubtful_fields_sent_to_review() -> None:
    # A copy sent small through a messenger: the smallest bubbles 6.8 px across (a half
    # size of 3.4 px). It was refused under a floor of 7 px (RESOLUTION_TOO_LOW); it is
    # read now, every answer right or in review, and 4.4 px bubbles are still refused.
    from workers.omr.reader import read_gray

    t = convert_template(_plain()).template
    marks = {"roll1": ["4"], "roll2": ["0"], "roll3": ["7"], "q1": ["B"], "q3": ["D"], "q4": ["A"], "agree": ["no"]}
    page = _draw(t.fields, marks, (600, 800))
    # q5's C half filled: a mark a person sees, which a few pixels a bubble show less of.
    (x, y), (w, h) = t.fields[[f.label for f in t.fields].index("q5")].centres[2], (30, 20)
    cv2.ellipse(page, (round(2 * x), round(2 * y)), (round(0.9 * w) - 4, round(0.9 * h) - 4), 0, 90, 270, 30, -1)
    small = np.asarray(cv2.resize(page, None, fx=0.17, fy=0.17, interpolation=cv2.INTER_AREA), np.uint8)
    reading = read_gray(small, t).to_dict()
    want = {f.label: marks.get(f.label, ["C"] if f.label == "q5" else []) for f in t.fields}
    got = {**reading["answers"], **{f"roll{i + 1}": [d] for i, d in enumerate(reading["student_id"])}}
    wrong = {label for label in want if sorted(got.get(label, [])) != want[label] and label not in reading["review"]}
    assert wrong == set()
    tiny = np.asarray(cv2.resize(page, None, fx=0.11, fy=0.11, interpolation=cv2.INTER_AREA), np.uint8)
    with pytest.raises(OmrError) as info:
        read_gray(tiny, t)
    assert info.value.code == "RESOLUTION_TOO_LOW"
