"""``omr_grading``: read one scanned answer sheet against a template.

Params: ``template`` (the template JSON object, see docs/omr.md, or an imported
OMRChecker template), optional ``mode`` ("scan", the default, or "photo" for a phone
picture of a sheet) and, when the file is a PDF, ``page`` (1-based; each sheet of a
batch's PDF is its own job). The result's
``confidence`` is the *lowest* per-question (or student-ID digit) confidence on the
sheet, because one doubtful answer is enough to need a person.

In photo mode the learned mark classifier (``workers.omr.learned``) also checks every
bubble; the result's ``classifier`` names it (None when it could not run in this
worker and the sheet was read threshold-only), ``classifier_lifted`` lists the fields
whose doubt it cleared and ``classifier_disagreed`` those it sent to a person.

Only this module's light imports run when the registry loads it; numpy and cv2 load
on the first ``run``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from workers.base import Artifact, BadInput, JobInput, ProcessorResult
from workers.omr.errors import EMPTY_FILE, FILE_REQUIRED, INVALID_PAYLOAD
from workers.omr.omrchecker import STORED_FORMAT, stored_template_load
from workers.omr.template import Template, load_template

MODES: Final = frozenset({"scan", "photo"})
_CACHE_SIZE: Final = 16


class OmrGradingProcessor:
    job_type: ClassVar[str] = "omr_grading"
    input_key: ClassVar[str | None] = "image_path"
    extensions: ClassVar[frozenset[str]] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".pdf"})
    #: The photo reader's mark classifier runs on the premium child's GPU when it has one
    #: (workers.omr.learned.model); :meth:`warm` loads it there when the child starts.
    #: Scoring a sheet's bubbles takes about 6 ms of a CPU thread and 0.4 ms of an H100,
    #: out of 30-60 ms for a whole photo (docs/benchmarks.md, `bench/gpu/run.sh`).
    wants_gpu: ClassVar[bool] = True
    #: lite and basic measure the image (size, blur, darkness) before a job exists.
    quality_gate: ClassVar[bool] = True

    def __init__(self) -> None:
        # Templates repeat across the jobs of one exam; parse each once per worker.
        self._templates: dict[str, Template] = {}

    def warm(self) -> None:
        """Load the mark classifier in this process now (a premium child, after fork)."""
        from workers.omr.learned import scorer

        scorer()

    def validate(self, params: Mapping[str, Any]) -> None:
        self._template(params)
        self._mode(params)
        self._page(params)

    def run(self, job: JobInput) -> ProcessorResult:
        template = self._template(job.params)
        photo = self._mode(job.params) == "photo"
        if job.data is None:
            raise BadInput("an answer-sheet image is required", code=FILE_REQUIRED)
        if not job.data:
            raise BadInput("the file is empty", code=EMPTY_FILE)
        from workers.omr.align import as_gray
        from workers.omr.decode import check_gray, decode_for, sniff
        from workers.omr.overlay import overlay_png
        from workers.omr.pdf import pdf_page
        from workers.omr.reader import read_gray

        job.progress("decode", 10)
        page = self._page(job.params)
        if page is not None or sniff(job.data) == "pdf":
            # A batch's PDF is shared by its pages' jobs: each draws only its own page.
            gray = check_gray(pdf_page(job.data, page or 1))
        else:
            # Colour kept (dropout-ink print is read past on a channel), at half size when
            # the template's bubbles stay big enough there (decode.decode_for).
            gray, template = decode_for(job.data, template, photo=photo)
        job.progress("read", 40)
        reading = read_gray(gray, template, photo=photo)
        job.progress("overlay", 80)
        png = overlay_png(as_gray(gray), template, reading)
        job.progress("done", 100)
        data = reading.to_dict()
        data.update(
            template=template.name,
            student_id_confidence=reading.student_id_confidence,
            rotation=reading.rotation,
            threshold=round(reading.levels.threshold, 4),
        )
        if photo:
            fields = reading.id_digits + reading.questions
            data.update(
                classifier=reading.classifier,
                classifier_lifted=[f.label for f in fields if f.classifier == "lifted"],
                classifier_disagreed=[f.label for f in fields if f.classifier == "disagree"],
            )
        return ProcessorResult(
            data=data,
            confidence=reading.confidence,
            review=bool(reading.review),
            artifacts=(Artifact("overlay.png", png, "image/png"),),
        )

    def _template(self, params: Mapping[str, Any]) -> Template:
        raw = params.get("template")
        if not isinstance(raw, Mapping):
            raise BadInput("params.template must be the template JSON object", code="TEMPLATE_INVALID")
        try:
            key = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
        except (TypeError, ValueError) as exc:
            raise BadInput("params.template is not plain JSON", code="TEMPLATE_INVALID") from exc
        cached = self._templates.get(key)
        if cached is None:
            cached = stored_template_load(raw) if raw.get("format") == STORED_FORMAT else load_template(raw)
            if len(self._templates) >= _CACHE_SIZE:
                self._templates.pop(next(iter(self._templates)))
            self._templates[key] = cached
        return cached

    @staticmethod
    def _page(params: Mapping[str, Any]) -> int | None:
        from workers.omr.pdf import MAX_PAGES

        page = params.get("page")
        if page is None:
            return None
        if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= MAX_PAGES:
            raise BadInput(f"page must be a page number from 1 to {MAX_PAGES}", code=INVALID_PAYLOAD)
        return page

    @staticmethod
    def _mode(params: Mapping[str, Any]) -> str:
        mode = params.get("mode", "scan")
        if mode not in MODES:
            raise BadInput(f"mode must be one of {sorted(MODES)}", code=INVALID_PAYLOAD)
        return str(mode)
