"""Job types whose work is a model this project does not ship: pluggable backends.

``handwriting_analysis``, ``problem_generation`` and ``homework_photo_analysis`` need a
trained model (a handwriting recogniser, a language model, a homework checker). This
build has none and invents no output: each of these processors hands the job to a
*backend* named by the worker's environment, and refuses the job at dispatch
(``BACKEND_NOT_CONFIGURED``, from ``validate()``) when none is named.

Configuration: ``AI_BACKEND_<JOB_TYPE>`` (upper case) is ``dotted.module:factory``; the
factory is called once per worker process (per setting) with no arguments and returns
an object with ``run(request: BackendRequest) -> Mapping``. For example
``AI_BACKEND_PROBLEM_GENERATION=academy_llm.problems:make_backend``. A setting whose
module does not import, whose factory is missing or raises, or whose object has no
``run`` is treated as not configured: the job is refused, not failed later.

What a backend returns is checked against its job type's shape (see ``SHAPES`` and
docs/job-types/backends.md) and must be JSON; anything else is ``ProcessingError``
(``library_error``), so a broken backend cannot store garbage as a result. A backend may
raise :class:`~workers.base.BadInput`, :class:`~workers.base.RetryableError` or
:class:`~workers.base.ProcessingError` itself; ``ConnectionError`` and ``TimeoutError``
become ``RetryableError`` (a remote model being busy is a passing fault); any other
exception is ``ProcessingError``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

from workers import imageio
from workers.base import (
    BadInput,
    JobInput,
    ProcessingError,
    ProcessorException,
    ProcessorResult,
    ProgressFn,
    RetryableError,
)
from workers.memo import Memo

ENV_PREFIX: Final = "AI_BACKEND_"
REVIEW_BELOW: Final = 0.6
IMAGE_KINDS: Final = frozenset({"png", "jpeg", "tiff", "webp"})
IMAGE_EXTENSIONS: Final = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"})
MAX_IMAGE_PIXELS: Final = 50_000_000
MIN_IMAGE_SIDE: Final = 16
#: problem_generation: the longest source text and the most problems per job.
MAX_SOURCE_CHARS: Final = 20_000
MAX_PROBLEMS: Final = 20


@dataclass(frozen=True)
class BackendRequest:
    """What a backend gets: the job's parameters and input file (already checked)."""

    job_type: str
    params: Mapping[str, Any]
    data: bytes | None = None
    filename: str = ""
    progress: ProgressFn | None = None


@runtime_checkable
class Backend(Protocol):
    """An external model for one job type."""

    def run(self, request: BackendRequest) -> Mapping[str, Any]:
        """Do the job; return a mapping of the job type's shape."""
        ...


BackendFactory = Callable[[], Backend]


# --------------------------------------------------------------------------- registry


def env_var(job_type: str) -> str:
    """The environment variable naming ``job_type``'s backend."""
    return ENV_PREFIX + job_type.upper()


_backends: Memo[tuple[str, str], Backend | str] = Memo()  # (job type, setting) -> backend or why not


def _load(spec: str) -> Backend | str:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        return f"{spec!r} is not of the form dotted.module:factory"
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        return f"cannot import {module_name}: {exc}"
    except AttributeError:
        return f"{module_name} has no {attr}"
    if not callable(factory):
        return f"{spec} is not callable"
    try:
        backend = factory()
    except Exception as exc:  # a factory that cannot start (no model file, no key...)
        return f"{spec}() failed: {type(exc).__name__}: {exc}"
    if not isinstance(backend, Backend):
        return f"{spec}() returned {type(backend).__name__}, which has no run(request)"
    return backend


def backend_for(job_type: str) -> Backend:
    """The configured backend for ``job_type``, or BadInput ``BACKEND_NOT_CONFIGURED``."""
    name = env_var(job_type)
    spec = os.environ.get(name, "").strip()
    if not spec:
        raise BadInput(f"no backend is configured for {job_type} ({name} is not set)", code="BACKEND_NOT_CONFIGURED")
    found = _backends.get((job_type, spec), lambda: _load(spec))
    if isinstance(found, str):
        raise BadInput(f"the {job_type} backend is unusable: {found}", code="BACKEND_NOT_CONFIGURED")
    return found


def configured(job_type: str) -> bool:
    """Whether ``job_type`` has a usable backend in this process."""
    try:
        backend_for(job_type)
    except BadInput:
        return False
    return True


def forget_backends() -> None:
    """Drop the loaded backends (tests; a worker keeps them for its lifetime)."""
    _backends.clear()


# --------------------------------------------------------------------------- shapes


def _fail(job_type: str, why: str) -> ProcessingError:
    return ProcessingError(f"the {job_type} backend returned a malformed result: {why}", code="library_error")


def _confidence(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def _box(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    )


def _check_handwriting(out: Mapping[str, Any]) -> str | None:
    if not isinstance(out.get("text"), str):
        return "text must be a string"
    lines = out.get("lines", [])
    if not isinstance(lines, list):
        return "lines must be a list"
    for i, line in enumerate(lines):
        if not isinstance(line, Mapping) or not isinstance(line.get("text"), str):
            return f"lines[{i}] must be an object with a text string"
        if "box" in line and not _box(line["box"]):
            return f"lines[{i}].box must be [x, y, w, h] in pixels"
        if "confidence" in line and not _confidence(line["confidence"]):
            return f"lines[{i}].confidence must be a number in 0..1"
    return None


def _check_problems(out: Mapping[str, Any]) -> str | None:
    problems = out.get("problems")
    if not isinstance(problems, list) or not problems:
        return "problems must be a non-empty list"
    if len(problems) > MAX_PROBLEMS:
        return f"more than {MAX_PROBLEMS} problems"
    for i, p in enumerate(problems):
        if not isinstance(p, Mapping) or not isinstance(p.get("question"), str) or not p["question"].strip():
            return f"problems[{i}] must be an object with a non-empty question"
        if p.get("answer") is not None and not isinstance(p["answer"], str):
            return f"problems[{i}].answer must be a string or null"
        choices = p.get("choices")
        if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)):
            return f"problems[{i}].choices must be a list of strings or null"
    return None


def _check_homework(out: Mapping[str, Any]) -> str | None:
    if not isinstance(out.get("summary"), str):
        return "summary must be a string"
    items = out.get("items")
    if not isinstance(items, list):
        return "items must be a list"
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("label"), str):
            return f"items[{i}] must be an object with a label string"
        if "box" in item and not _box(item["box"]):
            return f"items[{i}].box must be [x, y, w, h] in pixels"
    return None


#: job type -> the check of what its backend returns (None: fine, else why not).
SHAPES: Final[dict[str, Callable[[Mapping[str, Any]], str | None]]] = {
    "handwriting_analysis": _check_handwriting,
    "problem_generation": _check_problems,
    "homework_photo_analysis": _check_homework,
}


def checked(job_type: str, out: Any) -> tuple[dict[str, Any], float]:
    """The backend's output as result data and its confidence, or ProcessingError."""
    if not isinstance(out, Mapping):
        raise _fail(job_type, f"expected an object, got {type(out).__name__}")
    if not _confidence(out.get("confidence")):
        raise _fail(job_type, "confidence must be a number in 0..1")
    why = SHAPES[job_type](out)
    if why is not None:
        raise _fail(job_type, why)
    try:
        data = json.loads(json.dumps(dict(out), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise _fail(job_type, f"not JSON: {exc}") from exc
    return data, float(out["confidence"])


# --------------------------------------------------------------------------- processors


def _image_check(data: bytes | None) -> None:
    """The guarded decoder's header checks, without decoding (the backend decodes)."""
    if data is None:
        raise BadInput("an image is required", code="FILE_REQUIRED")
    if not data:
        raise BadInput("the file is empty", code="EMPTY_FILE")
    kind, w, h = imageio.image_size(data, IMAGE_KINDS)
    imageio.check_size(w, h, max_pixels=MAX_IMAGE_PIXELS, min_side=MIN_IMAGE_SIDE)
    if imageio.looks_truncated(data, kind):
        raise BadInput("the image file is truncated", code="FILE_UNREADABLE")


class _BackendProcessor:
    job_type: ClassVar[str]
    input_key: ClassVar[str | None] = "image_path"
    extensions: ClassVar[frozenset[str]] = IMAGE_EXTENSIONS
    #: the worker only calls the backend; where the model runs is the backend's affair.
    wants_gpu: ClassVar[bool] = False

    def validate(self, params: Mapping[str, Any]) -> None:
        backend = backend_for(self.job_type)
        self.check_params(params)
        extra = getattr(backend, "validate", None)
        if callable(extra):
            extra(params)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """The job type's own parameter checks (BadInput ``INVALID_PAYLOAD``)."""

    def check_input(self, job: JobInput) -> None:
        _image_check(job.data)

    def run(self, job: JobInput) -> ProcessorResult:
        backend = backend_for(self.job_type)
        self.check_params(job.params)
        self.check_input(job)
        job.progress("backend", 10)
        request = BackendRequest(self.job_type, job.params, job.data, job.filename, job.progress)
        try:
            out = backend.run(request)
        except ProcessorException:
            raise
        except (ConnectionError, TimeoutError) as exc:
            raise RetryableError(f"the {self.job_type} backend is unreachable: {exc}") from exc
        except Exception as exc:
            raise ProcessingError(
                f"the {self.job_type} backend failed: {type(exc).__name__}: {exc}", code="library_error"
            ) from exc
        data, confidence = checked(self.job_type, out)
        job.progress("done", 100)
        return ProcessorResult(data=data, confidence=confidence, review=confidence < REVIEW_BELOW)


class HandwritingAnalysisProcessor(_BackendProcessor):
    """``handwriting_analysis``: a photo or scan of handwriting -> its text, by a backend."""

    job_type: ClassVar[str] = "handwriting_analysis"


class ProblemGenerationProcessor(_BackendProcessor):
    """``problem_generation``: problems written from a source text, by a backend."""

    job_type: ClassVar[str] = "problem_generation"
    input_key: ClassVar[str | None] = None
    extensions: ClassVar[frozenset[str]] = frozenset()

    def check_params(self, params: Mapping[str, Any]) -> None:
        text = params.get("ocr_text")
        if not isinstance(text, str) or not text.strip():
            raise BadInput("ocr_text (the source text) is required", code="INVALID_PAYLOAD")
        if len(text) > MAX_SOURCE_CHARS:
            raise BadInput(f"ocr_text is {len(text)} characters; at most {MAX_SOURCE_CHARS}", code="INVALID_PAYLOAD")
        model = params.get("model")
        if model is not None and (not isinstance(model, str) or not 0 < len(model) <= 100):
            raise BadInput("model must be a name of at most 100 characters", code="INVALID_PAYLOAD")
        count = params.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PROBLEMS:
            raise BadInput(f"count must be an integer from 1 to {MAX_PROBLEMS}", code="INVALID_PAYLOAD")

    def check_input(self, job: JobInput) -> None:
        return None


class HomeworkPhotoAnalysisProcessor(_BackendProcessor):
    """``homework_photo_analysis``: the photo quality gate, then a backend."""

    job_type: ClassVar[str] = "homework_photo_analysis"
    extensions: ClassVar[frozenset[str]] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
    #: lite/basic dispatch would measure the photo too (the type is premium-only today).
    quality_gate: ClassVar[bool] = True

    def check_input(self, job: JobInput) -> None:
        from workers.imagecheck import quality_check

        if job.data is None:
            raise BadInput("an image is required", code="FILE_REQUIRED")
        quality_check(job.data)  # RESOLUTION_TOO_LOW, BLUR_OR_SHAKE, TOO_DARK, format errors
