"""The phone-photo profile of the corpus generator, and the reader's photo mode on it."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.omr.corpus import fill_sheet, photograph, photograph_with_corners
from workers.omr.cli import main
from workers.omr.errors import BLUR_OR_SHAKE, NO_SHEET_FOUND, RESOLUTION_TOO_LOW, TOO_DARK, OmrError
from workers.omr.reader import read_sheet
from workers.omr.template import DEFAULT_TEMPLATE, Template


def test_photo_is_a_colour_jpeg_of_the_frame_asked_with_the_sheet_in_perspective(template: Template) -> None:
    rng = random.Random("photo-shape")
    page, _ = fill_sheet(template, rng)
    data, corners = photograph_with_corners(page, rng, frame=(1200, 1600))
    assert data[:3] == b"\xff\xd8\xff"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None
    assert img.shape == (1600, 1200, 3)
    # The sheet is inside the frame and not an axis-aligned rectangle: some corner lies
    # well off the bounding box's corners.
    assert corners.min() >= 0
    assert corners[:, 0].max() <= 1200
    assert corners[:, 1].max() <= 1600
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    assert np.max(np.hypot(*(corners - box).T)) > 20
    # Paper in the middle of the sheet is brighter than the desk in the frame's corners.
    middle = img[tuple(np.round(corners.mean(axis=0)[::-1]).astype(int))].astype(int)
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(corners).astype(np.int32), 1)
    desk = img[mask == 0].mean(axis=0)
    assert middle.sum() > desk.sum() + 100
    # A colour cast: the channels are not equal, as they would be in a grey picture.
    assert np.abs(img[mask == 1].mean(axis=0) - img[mask == 1].mean()).max() > 2


def test_photo_generator_is_replayable_from_its_seed(template: Template) -> None:
    page, _ = fill_sheet(template, random.Random(5))
    a = photograph(page, random.Random(6), frame=(600, 800))
    b = photograph(page, random.Random(6), frame=(600, 800))
    assert a == b


def test_gentle_photos_read_with_every_answer_right_or_flagged(template: Template, tmp_path: Path) -> None:
    truths = {}
    for i in range(3):
        rng = random.Random(f"gentle:{i}")
        page, truth = fill_sheet(template, rng)
        (tmp_path / f"p{i}.jpg").write_bytes(photograph(page, rng, max_tilt=10, frame=(2250, 3000)))
        truths[f"p{i}.jpg"] = truth
    out = tmp_path / "out.json"
    rc = main(["read", "--mode", "photo", "--template", str(DEFAULT_TEMPLATE), "--out", str(out), str(tmp_path)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert rc == 0, result
    assert set(result) == set(truths)
    for name, truth in truths.items():
        entry = result[name]
        for label, values in entry["answers"].items():
            assert tuple(values) == truth.answers[label] or label in entry["review"], (name, label)
        assert entry["student_id"] == truth.student_id or "student_id" in entry["review"]
    # --photo is the same as --mode photo.
    alias = tmp_path / "alias.json"
    main(["read", "--photo", "--template", str(DEFAULT_TEMPLATE), "--out", str(alias), str(tmp_path / "p0.jpg")])
    assert json.loads(alias.read_text(encoding="utf-8"))["p0.jpg"] == result["p0.jpg"]


#: Sheets of the photo bench (bench/omr_photo_accuracy.py, seed "photo") that the reader
#: once refused, one per cause: 20 a blob on the desk made the biggest marker rectangle
#: (so did 23, 40, 55, 97 and 99); 31 the markers differ in size by more than the scan's
#: 0.6 (perspective and shadow; 29 too); 35 the sheet comes to 85 dpi, under the scan
#: reader's 90 (71 too); 188 the hollow marker's hole grows on the threshold, so it fills
#: under 60 % of its upright bounding box. Four photos keep the test short; the bench
#: measures the targets on hundreds.
ONCE_REFUSED = (20, 31, 35, 188)


def test_photos_meet_the_accuracy_targets_counted_over_every_photo(template: Template) -> None:
    answers = right = flagged = silent = ids_right = 0
    for i in ONCE_REFUSED:
        rng = random.Random(f"photo:{i}")
        page, truth = fill_sheet(template, rng)
        reading = read_sheet(photograph(page, rng), template, photo=True)  # a refusal fails the test
        for q in reading.questions:
            answers += 1
            wrong = tuple(q.values) != truth.answers[q.label]
            right += not wrong
            flagged += q.review
            silent += wrong and not q.review
        ids_right += reading.student_id == truth.student_id
    total = len(ONCE_REFUSED) * len(template.questions)
    assert answers == total
    assert right >= 0.995 * total
    assert silent == 0
    assert flagged <= 0.02 * total
    assert ids_right >= 0.99 * len(ONCE_REFUSED)


def _photo(template: Template, seed: str, *, frame: tuple[int, int] = (1125, 1500), blank: bool = False) -> bytes:
    rng = random.Random(seed)
    page, _ = fill_sheet(template, rng)
    if blank:
        page = np.ones_like(page)  # paper with nothing printed on it
    return photograph(page, rng, frame=frame)


def _refusal(data: bytes, template: Template) -> str:
    with pytest.raises(OmrError) as info:
        read_sheet(data, template, photo=True)
    return info.value.code


def _shaken(data: bytes, length: float) -> bytes:
    """The photo taken with a shaking hand: a line blur of ``length`` px, diagonal."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    n = math.ceil(length) | 1
    kernel = np.zeros((n, n), np.float32)
    cv2.line(kernel, (0, 0), (n - 1, n - 1), 1.0, 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", cv2.filter2D(img, -1, kernel / kernel.sum()), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(buf)


def _darkened(data: bytes, gain: float) -> bytes:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    ok, buf = cv2.imencode(".jpg", np.clip(img * gain, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(buf)


def test_photo_refusals_say_why(template: Template) -> None:
    data = _photo(template, "refuse")
    assert read_sheet(data, template, photo=True).questions  # the photo itself reads
    # A shaken photo: the sheet is found but its edges are smeared over a bubble radius,
    # and (stronger) not even found, the whole frame smeared. A little shake still reads.
    assert read_sheet(_shaken(data, 4), template, photo=True).questions
    assert _refusal(_shaken(data, 6), template) == BLUR_OR_SHAKE
    assert _refusal(_shaken(data, 16), template) == BLUR_OR_SHAKE
    # Too dark: the sheet is found but its paper is dark grey; or nothing is found at all.
    assert _refusal(_darkened(data, 0.25), template) == TOO_DARK
    assert _refusal(_darkened(data, 0.08), template) == TOO_DARK
    # The sheet is found, but at about 40 dpi.
    assert _refusal(_photo(template, "refuse", frame=(600, 800)), template) == RESOLUTION_TOO_LOW
    # Paper with no sheet printed on it.
    assert _refusal(_photo(template, "refuse", blank=True), template) == NO_SHEET_FOUND
