"""The phone-photo profile of the corpus generator, and the reader's photo mode on it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cv2
import numpy as np

from tests.omr.corpus import fill_sheet, photograph, photograph_with_corners
from workers.omr.cli import main
from workers.omr.template import DEFAULT_TEMPLATE, Template


def test_photo_is_a_colour_jpeg_of_the_frame_asked_with_the_sheet_in_perspective(template: Template) -> None:
    rng = random.Random("photo-shape")
    page, _ = fill_sheet(template, rng)
    data, corners = photograph_with_corners(page, rng, frame=(1200, 1600))
    assert data[:3] == b"\xff\xd8\xff"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
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
