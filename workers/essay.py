"""``essay_answer_extraction``: the text of each answer on a worksheet page.

Built from the two processors this project already has, not a new engine: the page is
cut into questions by :mod:`workers.segmentation` and each question's crop is read by
the ``ocr`` processor (:class:`workers.ocr.OcrProcessor`, Tesseract), so the guarded
decoder, the engine check (``BACKEND_NOT_CONFIGURED`` when Tesseract or the language
data is missing) and Tesseract's timeout all apply unchanged.

Tesseract reads print well and handwriting poorly: a handwritten answer comes back with
a low confidence and the job is flagged for review, never guessed at. A handwriting
model, when one is configured for ``handwriting_analysis`` (workers.backends), is the
place for that; this processor does not call it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from workers import segmentation
from workers.base import Artifact, BadInput, JobInput, ProcessingError, ProcessorResult
from workers.ocr import DEFAULT_LANGUAGE, OcrProcessor

#: each crop is one block of text: Tesseract's "uniform block" mode.
DEFAULT_PSM: Final = 6
REVIEW_BELOW: Final = 0.6


def _ocr_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {"lang": params.get("lang", DEFAULT_LANGUAGE), "psm": params.get("psm", DEFAULT_PSM)}


class EssayAnswerExtractionProcessor:
    job_type: ClassVar[str] = "essay_answer_extraction"
    input_key: ClassVar[str | None] = "image_path"
    extensions: ClassVar[frozenset[str]] = segmentation.QuestionSegmentationProcessor.extensions
    wants_gpu: ClassVar[bool] = False

    def __init__(self, tesseract_cmd: str | None = None) -> None:
        self.tesseract_cmd = tesseract_cmd or os.environ.get("TESSERACT_CMD") or None
        self.segmenter = segmentation.QuestionSegmentationProcessor(tesseract_cmd=self.tesseract_cmd)
        self.reader = OcrProcessor(tesseract_cmd=self.tesseract_cmd)

    def validate(self, params: Mapping[str, Any]) -> None:
        self.segmenter.validate(params)
        self.reader.validate(_ocr_params(params))  # INVALID_PAYLOAD, BACKEND_NOT_CONFIGURED

    def run(self, job: JobInput) -> ProcessorResult:
        self.validate(job.params)
        ocr_params = _ocr_params(job.params)
        job.progress("decode", 0)
        gray = segmentation.decode(job.data)
        layout = segmentation.segment(
            gray, read_numbers=job.params.get("read_numbers", True) is True, tesseract_cmd=self.tesseract_cmd
        )
        job.progress("segmented", 20)
        answers: list[dict[str, Any]] = []
        artifacts: list[Artifact] = []
        regions = segmentation.question_dicts(layout)
        total = len(regions)
        for n, (question, region) in enumerate(zip(layout.questions, regions, strict=True), 1):
            crop = segmentation.png_bytes(layout.crop(question))
            artifacts.append(Artifact(f"q{n:02d}.png", crop, "image/png"))
            try:
                read = self.reader.run(JobInput(params=ocr_params, data=crop))
            except BadInput as exc:  # a crop the reader refuses (too small): nothing read
                text, conf, lines = "", 0.0, []
                region["note"] = exc.message
            except ProcessingError:
                raise
            else:
                text, conf, lines = read.data["text"], read.confidence, read.data["lines"]
            answers.append({**region, "text": text, "confidence": conf, "lines": lines})
            job.progress("read", 20 + int(75 * n / max(1, total)))
        artifacts.append(Artifact("layout.png", segmentation.layout_image(gray, layout), "image/png"))
        read_conf = min((a["confidence"] for a in answers), default=0.0)
        confidence = round(min(segmentation.confidence(layout), read_conf), 4)
        data = {
            "answers": answers,
            "columns": layout.columns if layout.questions else 0,
            "page": {"width": layout.width, "height": layout.height},
            "skew_degrees": layout.angle,
            "language": ocr_params["lang"],
            "psm": ocr_params["psm"],
            "truncated": layout.truncated,
            "notes": layout.notes,
        }
        job.progress("done", 100)
        review = not answers or layout.truncated or confidence < REVIEW_BELOW or any(not a["text"] for a in answers)
        return ProcessorResult(data=data, confidence=confidence, review=review, artifacts=tuple(artifacts))
