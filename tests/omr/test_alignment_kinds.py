"""Sheets without corner markers: aligned by the page's edges, by the picture's own edges,
by a reference picture of the blank card, or by a track of timing marks.

Every sheet here is drawn in the test (numpy / OpenCV): a page with bubble outlines, a
few filled bubbles, a line of text, and - for the timing kind - a row of solid bars down
its left edge. It is then "scanned" (turned, scaled, shifted, upside down) or
"photographed" (perspective, on a dark desk).
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import pytest

from workers.omr.align import align
from workers.omr.errors import OmrError
from workers.omr.template import AlignmentSpec, Template, load_template

W, H = 1000, 1400
RADIUS = 16
TRACK: dict[str, Any] = {"first": [40, 420], "step": [0, 60], "count": 12, "size": [34, 14]}


def _template(kind: str, **options: Any) -> Template:
    data: dict[str, Any] = {
        "format": "academy-omr-template/1",
        "name": f"plain-{kind}",
        "page": {"width": W, "height": H, "dpi": 120},
        "marker": {"size": 40, "inset": 10},
        "bubble": {"radius": RADIUS},
        "choices": ["1", "2", "3", "4", "5"],
        "question_blocks": [
            {"first": 1, "count": 12, "origin": [170, 420], "choice_gap": 56, "row_gap": 60},
            {"first": 13, "count": 12, "origin": [600, 420], "choice_gap": 56, "row_gap": 60},
        ],
        "alignment": {"kind": kind, **copy.deepcopy(options)},
    }
    return load_template(data)


def _marks(template: Template) -> dict[str, list[str]]:
    """One mark per question, by a fixed rule (every fifth blank), so the layout is lopsided."""
    out: dict[str, list[str]] = {}
    for i, q in enumerate(template.questions):
        out[q.label] = [] if i % 5 == 3 else [q.values[(i * 3) % len(q.values)]]
    return out


def _page(template: Template, marks: dict[str, list[str]], *, track: bool = False) -> np.ndarray:
    """The sheet as printed and filled in, template pixels, greyscale."""
    page = np.full((H, W), 250, np.uint8)
    cv2.putText(page, "MONTHLY TEST  ANSWER CARD", (150, 140), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 30, 4)
    cv2.putText(page, "Name ______  Class __", (150, 240), cv2.FONT_HERSHEY_SIMPLEX, 1.1, 40, 2)
    cv2.putText(page, "Use a dark pen. Fill the bubble.", (150, 320), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 60, 2)
    cv2.rectangle(page, (120, 380), (960, 1160), 80, 2)
    for q in template.questions:
        cv2.putText(page, q.label, (round(q.centres[0][0]) - 70, round(q.centres[0][1]) + 8), 0, 0.7, 40, 2)
        for value, (x, y) in zip(q.values, q.centres, strict=True):
            cv2.circle(page, (round(x), round(y)), RADIUS, 90, 2, cv2.LINE_AA)
            if value in marks[q.label]:
                cv2.circle(page, (round(x), round(y)), RADIUS - 3, 25, -1, cv2.LINE_AA)
    if track:
        for i in range(TRACK["count"]):
            cx, cy = TRACK["first"][0], TRACK["first"][1] + i * TRACK["step"][1]
            w, h = TRACK["size"]
            cv2.rectangle(page, (cx - w // 2, cy - h // 2), (cx + w // 2, cy + h // 2), 10, -1)
    return page


def _scan(
    page: np.ndarray, *, angle: float, scale: float, upside_down: bool, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A flatbed scan: the page turned and scaled onto a white bed, blurred, noisy.
    Returns the picture and the 3x3 page -> picture transform."""
    turn = angle + (180 if upside_down else 0)
    out_w, out_h = round(W * scale) + 160, round(H * scale) + 160
    m = cv2.getRotationMatrix2D((W / 2, H / 2), turn, scale)
    m[:, 2] += np.array([out_w / 2 - W / 2, out_h / 2 - H / 2])
    img = cv2.warpAffine(page, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=245)
    img = cv2.GaussianBlur(img, (0, 0), 0.8)
    noise = np.random.default_rng(seed).normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8), np.vstack([m, [0, 0, 1]])


def _photo(page: np.ndarray, *, upside_down: bool) -> tuple[np.ndarray, np.ndarray]:
    """A phone photo of the page lying on a dark desk: perspective, the page smaller."""
    src = np.array([(0, 0), (W, 0), (W, H), (0, H)], np.float32)
    dst = np.array([(260, 170), (1010, 215), (1080, 1290), (190, 1240)], np.float32)
    if upside_down:
        dst = np.roll(dst, 2, axis=0)
    m = cv2.getPerspectiveTransform(src, dst)
    desk = np.full((1500, 1300), 60, np.uint8)
    desk[::7, :] = 75  # wood grain
    img = cv2.warpPerspective(page, m, (1300, 1500), dst=desk.copy(), borderMode=cv2.BORDER_TRANSPARENT)
    return cv2.GaussianBlur(img, (0, 0), 1.0), m.astype(np.float64)


def _max_error(template: Template, found: np.ndarray, truth: np.ndarray) -> float:
    """How far (in bubble radii) the alignment puts the bubbles from where they are."""
    pts = np.array([c for f in template.fields for c in f.centres], np.float64).reshape(-1, 1, 2)
    a = cv2.perspectiveTransform(pts, found).reshape(-1, 2)
    b = cv2.perspectiveTransform(pts, truth).reshape(-1, 2)
    scale = math.sqrt(abs(np.linalg.det(truth[:2, :2])))
    return float(np.max(np.hypot(*(a - b).T)) / (RADIUS * scale))


def reference_template(*, affine: bool = False) -> Template:
    """The plain card aligned by a picture of itself left blank (OMRChecker's
    ``FeatureBasedAlignment``; ``affine``: its ``2d``)."""
    probe = _template("none")
    ok, png = cv2.imencode(".png", _page(probe, {q.label: [] for q in probe.questions}))
    assert ok
    return replace(probe, alignment=AlignmentSpec("reference", {"reference": bytes(png), "2d": affine}))


def _read_answers(img: np.ndarray, template: Template, *, photo: bool = False) -> dict[str, list[str]]:
    from workers.omr.reader import read_gray

    return read_gray(img, template, photo=photo).answers


# --- page edges (OMRChecker CropPage) ----------------------------------------------------------


@pytest.mark.parametrize("upside_down", [False, True], ids=["upright", "upside_down"])
def test_a_sheet_without_markers_photographed_on_a_desk_is_aligned_by_its_page_edges(upside_down: bool) -> None:
    t = _template("page", morphKernel=[10, 10])
    marks = _marks(t)
    img, truth = _photo(_page(t, marks), upside_down=upside_down)
    alignment = align(img, t)
    assert alignment.rotation == (180 if upside_down else 0)
    assert _max_error(t, alignment.homography, truth) < 0.25
    assert _read_answers(img, t) == marks


def test_a_photo_whose_page_runs_off_the_picture_sends_every_field_to_review() -> None:
    # Only the part of the page in view is found, so the template is squashed onto it:
    # nothing read there may go out unchecked.
    from workers.omr.reader import read_gray

    t = _template("page", morphKernel=[10, 10])
    marks = _marks(t)
    img, _ = _photo(_page(t, marks), upside_down=False)
    whole = read_gray(img, t)
    assert whole.alignment.runs_off == ""
    assert whole.review == []
    cut = read_gray(np.ascontiguousarray(img[:1120]), t)  # the page's bottom fifth out of the picture
    assert cut.alignment.runs_off == "bottom"
    assert set(cut.review) >= {q.label for q in t.questions}


def test_a_page_laid_in_a_scanners_corner_is_read_as_found() -> None:
    # Two sides on the picture's edges: the page starts at the corner of the glass.
    from workers.omr.reader import read_gray

    t = _template("page", morphKernel=[10, 10])
    marks = _marks(t)
    bed = np.full((H + 300, W + 250), 40, np.uint8)
    bed[:H, :W] = _page(t, marks)
    reading = read_gray(bed, t)
    assert reading.alignment.runs_off == ""
    assert reading.answers == marks


def test_a_bright_hand_over_a_corner_of_the_page_does_not_move_its_edges() -> None:
    t = _template("page")
    img, truth = _photo(_page(t, _marks(t)), upside_down=False)
    cv2.circle(img, (250, 150), 160, 235, -1)  # a pale hand over the top-left corner
    alignment = align(img, t, photo=True)
    assert alignment.rotation == 0
    assert _max_error(t, alignment.homography, truth) < 0.35


def test_a_scan_cropped_to_the_page_is_aligned_by_the_picture_edges_when_no_page_stands_out() -> None:
    t = _template("page")
    marks = _marks(t)
    page = _page(t, marks)
    alignment = align(page, t)
    assert alignment.rotation == 0
    assert _max_error(t, alignment.homography, np.eye(3)) < 0.1


# --- no preprocessor: the picture is the page ----------------------------------------------------


def test_a_picture_already_cropped_to_the_page_reads_upside_down_too() -> None:
    t = _template("none")
    marks = _marks(t)
    page = np.asarray(cv2.resize(_page(t, marks), (800, 1120), interpolation=cv2.INTER_AREA), np.uint8)
    flipped = np.ascontiguousarray(page[::-1, ::-1])
    upright = align(page, t)
    assert upright.rotation == 0
    assert _max_error(t, upright.homography, np.diag([0.8, 0.8, 1.0])) < 0.1
    turned = align(flipped, t)
    assert turned.rotation == 180
    assert _read_answers(flipped, t) == marks


def test_a_scan_cropped_off_the_template_frame_is_put_back_on_its_printed_bubbles() -> None:
    # The scanner cropped 12 px more on the left and 10 px more at the top than the
    # template assumes: every bubble is that far off where the picture's edges put it.
    t = _template("none")
    marks = _marks(t)
    page = _page(t, marks)
    shifted = np.full_like(page, 250)
    shifted[:-10, :-12] = page[10:, 12:]
    truth = np.array([[1.0, 0, -12], [0, 1.0, -10], [0, 0, 1]])
    alignment = align(shifted, t)
    assert _max_error(t, alignment.homography, truth) < 0.25
    assert _read_answers(shifted, t) == marks


# --- a reference picture of the blank card (OMRChecker FeatureBasedAlignment) ---------------------


@pytest.mark.parametrize("affine", [False, True], ids=["homography", "2d"])
def test_a_turned_scan_is_aligned_to_a_reference_picture_of_the_blank_card(affine: bool) -> None:
    t = reference_template(affine=affine)
    marks = _marks(t)
    img, truth = _scan(_page(t, marks), angle=7, scale=0.85, upside_down=True, seed=3)
    alignment = align(img, t)
    assert alignment.rotation == 180
    assert _max_error(t, alignment.homography, truth) < 0.25
    assert _read_answers(img, t) == marks


@pytest.mark.parametrize(("affine", "angle", "seed"), [(True, 3, 1), (False, 2, 0)], ids=["2d", "homography"])
def test_a_small_scan_whose_features_sit_in_its_heading_is_aligned_to_the_reference_with_one_scale(
    affine: bool, angle: float, seed: int
) -> None:
    # Half size and JPEG: the bubbles, hundreds alike, match nothing for sure, so the
    # pairs come from the heading's text. A scale (an affine map) or a perspective (a
    # homography) fitted down the page from them alone came out a bubble and more off
    # at the foot of the page: 8 answers wrong, 6 of them unflagged, on the homography.
    t = reference_template(affine=affine)
    marks = _marks(t)
    scan, truth = _scan(_page(t, marks), angle=angle, scale=0.5, upside_down=False, seed=seed)
    ok, jpeg = cv2.imencode(".jpg", scan, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    img = np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE), np.uint8)
    assert _max_error(t, align(img, t).homography, truth) < 0.25
    assert _read_answers(img, t) == marks


def test_a_phone_photo_is_aligned_to_the_reference_in_perspective_even_when_the_template_says_2d() -> None:
    t = reference_template(affine=True)
    img, truth = _photo(_page(t, _marks(t)), upside_down=False)
    alignment = align(img, t, photo=True)
    assert _max_error(t, alignment.homography, truth) < 0.3


@pytest.mark.parametrize(
    ("upside_down", "size", "quality"),
    [(False, 0.5, 70), (False, 0.5, 90), (True, 1.0, 70), (True, 0.6, 70)],
    ids=["half-size", "half-size-jpeg90", "upside-down", "upside-down-small"],
)
def test_a_phone_photo_is_aligned_to_the_reference_from_the_best_of_its_starts(
    upside_down: bool, size: float, quality: int
) -> None:
    # The homography fitted to the heading's features alone leaves the page's foot a row
    # and more off, beyond what the grey-level refinement reaches from it: 2 of these
    # photos were refused and 2 read with 13 and 22 answers wrong. That homography, a
    # start of one scale and the page's edges are each refined, and the start whose grey
    # levels then match the reference best is kept.
    t = reference_template()
    marks = _marks(t)
    photo, truth = _photo(_page(t, marks), upside_down=upside_down)
    small = cv2.resize(photo, None, fx=size, fy=size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    img = np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE), np.uint8)
    assert _max_error(t, align(img, t, photo=True).homography, np.diag([size, size, 1.0]) @ truth) < 0.3
    assert _read_answers(img, t, photo=True) == marks


def test_a_sheet_that_shares_nothing_with_the_reference_is_not_found() -> None:
    probe = _template("none")
    ok, png = cv2.imencode(".png", _page(probe, _marks(probe)))
    assert ok
    t = replace(_template("none"), alignment=AlignmentSpec("reference", {"reference": bytes(png)}))
    noise = np.random.default_rng(1).integers(0, 255, (1200, 900), dtype=np.uint8)
    with pytest.raises(OmrError) as info:
        align(np.asarray(cv2.GaussianBlur(noise, (0, 0), 6), np.uint8), t)
    assert info.value.code == "NO_SHEET_FOUND"


# --- a track of timing marks -------------------------------------------------------------------


@pytest.mark.parametrize("upside_down", [False, True], ids=["upright", "upside_down"])
def test_a_scanned_sheet_is_aligned_by_its_timing_marks(upside_down: bool) -> None:
    t = _template("timing", tracks=[TRACK])
    marks = _marks(t)
    img, truth = _scan(_page(t, marks, track=True), angle=2.5, scale=0.9, upside_down=upside_down, seed=5)
    alignment = align(img, t)
    assert alignment.rotation == (180 if upside_down else 0)
    assert _max_error(t, alignment.homography, truth) < 0.25
    assert _read_answers(img, t) == marks


def test_two_timing_tracks_down_the_same_edge_align_a_scan() -> None:
    # The student-number rows and the question rows have their own spacing, so a card
    # prints two runs of marks down one edge: all on one line.
    upper = {**TRACK, "count": 5}
    lower = {**TRACK, "first": [40, 420 + 5 * 60], "count": 7}
    t = _template("timing", tracks=[upper, lower])
    marks = _marks(t)
    img, truth = _scan(_page(t, marks, track=True), angle=-2, scale=1.1, upside_down=True, seed=8)
    alignment = align(img, t)
    assert alignment.rotation == 180
    assert _max_error(t, alignment.homography, truth) < 0.25


def test_a_phone_photo_of_a_timing_mark_sheet_is_aligned_in_photo_mode() -> None:
    # Perspective spaces the marks unevenly; the sheet is still found (by its edges).
    t = _template("timing", tracks=[TRACK])
    marks = _marks(t)
    img, truth = _photo(_page(t, marks, track=True), upside_down=True)
    alignment = align(img, t, photo=True)
    assert alignment.rotation == 180
    assert _max_error(t, alignment.homography, truth) < 0.35


def test_a_sheet_without_its_timing_marks_is_not_found() -> None:
    t = _template("timing", tracks=[TRACK])
    img, _ = _scan(_page(t, _marks(t)), angle=1, scale=0.9, upside_down=False, seed=6)
    with pytest.raises(OmrError) as info:
        align(img, t)
    assert info.value.code == "NO_SHEET_FOUND"


@pytest.mark.parametrize(
    ("tracks", "message"),
    [
        ([], "alignment.tracks"),
        ([{**TRACK, "count": 2}], "alignment.tracks[0].count"),
        ([{**TRACK, "step": [0, 10]}], "alignment.tracks[0].step"),
        ([{**TRACK, "first": [40, 1300]}], "runs off the page"),
        ([{**TRACK, "size": "big"}], "alignment.tracks[0].size"),
    ],
    ids=["empty", "count", "touching", "off_page", "size"],
)
def test_a_malformed_timing_track_is_template_invalid_naming_the_setting(tracks: list[Any], message: str) -> None:
    with pytest.raises(OmrError) as info:
        _template("timing", tracks=tracks)  # refused when the template is loaded
    assert info.value.code == "TEMPLATE_INVALID"
    assert message in info.value.message


@pytest.mark.parametrize(("upright", "taken"), [(0.29, 0), (0.15, 90)])
def test_a_landscape_frame_over_a_portrait_picture_is_stretched_upright_where_that_shows_clearly_more_bubbles(
    monkeypatch: pytest.MonkeyPatch, upright: float, taken: int
) -> None:
    # A public template drew a portrait scan on a landscape frame (OMRChecker stretches
    # the picture onto pageDimensions). On a dense card scanned a little off, neither
    # sideways turn nor the stretched upright one showed half the template's bubbles
    # (0.11 and 0.29), and the sideways turns, whose shape fits better, were kept and
    # refused. Where neither way shows them, the stretched turns are taken when they
    # show clearly more (page_align.TIE); a hair more is no reason.
    from workers.omr import page_align

    t = _template("none")
    landscape = replace(t, width=t.height, height=t.width)
    picture = np.full((H, W), 250, np.uint8)
    cv2.rectangle(picture, (100, 100), (300, 300), 20, -1)  # some ink, so the page is not blank
    # orient() scores the turns that fit the frame's shape first (sideways: 1, 3), then 0, 2.
    scores = iter([0.11, 0.10, upright, 0.02])
    monkeypatch.setattr(page_align, "layout_score", lambda *_args, **_kw: next(scores))
    monkeypatch.setattr(page_align, "refine_by_print", lambda _gray, _template, alignment: alignment)
    found = page_align.align_frame(picture, landscape)
    assert found[0].rotation == taken
