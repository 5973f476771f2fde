"""Tests for ``essay_answer_extraction``: segmentation, then the ocr processor per region.

The worksheet comes from the segmentation tests' generator; the reading uses the real
Tesseract and skips without it. The refusals need no Tesseract.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import workers.ocr as ocr
from tests.workers.test_segmentation import FONT, _check, worksheet
from workers.base import BadInput, JobInput
from workers.essay import EssayAnswerExtractionProcessor

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None or not Path(FONT).exists(), reason="tesseract or fonts-nanum missing"
)


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> None:
    ocr.forget_engines()


@needs_tesseract
def test_each_question_is_read_into_its_answer() -> None:
    page, truth = worksheet(columns=2, questions=4, seed=21, figure_rate=0.0)
    result = EssayAnswerExtractionProcessor().run(JobInput(params={"lang": "kor"}, data=page))
    answers = result.data["answers"]
    _check({"questions": answers}, truth)
    assert [a["number"] for a in answers] == [1, 2, 3, 4]
    for a in answers:
        assert a["text"].strip(), a
        assert 0.0 < a["confidence"] <= 1.0
        assert any(word in a["text"] for word in ("다음", "식의", "값을", "구하시오", "그림과", "같이", "함수"))
    assert [x.name for x in result.artifacts] == ["q01.png", "q02.png", "q03.png", "q04.png", "layout.png"]
    assert result.data["language"] == "kor"
    assert result.data["psm"] == 6


def test_missing_tesseract_is_refused_in_validate(tmp_path: Path) -> None:
    processor = EssayAnswerExtractionProcessor(tesseract_cmd=str(tmp_path / "none"))
    with pytest.raises(BadInput) as info:
        processor.validate({})
    assert info.value.code == "BACKEND_NOT_CONFIGURED"


@pytest.mark.parametrize("params", [{"lang": "fra"}, {"psm": 99}, {"engine": "magic"}, {"read_numbers": 1}])
def test_bad_parameters(params: dict[str, object]) -> None:
    with pytest.raises(BadInput) as info:
        EssayAnswerExtractionProcessor().validate(params)
    assert info.value.code in {"INVALID_PAYLOAD", "BACKEND_NOT_CONFIGURED"}
    if shutil.which("tesseract"):
        assert info.value.code == "INVALID_PAYLOAD"


@needs_tesseract
def test_bad_file_is_refused() -> None:
    with pytest.raises(BadInput) as info:
        EssayAnswerExtractionProcessor().run(JobInput(params={}, data=b"GIF89a" + b"\0" * 40))
    assert info.value.code == "INVALID_FORMAT"
