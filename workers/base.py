"""The contract between the platform and a processor.

A processor is pure: it gets the input file's bytes (if the job has one) and the job's
parameters, and returns a :class:`ProcessorResult`. It imports neither Django nor Celery,
so each one runs and is tested on its own. ``ai_tasks`` reads the bytes from storage,
calls the processor and turns its result (or the exception it raised) into a job status.

Failures a processor foresees are *data*: a low confidence or an ``error_code`` on the
result. Exceptions are for what it cannot carry on from:

- :class:`BadInput` - the input itself is wrong (corrupt file, unknown encoding...).
  It carries one of the platform's rejection codes; the job ends REJECTED_BAD_INPUT
  (or falls back to the GPU pool, where the tenant pays for that).
- :class:`RetryableError` - a passing fault (a busy dependency); the lifecycle backs
  off and runs the job again, up to the job's ``max_attempts``.
- :class:`ProcessingError` - it ran and could not produce a result; ``error_code`` is
  one of the fallback codes (``library_error``, ``corrupted_file``, ``timeout``,
  ``low_quality``) where one fits.

Anything else raised is a bug; the lifecycle records it as ``library_error``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

ProgressFn = Callable[[str, int], None]
"""``progress(stage, percent)``: tells the platform how far a job is (0..100)."""


def _no_progress(stage: str, percent: int) -> None:
    return None


@dataclass(frozen=True)
class JobInput:
    """What a processor receives."""

    params: Mapping[str, Any]
    data: bytes | None = None
    filename: str = ""
    attempt: int = 1
    progress: ProgressFn = _no_progress


@dataclass(frozen=True)
class Artifact:
    """A file a processor produced (an overlay PNG, an .xlsx export...).

    The platform stores it next to the job and puts its storage path in the result.
    """

    name: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class ProcessorResult:
    data: dict[str, Any]
    confidence: float = 1.0
    review: bool = False
    error_code: str | None = None
    artifacts: tuple[Artifact, ...] = field(default_factory=tuple)


class ProcessorException(Exception):
    """Base of the exceptions a processor may raise on purpose."""

    code: str = "library_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadInput(ProcessorException):
    """The input is wrong; ``code`` is a rejection code (``INVALID_FORMAT``, ...)."""

    code = "INVALID_FORMAT"


class RetryableError(ProcessorException):
    code = "transient"


class ProcessingError(ProcessorException):
    code = "library_error"


class Processor(Protocol):
    """One kind of job. Register an instance with :func:`workers.registry.register`."""

    job_type: ClassVar[str]
    #: payload key holding the storage path of the input file, or None for no file.
    input_key: ClassVar[str | None]
    #: lower-case file extensions accepted for that file (".xlsx", ".csv"...).
    extensions: ClassVar[frozenset[str]]
    #: whether the processor runs faster on a GPU (premium pool only).
    wants_gpu: ClassVar[bool]

    def validate(self, params: Mapping[str, Any]) -> None:
        """Check the parameters before a job exists; raise :class:`BadInput`."""

    def run(self, job: JobInput) -> ProcessorResult:
        """Do the work."""
        ...
