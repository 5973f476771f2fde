"""One processor per job type, looked up by name.

Built-in processors are listed in ``BUILTIN`` as dotted paths and imported on first use,
so a worker process only pays for cv2 or openpyxl when it actually runs such a job.
Extra plug-in modules (``AI_PLUGIN_MODULES``, comma-separated) are imported on first use
too; each calls :func:`register` at import time.
"""

from __future__ import annotations

import importlib
import os
import threading

from workers.base import Processor

BUILTIN: dict[str, str] = {
    "ping": "workers.ping:PingProcessor",
    "excel_parsing": "workers.excel:ExcelParsingProcessor",
    "attendance_excel_export": "workers.excel_export:AttendanceExcelExportProcessor",
    "staff_excel_export": "workers.excel_export:StaffExcelExportProcessor",
    "ocr": "workers.ocr:OcrProcessor",
    "homework_video_analysis": "workers.video:HomeworkVideoProcessor",
    "embedding": "workers.embedding:EmbeddingProcessor",
    "question_segmentation": "workers.segmentation:QuestionSegmentationProcessor",
    "essay_answer_extraction": "workers.essay:EssayAnswerExtractionProcessor",
    # Refused with BACKEND_NOT_CONFIGURED until AI_BACKEND_<JOB_TYPE> names a backend.
    "handwriting_analysis": "workers.backends:HandwritingAnalysisProcessor",
    "problem_generation": "workers.backends:ProblemGenerationProcessor",
    "homework_photo_analysis": "workers.backends:HomeworkPhotoAnalysisProcessor",
    "omr_grading": "workers.omr.processor:OmrGradingProcessor",
    "omr_template": "workers.omr.template_processor:OmrTemplateProcessor",
}

_registry: dict[str, Processor] = {}
_plugins_loaded = False
_lock = threading.Lock()


def register(processor: Processor) -> Processor:
    _registry[processor.job_type] = processor
    return processor


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    with _lock:
        if _plugins_loaded:
            return
        for module in filter(None, (m.strip() for m in os.environ.get("AI_PLUGIN_MODULES", "").split(","))):
            importlib.import_module(module)
        _plugins_loaded = True


def get(job_type: str) -> Processor | None:
    """The processor for ``job_type``, or None when this build has none."""
    _load_plugins()
    if job_type in _registry:
        return _registry[job_type]
    target = BUILTIN.get(job_type)
    if target is None:
        return None
    module_name, _, attr = target.partition(":")
    processor: Processor = getattr(importlib.import_module(module_name), attr)()
    return register(processor)


def available() -> list[str]:
    _load_plugins()
    return sorted(set(BUILTIN) | set(_registry))


def warm_gpu_processors() -> list[str]:
    """Import every processor that wants a GPU and let it load its models now.

    Called in a premium child right after its device is pinned (``ai_tasks.gpu``), so a
    model is loaded once per child, after fork, on the pinned device, and not by the
    first job. A processor opts in with ``wants_gpu = True`` and an optional ``warm()``.
    Returns the job types warmed.
    """
    warmed = []
    for job_type in available():
        processor = get(job_type)
        if processor is None or not processor.wants_gpu:
            continue
        warm = getattr(processor, "warm", None)
        if callable(warm):
            warm()
        warmed.append(job_type)
    return warmed
