"""The learned mark classifier (workers.omr.learned) and the photo reader with it."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.omr.corpus import fill_sheet, photograph
from workers.base import JobInput
from workers.omr.align import align
from workers.omr.classify import (
    CLASSIFIER_SURE,
    REVIEW_BELOW,
    FieldReading,
    classifier_fits,
    combine_field,
    sheet_levels,
)
from workers.omr.learned import MODEL_NAME, model
from workers.omr.learned.crops import CONTEXT, SIZE, context, crops
from workers.omr.processor import OmrGradingProcessor
from workers.omr.reader import read_gray, read_sheet
from workers.omr.render import render_sheet
from workers.omr.sample import sample
from workers.omr.template import Template

ROOT = Path(__file__).resolve().parents[2]
#: generated photos (seeds "learned-test:<i>") whose threshold reading flags at least
#: one light-pencil answer that both readers read right.
PHOTO_SEEDS = (80, 1)


@pytest.fixture(autouse=True)
def _fresh_sessions() -> Any:
    model.reset()
    yield
    model.reset()


def _drawn_sheet(template: Template) -> tuple[np.ndarray, dict[str, int]]:
    """A clean scan with four bubbles of question 1 drawn by hand: which is which."""
    page = render_sheet(template).astype(np.float32) / 255
    q = template.questions[0]
    r = template.bubble_radius

    def disc(i: int, darkness: float, blur: float = 0.0) -> None:
        mask = np.zeros(page.shape, np.float32)
        x, y = q.centres[i]
        cv2.circle(mask, (round(x), round(y)), round(0.95 * r), 1.0, -1, cv2.LINE_AA)
        if blur:
            mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), blur), np.float32)
        page[:] = page * (1 - darkness * mask)

    disc(0, 0.9)  # a solid mark
    disc(2, 0.15, blur=r / 4)  # an erasure: faint and smeared
    # 1, 3 and 4 stay empty
    gray = np.clip(page * 255, 0, 255).astype(np.uint8)
    n_id = sum(len(f.centres) for f in template.id_fields)
    return gray, {"marked": n_id + 0, "empty": n_id + 1, "erased": n_id + 2}


def _sheet_inputs(gray: np.ndarray, template: Template, *, photo: bool = False) -> tuple[np.ndarray, np.ndarray]:
    alignment = align(gray, template, photo=photo)
    samples = sample(gray, template, alignment, spacing=template)
    levels = sheet_levels(samples.fill, samples.index)
    return crops(gray, template, alignment), context(samples.fill, samples.index, levels)


def test_model_file_is_small_and_loads_on_the_cpu() -> None:
    assert model.MODEL_PATH.is_file()
    assert model.MODEL_PATH.stat().st_size < 200_000
    score = model.scorer("cpu")
    assert score is not None
    assert score.provider == "CPUExecutionProvider"
    assert score.name == MODEL_NAME


def test_crops_are_on_the_readers_scale(template: Template) -> None:
    gray, at = _drawn_sheet(template)
    x, c = _sheet_inputs(gray, template)
    n = sum(len(f.centres) for f in template.fields)
    assert x.shape == (n, 1, SIZE, SIZE)
    assert x.dtype == np.float32
    assert c.shape == (n, CONTEXT)
    middle = slice(SIZE // 2 - 3, SIZE // 2 + 3)
    # The middle of a solid mark is near ink (1), an empty bubble's near paper (0).
    assert x[at["marked"], 0, middle, middle].mean() > 0.7
    assert abs(float(x[at["empty"], 0, middle, middle].mean())) < 0.2
    # The corners are paper.
    assert abs(float(np.median(x[:, 0, :3, :3]))) < 0.05


def test_scores_a_mark_an_empty_bubble_and_an_erasure(template: Template) -> None:
    gray, at = _drawn_sheet(template)
    score = model.scorer("cpu")
    assert score is not None
    p = score(*_sheet_inputs(gray, template))
    assert p[at["marked"]] > 0.95
    assert p[at["empty"]] < 0.05
    assert p[at["erased"]] < 0.5


def test_one_batch_per_sheet_scores_as_one_bubble_at_a_time(template: Template) -> None:
    gray, _ = _drawn_sheet(template)
    x, c = _sheet_inputs(gray, template)
    score = model.scorer("cpu")
    assert score is not None
    batch = score(x, c)
    single = np.concatenate([score(x[i : i + 1], c[i : i + 1]) for i in range(len(x))])
    assert batch.shape == (len(x),)
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert score(x[:0], c[:0]).shape == (0,)


def test_more_threads_score_exactly_alike(template: Template) -> None:
    # The command line gives its session every core (model.set_threads); the scores, and
    # so every reading, stay those of the one-thread session a worker uses.
    gray, _ = _drawn_sheet(template)
    x, c = _sheet_inputs(gray, template)
    one = model.scorer("cpu")
    model.set_threads(2)
    two = model.scorer("cpu")
    assert one is not None
    assert two is not None
    assert two.session is not one.session
    assert two.session.get_session_options().intra_op_num_threads == 2
    np.testing.assert_array_equal(two(x, c), one(x, c))


def _reading(values: tuple[str, ...], confidence: float, *, score: float = 0.6) -> FieldReading:
    """Question 1 read as ``values`` (of "1".."5"), each of them at ``score``, the rest empty."""
    scores = tuple(score if str(i + 1) in values else 0.0 for i in range(5))
    return FieldReading("1", values, scores, confidence, confidence < REVIEW_BELOW)


def test_combine_lifts_a_doubt_only_when_both_read_the_same_marks(template: Template) -> None:
    f = template.questions[0]
    sure = (0.01, 0.99, 0.02, 0.0, 0.01)
    lifted = combine_field(f, _reading(("2",), 0.2), sure)
    assert (lifted.values, lifted.review, lifted.classifier) == (("2",), False, "lifted")
    assert lifted.confidence >= CLASSIFIER_SURE
    # Confident and agreeing: stays, confidence not lowered.
    agree = combine_field(f, _reading(("2",), 0.95), sure)
    assert (agree.review, agree.classifier, agree.confidence) == (False, "agree", 0.96)  # min |2p - 1|
    # An unsure classifier changes nothing.
    unsure = combine_field(f, _reading(("2",), 0.2), (0.01, 0.7, 0.02, 0.0, 0.01))
    assert (unsure.review, unsure.confidence, unsure.classifier) == (True, 0.2, "unsure")
    # Disagreement goes to a person, however sure either side is, and keeps the thresholds' values.
    for other in ((0.99, 0.01, 0.0, 0.0, 0.0), (0.0, 0.99, 0.99, 0.0, 0.0), (0.0,) * 5):
        d = combine_field(f, _reading(("2",), 1.0), other)
        assert (d.values, d.review, d.classifier) == (("2",), True, "disagree")
        assert d.confidence < REVIEW_BELOW


def test_a_half_filled_answer_stays_with_a_person_though_the_classifier_agrees(template: Template) -> None:
    sure = (0.01, 0.99, 0.02, 0.0, 0.01)
    # A question read from a lone bubble short of the midpoint: a blank is a valid answer.
    half = combine_field(template.questions[0], _reading(("2",), 0.1, score=0.45), sure)
    assert (half.values, half.review, half.confidence, half.classifier) == (("2",), True, 0.1, "agree")
    # A student-ID digit holds exactly one mark, so the same agreement settles it.
    digit = template.id_fields[0]
    light = FieldReading(digit.label, ("1",), (0.0, 0.45) + (0.0,) * 8, 0.3, True)
    lifted = combine_field(digit, light, (0.01, 0.99) + (0.01,) * 8, single=True)
    assert (lifted.values, lifted.review, lifted.classifier) == (("1",), False, "lifted")


def test_a_doubted_second_mark_stays_with_a_person_though_the_classifier_agrees(template: Template) -> None:
    # A full mark and a small scribble in another bubble (0.57 of the way to a mark): a
    # public photo's student cancelling that bubble, read as a second answer once the
    # classifier, which takes any stroke for a mark, had cleared the thresholds' doubt.
    both = (0.01, 0.99, 0.02, 0.99, 0.01)
    doubted = FieldReading("1", ("2", "4"), (0.0, 1.0, 0.0, 0.57, 0.0), 0.14, True)
    kept = combine_field(template.questions[0], doubted, both)
    assert (kept.values, kept.review, kept.confidence, kept.classifier) == (("2", "4"), True, 0.14, "agree")
    # Two marks the thresholds are sure of are two answers, whatever the classifier's doubt.
    sure = FieldReading("1", ("2", "4"), (0.0, 1.0, 0.0, 0.95, 0.0), 0.9, False)
    assert combine_field(template.questions[0], sure, both).review is False


def test_the_classifier_fits_a_sheet_unless_it_contradicts_its_clear_fields(template: Template) -> None:
    fields = template.questions[:40]
    clear = [_reading(("2",), 1.0) for _ in fields]
    agree, against = (0.0, 1.0, 0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 0.0)
    assert classifier_fits(fields, clear, [agree] * 40)
    # Two contradicted clear fields are two hard bubbles, not a sheet it cannot see.
    assert classifier_fits(fields, clear, [against] * 2 + [agree] * 38)
    # Five of forty (an eighth) is a sheet whose print it never learned.
    assert not classifier_fits(fields, clear, [against] * 5 + [agree] * 35)
    # Doubtful fields are what it is for: contradicting all of them is no sign.
    doubtful = [_reading(("2",), 0.5) for _ in fields]
    assert classifier_fits(fields, doubtful, [against] * 40)


def test_a_classifier_that_contradicts_the_sheet_is_set_aside(
    template: Template, photos: list[tuple[np.ndarray, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.omr.learned as learned

    def everything_marked(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.ones(len(x), np.float32)

    monkeypatch.setattr(learned, "scorer", lambda: _Fixed(everything_marked))
    gray, _ = photos[0]
    reading = read_gray(gray, template, photo=True)
    alone = read_gray(gray, template, photo=True, learned=False)
    assert reading.classifier is None
    assert {q.classifier for q in reading.questions} == {"off"}
    assert reading.answers == alone.answers
    assert reading.review == alone.review


class _Fixed:
    name = "fixed"

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(x, c), np.float32)


def _photos(template: Template) -> list[tuple[np.ndarray, Any]]:
    from workers.omr.decode import decode_gray

    out = []
    for i in PHOTO_SEEDS:
        rng = random.Random(f"learned-test:{i}")
        page, truth = fill_sheet(template, rng)
        out.append((decode_gray(photograph(page, rng, frame=(2250, 3000))), truth))
    return out


@pytest.fixture(scope="module")
def photos(template: Template) -> list[tuple[np.ndarray, Any]]:
    return _photos(template)


def test_photo_reader_with_the_classifier_has_no_silent_wrong_answer(
    template: Template, photos: list[tuple[np.ndarray, Any]]
) -> None:
    flagged = {"threshold": 0, "classifier": 0}
    verdicts: list[str] = []
    for gray, truth in photos:
        for name, learned in (("threshold", False), ("classifier", None)):
            reading = read_gray(gray, template, photo=True, learned=learned)
            assert reading.classifier == (MODEL_NAME if learned is None else None)
            for q in reading.questions:
                wrong = tuple(q.values) != truth.answers[q.label]
                assert not wrong or q.review, (name, q.label, q.values, truth.answers[q.label])
                flagged[name] += q.review
                if learned is None:
                    verdicts.append(q.classifier)
            assert reading.student_id == truth.student_id or "student_id" in reading.review
    # It ran on every question, cleared at least one threshold doubt, and flags no more.
    assert len(verdicts) == len(photos) * len(template.questions)
    assert "lifted" in verdicts
    assert flagged["classifier"] < flagged["threshold"]


def test_scan_mode_stays_threshold_only(template: Template) -> None:
    from tests.omr.corpus import degrade

    rng = random.Random("learned-scan")
    page, _ = fill_sheet(template, rng)
    reading = read_sheet(degrade(page, rng)[0], template)
    assert reading.classifier is None
    assert {q.classifier for q in reading.questions} == {""}


def test_no_runtime_reads_threshold_only_and_says_so_once(
    template: Template,
    photos: list[tuple[np.ndarray, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    gray, _ = photos[0]
    with caplog.at_level(logging.WARNING, logger="workers.omr.learned"):
        first = read_gray(gray, template, photo=True)
        second = read_gray(gray, template, photo=True)
    assert first.classifier is None
    assert second.classifier is None
    assert first.answers == read_gray(gray, template, photo=True, learned=False).answers
    said = [r.getMessage() for r in caplog.records if "threshold-only" in r.getMessage()]
    assert len(said) == 1
    assert "onnxruntime is not installed" in said[0]


def test_no_model_file_reads_threshold_only(
    template: Template, photos: list[tuple[np.ndarray, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(model, "MODEL_PATH", tmp_path / "gone.onnx")
    assert model.scorer() is None
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    assert model.scorer("cpu", tmp_path / "broken.onnx") is None
    reading = read_gray(photos[0][0], template, photo=True)
    assert reading.classifier is None
    assert reading.questions  # read all the same


def test_cuda_is_refused_clearly_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert model.scorer("cuda") is None
    # auto on a child pinned to no GPU: the CPU.
    score = model.scorer("auto")
    assert score is not None
    assert score.provider == "CPUExecutionProvider"


def test_a_forked_child_makes_its_own_session(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = model.scorer("cpu")
    assert parent is not None
    assert model.scorer("cpu") is parent  # once per process
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from a child after fork
    child = model.scorer("cpu")
    assert child is not None
    assert child is not parent
    assert child.session is not parent.session


def test_processor_reports_the_classifier_in_photo_mode_only(template: Template, template_dict: dict[str, Any]) -> None:
    rng = random.Random(f"learned-test:{PHOTO_SEEDS[0]}")
    page, truth = fill_sheet(template, rng)
    data = photograph(page, rng, frame=(2250, 3000))
    proc = OmrGradingProcessor()
    result = proc.run(JobInput(params={"template": template_dict, "mode": "photo"}, data=data))
    assert result.data["classifier"] == MODEL_NAME
    assert set(result.data["classifier_lifted"]) <= set(truth.answers) | {f.label for f in template.id_fields}
    assert not set(result.data["classifier_lifted"]) & set(result.data["review"])
    assert set(result.data["classifier_disagreed"]) <= set(result.data["review"])
    assert result.review == bool(result.data["review"])
    blank = cv2.imencode(".png", render_sheet(template))[1].tobytes()
    scan = proc.run(JobInput(params={"template": template_dict}, data=blank))
    assert "classifier" not in scan.data


def test_the_runtime_does_not_import_torch() -> None:
    code = (
        "import random, sys\n"
        "from tests.omr.corpus import fill_sheet, photograph\n"
        "from workers.omr.reader import read_sheet\n"
        "from workers.omr.template import default_template\n"
        "t = default_template(); rng = random.Random(3); page, _ = fill_sheet(t, rng)\n"
        "r = read_sheet(photograph(page, rng, frame=(1500, 2000)), t, photo=True)\n"
        "assert r.classifier == 'marks-v2', r.classifier\n"
        "assert 'onnxruntime' in sys.modules\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
