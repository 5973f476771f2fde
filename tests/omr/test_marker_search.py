"""The corner-marker search of an OMRChecker template honours its CropOnMarkers options:
markers printed smaller than ``sheetToMarkerWidthRatio`` says are searched down to the
``marker_rescale_range`` OMRChecker searches (35 % to 100 % of that size by default); and
a marker is ink on paper, never a flat patch whose noise happens to correlate."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.omr import cards as C
from workers.omr import omrchecker_align as oa
from workers.omr.errors import OmrError
from workers.omr.omrchecker import load_omrchecker_template
from workers.omr.reader import read_sheet


def _template(card: C.Card, folder: Path, *, ratio_times: float, options: dict[str, object]) -> Path:
    """The card's template with its marker predicted ``1 / ratio_times`` of its printed size."""
    path = C.write_omrchecker(card, folder, values="digits")
    data = json.loads(path.read_text())
    for step in data["preProcessors"]:
        if step["name"] == "CropOnMarkers":
            step["options"]["sheetToMarkerWidthRatio"] = round(card.width / card.marker_size * ratio_times, 2)
            step["options"].update(options)
    path.write_text(json.dumps(data))
    return path


def _scan(card: C.Card, seed: str) -> bytes:
    sheet = C.fill_card(card, random.Random(seed))
    return C.scan_cropped(sheet.page, random.Random(seed))


def test_markers_printed_at_half_the_size_the_template_predicts_are_found(tmp_path: Path) -> None:
    card = C.red_card()
    scan = _scan(card, "half-size markers")
    right = read_sheet(
        scan, load_omrchecker_template(_template(card, tmp_path / "a", ratio_times=1, options={})).template
    )
    # The template says the marker is twice as wide as it prints (ratio halved).
    half = load_omrchecker_template(_template(card, tmp_path / "b", ratio_times=0.5, options={})).template
    got = read_sheet(scan, half)
    assert got.answers == right.answers
    assert got.student_id == right.student_id


def test_a_rescale_range_that_excludes_the_printed_size_is_honoured(tmp_path: Path) -> None:
    # The same template with OMRChecker's range narrowed to 90-100 %: a marker printed at
    # half the predicted size is outside what the template allows this reader to look for
    # beyond its own range, so the sheet is refused rather than found at a guessed size.
    card = C.red_card()
    scan = _scan(card, "half-size markers")
    narrow = _template(card, tmp_path, ratio_times=0.5, options={"marker_rescale_range": [90, 100]})
    with pytest.raises(OmrError):
        read_sheet(scan, load_omrchecker_template(narrow).template)


def _hollow_marker(size: int) -> np.ndarray:
    marker = np.full((size, size), 255, np.uint8)
    marker[size // 8 : size - size // 8, size // 8 : size - size // 8] = 0
    marker[size * 3 // 8 : size - size * 3 // 8, size * 3 // 8 : size - size * 3 // 8] = 255
    return marker


def _ghost_picture() -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A photo's three square markers, the fourth foreshortened to half its width, and a
    ghost of a marker three grey levels deep on the desk in the fourth's quadrant; and
    the marker's search variants."""
    import cv2

    marker = _hollow_marker(24)
    rng = np.random.default_rng(7)
    picture = np.clip(rng.normal(125, 0.4, (700, 520)), 0, 255).astype(np.float32)
    picture[60:560, 50:470] = 235  # the page
    for x, y in ((80, 90), (420, 90), (420, 530)):
        picture[y - 12 : y + 12, x - 12 : x + 12] = marker
    picture[518:542, 74:86] = cv2.resize(marker, (12, 24), interpolation=cv2.INTER_AREA)
    picture[618:642, 88:112] += (marker.astype(np.float32) - 255) * (3 / 255)
    variants = oa._variants(cv2.imencode(".png", marker)[1].tobytes())
    return np.clip(picture, 0, 255).astype(np.uint8), variants


@pytest.mark.parametrize("coarse", [False, True])
def test_a_marker_seen_at_a_slant_beats_a_faint_ghost_on_the_desk(coarse: bool) -> None:
    # Normalised correlation stretches a flat patch's faint structure to full range, so on
    # a photo a ghost of a marker (show-through, a shadow, JPEG blocks) correlates better
    # than the real marker seen at a slant; so too on the half-size copy a photo's search
    # looks at first.
    picture, variants = _ghost_picture()
    fours = oa._search(picture, variants, 24.0, 0.8, 1.25, 5, coarse=coarse)
    assert fours
    found = fours[0]
    bottom_left = found.centres[3]
    assert abs(bottom_left[0] - 80) < 6, found
    assert abs(bottom_left[1] - 530) < 6, found


def test_the_half_size_first_search_finds_the_centres_and_size_the_full_one_does() -> None:
    # Normalised correlation is local: matched again at full size near the half-size
    # copy's best few, a marker scores exactly as in the whole quadrant's match.
    picture, variants = _ghost_picture()
    full = oa._search(picture, variants, 24.0, 0.8, 1.25, 5)
    coarse = oa._search(picture, variants, 24.0, 0.8, 1.25, 5, coarse=True)
    assert full
    assert coarse
    assert coarse[0].width == full[0].width
    assert np.allclose(coarse[0].centres, full[0].centres, atol=1e-3), (coarse, full)


def test_a_scans_markers_searched_near_every_third_size_are_those_the_full_search_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scan's sizes between the fully searched ones are matched only near those sizes'
    # best few matches: on cards of each marker shape, and on markers printed at half the
    # predicted size (found by the template's wider range), the four centres and the size
    # are the full search's.
    pairs = []
    search = oa._search

    def both(*args: Any, **kwargs: Any) -> Any:
        got = search(*args, **kwargs)
        if kwargs.get("near"):
            # The centres and the size found; the scores differ in the last digits (a
            # part of the picture matched on its own sums in another order).
            full = search(*args, **{**kwargs, "near": False})
            pairs.append(([four[:2] for four in got[:1]], [four[:2] for four in full[:1]]))
        return got

    monkeypatch.setattr(oa, "_search", both)
    for card in (C.red_card(), C.circle_card(), C.corner_card(), C.with_marker(C.red_card(), "hollow")):
        template = load_omrchecker_template(C.write_omrchecker(card, tmp_path / card.name)).template
        for how in ("scan", "cropped"):
            for scan in C.make_cards(card, 1, "near sizes", how=how):
                read_sheet(scan.data, template)
    card = C.red_card()
    half = load_omrchecker_template(_template(card, tmp_path / "half", ratio_times=0.5, options={})).template
    read_sheet(_scan(card, "half-size markers"), half)
    assert len(pairs) >= 10
    assert all(near == full for near, full in pairs), pairs


def test_four_markers_a_flatbed_could_not_have_scanned_are_told_from_a_turned_sheet(tmp_path: Path) -> None:
    # A scan's markers found as a photo's are kept only where they make a parallelogram:
    # a flatbed turns, shifts and scales a sheet, it does not bend its rectangle. The same
    # four corners with one of them a marker and a half off (a look-alike) are not.
    import cv2

    from workers.omr.align import SCAN_MAX_SKEW, Alignment, _off_parallel

    template = load_omrchecker_template(C.write_omrchecker(C.red_card(), tmp_path)).template
    frame = np.array(template.marker_centres, np.float32)
    turn = cv2.getRotationMatrix2D((600.0, 800.0), 3.0, 0.8)
    turned = cv2.transform(frame[None], turn)[0]
    off = turned.copy()
    off[1] += (1.5 * template.marker_size * 0.8, 0.0)
    for corners, within in ((turned, True), (off, False)):
        h = cv2.getPerspectiveTransform(frame, corners).astype(np.float64)
        alignment = Alignment(h, 0, 0.8, 20.0, 240.0)
        assert (_off_parallel(alignment, template) <= SCAN_MAX_SKEW) is within


def _target_card(tmp_path: Path, threshold: float | None) -> tuple[Path, bytes, dict[str, str]]:
    """A scanned card whose corner markers print as three concentric rings, with an
    OMRChecker template whose marker picture is their outer ring alone: the print matches
    the picture between OMRChecker's threshold and this reader's own."""
    import cv2

    size, centres, diameter = (1000, 1300), [(100, 100), (900, 100), (900, 1200), (100, 1200)], 60
    page = np.full((size[1], size[0]), 250, np.uint8)
    for x, y in centres:
        for r, th in ((26, 4), (16, 4), (6, -1)):
            cv2.circle(page, (x, y), r, 20, th, cv2.LINE_AA)
    ring = np.full((diameter, diameter), 255, np.uint8)
    cv2.circle(ring, (diameter // 2, diameter // 2), 26, 0, 5)
    (tmp_path / "omr_marker.png").write_bytes(cv2.imencode(".png", ring)[1].tobytes())
    marks = {f"q{i}": "ABCD"[i % 4] for i in range(1, 11)}
    for i in range(1, 11):
        for j in range(4):
            centre = (100 + 100 + 15 + 50 * j, 100 + 200 + 15 + 60 * (i - 1))
            cv2.circle(page, centre, 15, 90, 2, cv2.LINE_AA)
            if "ABCD"[j] == marks[f"q{i}"]:
                cv2.circle(page, centre, 12, 35, -1, cv2.LINE_AA)
    options: dict[str, Any] = {"relativePath": "omr_marker.png", "sheetToMarkerWidthRatio": (800 + diameter) / diameter}
    if threshold is not None:
        options["min_matching_threshold"] = threshold
    template = {
        "pageDimensions": [800, 1100],
        "bubbleDimensions": [30, 30],
        "preProcessors": [{"name": "CropOnMarkers", "options": options}],
        "fieldBlocks": {
            "MCQ": {
                "fieldType": "QTYPE_MCQ4",
                "fieldLabels": ["q1..10"],
                "origin": [100, 200],
                "bubblesGap": 50,
                "labelsGap": 60,
            }
        },
    }
    (tmp_path / "template.json").write_text(json.dumps(template), encoding="utf-8")
    return tmp_path / "template.json", cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(), marks


def test_markers_matching_their_picture_only_loosely_are_found_at_omrcheckers_own_threshold(tmp_path: Path) -> None:
    path, scan, marks = _target_card(tmp_path, None)
    reading = read_sheet(scan, load_omrchecker_template(path).template)
    assert reading.answers == {label: [value] for label, value in marks.items()}
    # A template that names its threshold is taken at its word.
    (tmp_path / "strict").mkdir()
    strict, scan, _ = _target_card(tmp_path / "strict", 0.45)
    with pytest.raises(OmrError) as info:
        read_sheet(scan, load_omrchecker_template(strict).template)
    assert info.value.code == "NO_SHEET_FOUND"


def test_a_photos_fours_elsewhere_that_score_nearly_as_well_go_to_the_layout_with_the_best() -> None:
    corners = [(80.0, 90.0), (420.0, 90.0), (420.0, 530.0), (80.0, 530.0)]
    bubbles = [(200.0, 250.0), (300.0, 255.0), (310.0, 400.0), (190.0, 395.0)]
    best = oa.MarkerFour(bubbles, 9.0, 3.82)
    fours = [
        best,
        oa.MarkerFour([(x + 2, y + 1) for x, y in bubbles], 10.5, 3.80),  # the same four, a size up
        oa.MarkerFour(corners, 19.7, 3.77),  # the markers
        oa.MarkerFour([(x, y + 40) for x, y in bubbles], 9.0, 3.40),  # far weaker
    ]
    assert oa._rivals(fours) == [best, fours[2]]
    assert oa._rivals(fours[:1]) == [best]


def _exam_paper(*, markers: bool) -> tuple[np.ndarray, tuple[Any, ...]]:
    """A 500 x 350 search copy of an exam paper: a dense grid of bubbles, every third one
    filled, under four ring markers in the top 40 % of the page (``markers``), or none."""
    import cv2

    ring = np.full((40, 40), 255, np.uint8)
    cv2.circle(ring, (20, 20), 17, 0, 4)
    cv2.circle(ring, (20, 20), 7, 0, -1)
    ok, png = cv2.imencode(".png", ring)
    assert ok
    variants = oa._variants(bytes(png))
    picture = np.full((500, 350), 240, np.uint8)
    for i, y in enumerate(range(60, 190, 14)):
        for j, x in enumerate(range(50, 300, 14)):
            cv2.circle(picture, (x, y), 5, 40, -1 if (i + j) % 3 == 0 else 1)
    for y in range(230, 480, 12):  # the questions, printed as text below
        cv2.putText(picture, "3. Which holds? A) one B) two", (30, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 30, 1)
    if markers:
        for x, y in ((20, 30), (330, 30), (330, 200), (20, 200)):
            picture[y - 10 : y + 10, x - 10 : x + 10] = cv2.resize(ring, (20, 20), interpolation=cv2.INTER_AREA)
    return picture, variants


def test_four_markers_framing_an_answer_grid_at_the_top_of_a_page_are_found_anywhere_on_the_scan() -> None:
    picture, variants = _exam_paper(markers=True)
    fours = oa._search_anywhere(picture, variants, 20.0, 0.7, 1.45, 7, oa.MIN_MATCH)
    assert fours
    assert np.allclose(fours[0].centres, [(20, 30), (330, 30), (330, 200), (20, 200)], atol=2), fours[0]


def test_filled_bubbles_of_a_dense_grid_are_not_taken_for_markers_looked_for_anywhere() -> None:
    # Looked for anywhere, four filled bubbles make a sheet's corners as well as markers
    # do, and a stretched look takes any aspect: a public 200-question card read through
    # another card's template was read so. A match must pass ANYWHERE_MATCH.
    picture, variants = _exam_paper(markers=False)
    assert oa._search_anywhere(picture, variants, 20.0, 0.7, 1.45, 7, oa.MIN_MATCH) == []


@pytest.mark.parametrize("between", [2, 3, 4])
def test_bullseye_markers_printed_between_two_of_a_photos_sizes_are_matched_near_their_own_size(between: int) -> None:
    # OMRChecker's own marker is a bullseye, and rings match their picture only within a
    # few per cent of their size. A photo's sizes, a fifth apart, passed on either side of
    # such markers printed between two of them, each matched at 0.6 or less, or none at
    # all: a phone photo of a public Turkish card on a patterned tablecloth was refused.
    # A marker that needs it is searched at sizes as close as it matches itself.
    import cv2

    marker = C.marker_picture("rings", 66)
    variants = oa._variants(cv2.imencode(".png", marker)[1].tobytes())
    assert oa.size_tolerance(variants[0].tobytes(), variants[0].shape) < 1.1
    low, high, steps = oa.PHOTO_SCALES
    sizes = np.geomspace(low, high, steps)
    expected = 40.0
    width = round(expected * float(np.sqrt(sizes[between] * sizes[between + 1])))
    rng = np.random.default_rng(3)
    picture = np.clip(rng.normal(120, 6, (700, 520)), 0, 255).astype(np.uint8)
    picture[60:640, 40:480] = 232  # the page on a desk
    drawn = cv2.resize(cv2.resize(marker, (4 * width, 4 * width)), (width, width), interpolation=cv2.INTER_AREA)
    centres = [(80, 100), (440, 100), (440, 600), (80, 600)]
    for x, y in centres:
        picture[y - width // 2 : y - width // 2 + width, x - width // 2 : x - width // 2 + width] = drawn
    picture = np.asarray(cv2.GaussianBlur(picture, (0, 0), 0.7), np.uint8)
    fours = oa._search(picture, variants, expected, low, high, steps, oa.MIN_MATCH, 0.5, coarse=True, fine=True)
    assert fours
    assert np.allclose(fours[0].centres, centres, atol=2), fours[0]
    assert fours[0].score / 4 >= 0.75  # each marker matched at about its own size


def test_a_marker_that_matches_itself_over_a_wide_range_of_sizes_keeps_the_searchs_own_steps() -> None:
    import cv2

    for shape in ("solid", "hollow", "circle", "corner"):
        variants = oa._variants(cv2.imencode(".png", C.marker_picture(shape, 66))[1].tobytes())
        assert oa.size_steps(variants[0], *oa.PHOTO_SCALES) == oa.PHOTO_SCALES[2], shape
        assert oa.size_steps(variants[0], *oa.SCAN_SCALES) == oa.SCAN_SCALES[2], shape
