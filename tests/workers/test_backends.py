"""Tests for workers.backends: job types served by an external model, or refused.

The backends configured here are the test doubles in tests/fake_backends.py, named in
the AI_BACKEND_* environment variables with monkeypatch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

import workers.backends as backends
from tests import fake_backends
from workers.backends import (
    HandwritingAnalysisProcessor,
    HomeworkPhotoAnalysisProcessor,
    ProblemGenerationProcessor,
    env_var,
)
from workers.base import BadInput, JobInput, ProcessingError, RetryableError

PROCESSORS = (HandwritingAnalysisProcessor, ProblemGenerationProcessor, HomeworkPhotoAnalysisProcessor)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for processor in PROCESSORS:
        monkeypatch.delenv(env_var(processor.job_type), raising=False)
    backends.forget_backends()
    fake_backends.calls.clear()
    yield
    backends.forget_backends()


def _configure(monkeypatch: pytest.MonkeyPatch, job_type: str, factory: str) -> None:
    monkeypatch.setenv(env_var(job_type), f"tests.fake_backends:{factory}")


def _png(width: int = 64, height: int = 48) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((height, width), 255, np.uint8))
    assert ok
    return buf.tobytes()


def _page() -> bytes:
    """A sharp, bright 800x1000 'photo' that passes the quality gate."""
    page = np.full((1000, 800), 235, np.uint8)
    for y in range(60, 940, 40):
        cv2.putText(page, "homework 12 + 30 = 42", (40, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 20, 2)
    ok, buf = cv2.imencode(".jpg", page)
    assert ok
    return buf.tobytes()


def test_env_var_names() -> None:
    assert env_var("handwriting_analysis") == "AI_BACKEND_HANDWRITING_ANALYSIS"
    assert env_var("problem_generation") == "AI_BACKEND_PROBLEM_GENERATION"


@pytest.mark.parametrize("processor", PROCESSORS)
def test_unconfigured_is_refused_in_validate(processor: Any) -> None:
    with pytest.raises(BadInput) as info:
        processor().validate({"ocr_text": "x"})
    assert info.value.code == "BACKEND_NOT_CONFIGURED"
    assert env_var(processor.job_type) in info.value.message
    assert backends.configured(processor.job_type) is False


@pytest.mark.parametrize("processor", PROCESSORS)
def test_unconfigured_run_is_refused_too(processor: Any) -> None:
    with pytest.raises(BadInput) as info:
        processor().run(JobInput(params={"ocr_text": "x"}, data=_png()))
    assert info.value.code == "BACKEND_NOT_CONFIGURED"


@pytest.mark.parametrize(
    "setting",
    [
        "tests.fake_backends",  # no factory
        "tests.no_such_module:factory",
        "tests.fake_backends:no_such_factory",
        "tests.fake_backends:failing_factory",
        "tests.fake_backends:not_a_backend",
        "tests.fake_backends:calls",  # not callable
    ],
)
def test_unusable_settings_count_as_not_configured(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    monkeypatch.setenv(env_var("handwriting_analysis"), setting)
    with pytest.raises(BadInput) as info:
        HandwritingAnalysisProcessor().validate({})
    assert info.value.code == "BACKEND_NOT_CONFIGURED"


def test_handwriting_run_delegates_to_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(monkeypatch, "handwriting_analysis", "echo_handwriting")
    processor = HandwritingAnalysisProcessor()
    processor.validate({})
    image = _png()
    result = processor.run(JobInput(params={"lang": "kor"}, data=image, filename="a.png"))
    assert result.data["text"] == f"{len(image)} bytes"
    assert result.confidence == 0.9
    assert result.review is False
    (request,) = fake_backends.calls
    assert request.job_type == "handwriting_analysis"
    assert request.data == image
    assert request.filename == "a.png"
    assert request.params == {"lang": "kor"}


def test_the_backend_is_built_once_per_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(monkeypatch, "handwriting_analysis", "echo_handwriting")
    first = backends.backend_for("handwriting_analysis")
    assert backends.backend_for("handwriting_analysis") is first
    _configure(monkeypatch, "handwriting_analysis", "malformed")
    assert backends.backend_for("handwriting_analysis") is not first


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (None, "FILE_REQUIRED"),
        (b"", "EMPTY_FILE"),
        (b"%PDF-1.7\n" + b"\x00" * 64, "INVALID_FORMAT"),
        (b"not an image", "FILE_UNREADABLE"),
    ],
)
def test_handwriting_input_is_checked_before_the_backend(
    monkeypatch: pytest.MonkeyPatch, data: bytes | None, code: str
) -> None:
    _configure(monkeypatch, "handwriting_analysis", "echo_handwriting")
    with pytest.raises(BadInput) as info:
        HandwritingAnalysisProcessor().run(JobInput(params={}, data=data))
    assert info.value.code == code
    assert fake_backends.calls == []


def test_problem_generation_delegates_and_checks_params(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(monkeypatch, "problem_generation", "echo_problems")
    processor = ProblemGenerationProcessor()
    assert processor.input_key is None
    params = {"ocr_text": "삼각형의 넓이", "count": 3}
    processor.validate(params)
    assert fake_backends.calls[0].job_type == "validate"  # the backend's own check ran
    result = processor.run(JobInput(params=params))
    assert [p["question"] for p in result.data["problems"]] == [f"{i}: 삼각형의 넓이" for i in range(3)]
    assert result.confidence == 0.4
    assert result.review is True
    for bad in ({}, {"ocr_text": "  "}, {"ocr_text": "x" * 20_001}, {"ocr_text": "x", "count": 0},
                {"ocr_text": "x", "count": True}, {"ocr_text": "x", "model": 5}):  # fmt: skip
        with pytest.raises(BadInput) as info:
            processor.validate(bad)
        assert info.value.code == "INVALID_PAYLOAD"


def test_homework_photo_passes_the_quality_gate_first(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(monkeypatch, "homework_photo_analysis", "echo_homework")
    processor = HomeworkPhotoAnalysisProcessor()
    result = processor.run(JobInput(params={}, data=_page()))
    assert result.data == {"summary": "seen", "items": [{"label": "page"}], "confidence": 0.8}
    dark = cv2.imencode(".jpg", np.full((1000, 800), 20, np.uint8))[1].tobytes()
    with pytest.raises(BadInput) as info:
        processor.run(JobInput(params={}, data=dark))
    assert info.value.code == "TOO_DARK"
    with pytest.raises(BadInput) as info:
        processor.run(JobInput(params={}, data=_png(300, 200)))
    assert info.value.code == "RESOLUTION_TOO_LOW"
    assert len(fake_backends.calls) == 1


@pytest.mark.parametrize(
    ("job_type", "processor", "params"),
    [
        ("handwriting_analysis", HandwritingAnalysisProcessor, {}),
        ("problem_generation", ProblemGenerationProcessor, {"ocr_text": "x"}),
        ("homework_photo_analysis", HomeworkPhotoAnalysisProcessor, {}),
    ],
)
@pytest.mark.parametrize("factory", ["malformed", "not_json"])
def test_a_malformed_result_is_a_processing_error(
    monkeypatch: pytest.MonkeyPatch, job_type: str, processor: Any, params: dict[str, Any], factory: str
) -> None:
    _configure(monkeypatch, job_type, factory)
    with pytest.raises(ProcessingError) as info:
        processor().run(JobInput(params=params, data=_page()))
    assert info.value.code == "library_error"
    assert "malformed" in info.value.message


@pytest.mark.parametrize(
    "out",
    [
        None,
        ["text"],
        {"text": "x"},  # no confidence
        {"text": "x", "confidence": 1.5},
        {"text": "x", "confidence": True},
        {"text": "x", "confidence": float("nan")},
        {"text": "x", "confidence": 0.5, "lines": "x"},
        {"text": "x", "confidence": 0.5, "lines": [{"text": "a", "box": [1, 2, 3]}]},
        {"text": "x", "confidence": 0.5, "lines": [{"text": "a", "confidence": -1}]},
    ],
)
def test_handwriting_shape_checks(out: Any) -> None:
    with pytest.raises(ProcessingError):
        backends.checked("handwriting_analysis", out)


@pytest.mark.parametrize(
    "out",
    [
        {"problems": [], "confidence": 0.5},
        {"problems": [{"question": ""}], "confidence": 0.5},
        {"problems": [{"question": "q", "answer": 3}], "confidence": 0.5},
        {"problems": [{"question": "q", "choices": [1, 2]}], "confidence": 0.5},
        {"problems": [{"question": "q"}] * 21, "confidence": 0.5},
    ],
)
def test_problem_shape_checks(out: Any) -> None:
    with pytest.raises(ProcessingError):
        backends.checked("problem_generation", out)


def test_backend_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(monkeypatch, "handwriting_analysis", "unreachable")
    with pytest.raises(RetryableError):
        HandwritingAnalysisProcessor().run(JobInput(params={}, data=_png()))
    backends.forget_backends()
    _configure(monkeypatch, "handwriting_analysis", "crashing")
    with pytest.raises(ProcessingError) as info:
        HandwritingAnalysisProcessor().run(JobInput(params={}, data=_png()))
    assert info.value.code == "library_error"
    assert "KeyError" in info.value.message
