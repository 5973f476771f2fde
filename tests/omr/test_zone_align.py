"""Sheets found by dots and timing tracks in zones (OMRChecker v2's FOUR_DOTS and TWO_LINES)."""

from __future__ import annotations

import copy
import random
from typing import Any

import cv2
import numpy as np
import pytest

from workers.omr.errors import OmrError
from workers.omr.omrchecker import convert_template
from workers.omr.reader import read_sheet
from workers.omr.template import Template, TemplateError

#: the page as scanned (width, height) and the frame the dots' centres or the tracks'
#: outer edges span on it: the template's corners.
PAGE = (900, 1200)
FRAME = (40, 150, 860, 1050)
BUBBLE = 24


def _template(kind: str, zones: dict[str, Any], **options: Any) -> dict[str, Any]:
    x0, y0, x1, y1 = FRAME
    return {
        "templateDimensions": [x1 - x0, y1 - y0],
        "bubbleDimensions": [BUBBLE, BUBBLE],
        "processingImageShape": [PAGE[1], PAGE[0]],
        "preProcessors": [{"name": "CropOnMarkers", "options": {"type": kind, **zones, **options}}],
        "fieldBlocks": {
            "Left": {
                "fieldDetectionType": "BUBBLES_THRESHOLD",
                "bubbleFieldType": "QTYPE_MCQ4",
                "fieldLabels": ["q1..12"],
                "origin": [90, 120],
                "bubblesGap": 42,
                "labelsGap": 56,
            },
            "Right": {
                "fieldDetectionType": "BUBBLES_THRESHOLD",
                "bubbleFieldType": "QTYPE_MCQ5",
                "fieldLabels": ["q13..24"],
                "origin": [470, 120],
                "bubblesGap": 42,
                "labelsGap": 56,
            },
        },
    }


def _zone(x: float, y: float, w: float, h: float, margin: float = 12) -> dict[str, Any]:
    return {
        "origin": [x, y],
        "dimensions": [w, h],
        "margins": dict.fromkeys(("top", "right", "bottom", "left"), margin),
    }


TRACKS = {"leftLine": _zone(35, 140, 30, 920), "rightLine": _zone(835, 140, 30, 920)}
ACROSS = {"topLine": _zone(30, 145, 840, 30), "bottomLine": _zone(30, 1025, 840, 30)}
DOTS = {
    "topLeftDot": _zone(15, 125, 50, 50),
    "topRightDot": _zone(835, 125, 50, 50),
    "bottomRightDot": _zone(835, 1025, 50, 50),
    "bottomLeftDot": _zone(15, 1025, 50, 50),
}


def _page(template: Template, marks: dict[str, int], *, kind: str) -> np.ndarray:
    """The printed sheet with ``marks`` (label -> bubble) filled, on the scanned page."""
    page = np.full((PAGE[1], PAGE[0]), 250, np.uint8)
    x0, y0, x1, y1 = FRAME
    if kind == "TWO_LINES_HORIZONTAL":
        for x in range(x0, x1 - 8, 20):
            cv2.rectangle(page, (x, y0), (x + 9, y0 + 18), 20, -1)
            cv2.rectangle(page, (x, y1 - 18), (x + 9, y1), 20, -1)
        cv2.rectangle(page, (x1 - 9, y0), (x1, y0 + 18), 20, -1)
        cv2.rectangle(page, (x1 - 9, y1 - 18), (x1, y1), 20, -1)
    elif kind == "TWO_LINES":
        for y in range(y0, y1 - 8, 20):  # a timing track: a dash every 20 px, the last one closing it
            cv2.rectangle(page, (x0, y), (x0 + 18, y + 9), 20, -1)
            cv2.rectangle(page, (x1 - 18, y), (x1, y + 9), 20, -1)
        cv2.rectangle(page, (x0, y1 - 9), (x0 + 18, y1), 20, -1)
        cv2.rectangle(page, (x1 - 18, y1 - 9), (x1, y1), 20, -1)
    else:
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
            cv2.rectangle(page, (x - 9, y - 9), (x + 9, y + 9), 20, -1)
    cv2.putText(page, "MONTHLY TEST", (300, 110), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 60, 2)
    for f in template.fields:
        for i, (cx, cy) in enumerate(f.centres):
            centre = (round(x0 + cx), round(y0 + cy))
            cv2.circle(page, centre, BUBBLE // 2, 90, 2, cv2.LINE_AA)
            if marks.get(f.label) == i:
                cv2.circle(page, centre, BUBBLE // 2 - 2, 35, -1, cv2.LINE_AA)
    return page


def _scan(page: np.ndarray, rng: random.Random, *, upside_down: bool = False) -> bytes:
    """A flatbed's copy: a hair turned and shifted, a little noise, JPEG."""
    turn = rng.uniform(-0.8, 0.8) + (180 if upside_down else 0)
    warp = cv2.getRotationMatrix2D((PAGE[0] / 2, PAGE[1] / 2), turn, rng.uniform(0.98, 1.02))
    warp[:, 2] += np.array((rng.uniform(-6, 6), rng.uniform(-6, 6)), np.float64)
    scanned = cv2.warpAffine(page, warp, PAGE, borderValue=250).astype(np.float32)
    scanned += np.random.default_rng(rng.randrange(1000)).normal(0, 3, scanned.shape)
    ok, data = cv2.imencode(".jpg", np.clip(scanned, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 88])
    assert ok
    return data.tobytes()


def _marks(template: Template, rng: random.Random) -> dict[str, int]:
    return {f.label: rng.randrange(len(f.values)) for f in template.fields if rng.random() < 0.8}


@pytest.mark.parametrize(
    ("kind", "zones"), [("TWO_LINES", TRACKS), ("TWO_LINES_HORIZONTAL", ACROSS), ("FOUR_DOTS", DOTS)]
)
@pytest.mark.parametrize("seed", [1, 2])
def test_a_sheet_framed_by_timing_tracks_or_dots_reads_every_answer(kind: str, zones: Any, seed: int) -> None:
    template = convert_template(_template(kind, zones)).template
    assert template.alignment.kind == "zones"
    rng = random.Random(seed)
    marks = _marks(template, rng)
    reading = read_sheet(_scan(_page(template, marks, kind=kind), rng, upside_down=seed == 2), template)
    assert reading.rotation == (180 if seed == 2 else 0)
    expected = {f.label: [f.values[marks[f.label]]] if f.label in marks else [] for f in template.fields}
    assert reading.answers == expected
    assert reading.review == []


def test_outer_corners_of_dots_frame_the_sheet_as_their_corners_do() -> None:
    """With OUTER_CORNERS each dot's outer corner, not its centre, is the frame's corner."""
    x0, y0, x1, y1 = FRAME
    raw = _template("FOUR_DOTS", DOTS, defaultSelector="OUTER_CORNERS")
    raw["templateDimensions"] = [x1 - x0 + 18, y1 - y0 + 18]
    for block in raw["fieldBlocks"].values():
        block["origin"] = [block["origin"][0] + 9, block["origin"][1] + 9]
    by_corners = convert_template(raw).template
    by_centres = convert_template(_template("FOUR_DOTS", DOTS)).template
    marks = _marks(by_centres, random.Random(4))
    ok, png = cv2.imencode(".png", _page(by_centres, marks, kind="FOUR_DOTS"))
    assert ok
    for template, corner in ((by_corners, (x0 - 9, y0 - 9)), (by_centres, (x0, y0))):
        reading = read_sheet(png.tobytes(), template)
        assert reading.answers == {
            f.label: [f.values[marks[f.label]]] if f.label in marks else [] for f in by_centres.fields
        }
        found = cv2.perspectiveTransform(np.array([[(0.0, 0.0)]]), reading.alignment.homography)[0][0]
        assert np.hypot(*(found - corner)) < 3


def test_a_zone_with_no_line_in_it_is_no_sheet_found_naming_the_zone() -> None:
    template = convert_template(_template("TWO_LINES", TRACKS)).template
    page = _page(template, {}, kind="TWO_LINES")
    page[:, PAGE[0] // 2 :] = 250  # the right track was never printed
    with pytest.raises(OmrError) as info:
        read_sheet(_scan(page, random.Random(3)), template)
    assert info.value.code == "NO_SHEET_FOUND"
    assert "rightLine" in info.value.message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda o: o.pop("rightLine"), "rightLine: the layout needs this zone"),
        (lambda o: o["leftLine"].update(dimensions=[0, 900]), "leftLine.dimensions"),
        (lambda o: o.update(defaultSelector="INNER_WIDTHS"), "defaultSelector"),
        (lambda o: o.update(type="THREE_LINES"), "'THREE_LINES' is not supported"),
        (lambda o: o.update(scanZones=[]), "scanZones: custom zones are not supported"),
    ],
)
def test_a_malformed_zone_layout_is_template_invalid_naming_the_setting(change: Any, named: str) -> None:
    raw = copy.deepcopy(_template("TWO_LINES", TRACKS))
    change(raw["preProcessors"][0]["options"])
    with pytest.raises(TemplateError) as info:
        convert_template(raw)
    assert named in info.value.message


def test_a_turned_sheets_tracks_give_the_ends_of_their_outer_edges_not_a_box_round_them() -> None:
    # Turned 2 degrees, a 900 px track's outer edge runs 31 px across: its bounding box
    # would put both ends of it at the box's side.
    template = convert_template(_template("TWO_LINES", TRACKS)).template
    page = _page(template, {}, kind="TWO_LINES")
    warp = cv2.getRotationMatrix2D((PAGE[0] / 2, PAGE[1] / 2), 2.0, 1.0)
    ok, png = cv2.imencode(".png", cv2.warpAffine(page, warp, PAGE, borderValue=250))
    assert ok
    reading = read_sheet(png.tobytes(), template)
    x0, y0, x1, y1 = FRAME
    frame = np.array([[(0.0, 0.0), (x1 - x0, 0.0), (x1 - x0, y1 - y0), (0.0, y1 - y0)]])
    found = cv2.perspectiveTransform(frame, reading.alignment.homography)[0]
    truth = cv2.transform(np.array([[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]], np.float64), warp)[0]
    assert np.abs(found - truth).max() < 3
