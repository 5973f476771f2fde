"""Business rules as pure functions: tiers, status resolution, GPU fallback, backoff.

No I/O here; the outcome decision (academy/jobs/outcome.py) and dispatch read the rows
and the flags, call these and write what they decide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from celery.utils.time import get_exponential_backoff_interval

from academy.states import NO_FAIL_TIERS, TIERS, JobStatus

logger = logging.getLogger(__name__)

ALL_TIERS: Final = frozenset(TIERS)


@dataclass(frozen=True)
class JobTypeSpec:
    default_tier: str
    allowed_tiers: frozenset[str]
    max_file_mb: int = 50
    #: the JSON payload's cap in bytes; None: settings.MAX_PAYLOAD_BYTES. Exports carry
    #: their rows in the payload, so theirs is larger.
    max_payload_bytes: int | None = None


EXPORT_PAYLOAD_BYTES: Final = 8 * 1024 * 1024  # ~25,000 attendance rows
_LITE_UP = ALL_TIERS
_BASIC_UP = frozenset({"basic", "premium"})
_PREMIUM = frozenset({"premium"})

# Lite runs CPU OCR only; basic adds OMR, video checks and Excel; premium runs anything.
JOB_TYPES: Final[dict[str, JobTypeSpec]] = {
    "ping": JobTypeSpec("basic", _LITE_UP),  # the platform's probe runs on every pool
    "ocr": JobTypeSpec("basic", _LITE_UP),
    "omr_grading": JobTypeSpec("basic", _BASIC_UP),
    "omr_template": JobTypeSpec("basic", _BASIC_UP),
    "homework_video_analysis": JobTypeSpec("basic", _BASIC_UP, max_file_mb=500),
    "excel_parsing": JobTypeSpec("basic", _BASIC_UP),
    "attendance_excel_export": JobTypeSpec("basic", _BASIC_UP, max_payload_bytes=EXPORT_PAYLOAD_BYTES),
    "staff_excel_export": JobTypeSpec("basic", _BASIC_UP, max_payload_bytes=EXPORT_PAYLOAD_BYTES),
    "question_segmentation": JobTypeSpec("premium", _PREMIUM),
    "handwriting_analysis": JobTypeSpec("premium", _PREMIUM),
    "embedding": JobTypeSpec("premium", _PREMIUM),
    "problem_generation": JobTypeSpec("premium", _PREMIUM),
    "essay_answer_extraction": JobTypeSpec("premium", _PREMIUM),
    "homework_photo_analysis": JobTypeSpec("premium", _PREMIUM, max_file_mb=20),
}


def register_job_type(job_type: str, spec: JobTypeSpec) -> None:
    """Add a job type (plug-ins; the integration tests' probe processors)."""
    JOB_TYPES[job_type] = spec


@dataclass(frozen=True)
class TierDecision:
    tier: str
    warning: str = ""


def tier_resolve(
    *,
    job_type: str,
    explicit: str | None,
    payload: dict[str, Any],
    tenant_override: str = "",
    has_premium: bool = False,
) -> TierDecision:
    """Explicit argument, then the payload's ``tier``, then the tenant's, then the type's default.

    Two rules are this platform's, not the original's: a premium request from a tenant
    without the subscription runs on basic, and a type that basic cannot run (the
    original sent it to basic regardless) goes to its lowest allowed tier instead.
    """
    spec = JOB_TYPES[job_type]
    candidates = (explicit, payload.get("tier"), tenant_override, spec.default_tier)
    tier = next((str(c).lower() for c in candidates if isinstance(c, str) and c.lower() in ALL_TIERS), "basic")
    warning = ""
    if tier == "premium" and not has_premium and spec.allowed_tiers != _PREMIUM:
        warning = "premium requested without a premium subscription; using basic"
        tier = "basic"
    if tier not in spec.allowed_tiers:
        fallback = "basic" if "basic" in spec.allowed_tiers else min(spec.allowed_tiers, key=TIERS.index)
        warning = f"tier {tier} cannot run {job_type}; using {fallback}"
        tier = fallback
    if warning:
        logger.warning("tier_resolve job_type=%s: %s", job_type, warning)
    return TierDecision(tier, warning)


@dataclass(frozen=True)
class Resolution:
    status: str
    flags: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_review(self) -> bool:
        return self.status == JobStatus.REVIEW_REQUIRED or bool(self.flags.get("review_candidate"))


def status_for_exception(tier: str, *, error_code: str) -> Resolution:
    """Lite and basic never fail: an error is DONE with a review flag. Premium fails."""
    if tier in NO_FAIL_TIERS:
        return Resolution(JobStatus.DONE, {"review_candidate": True, "from_exception": True, "error_code": error_code})
    return Resolution(JobStatus.FAILED, {"error_code": error_code})


def status_for_confidence(
    *,
    tier: str,
    confidence: float,
    processor_review: bool,
    fail_below: float = 0.5,
    review_below: float = 0.8,
    shadow_mode: bool = True,
) -> Resolution:
    """Premium: FAILED below ``fail_below``, REVIEW_REQUIRED below ``review_below``.

    In shadow mode (the default) REVIEW_REQUIRED is not shown yet: such a result is DONE
    with ``review_candidate``, so the band can be watched before teachers see it.
    Lite and basic are always DONE, flagged below ``review_below``. A processor may
    flag its own result for review (an unsure OMR bubble) at any confidence.
    """
    flags: dict[str, Any] = {"confidence": round(confidence, 4)}
    if tier in NO_FAIL_TIERS:
        return Resolution(JobStatus.DONE, {**flags, "review_candidate": processor_review or confidence < review_below})
    if confidence < fail_below:
        return Resolution(JobStatus.FAILED, flags)
    if confidence < review_below or processor_review:
        if shadow_mode:
            return Resolution(JobStatus.DONE, {**flags, "review_candidate": True, "shadow": True})
        return Resolution(JobStatus.REVIEW_REQUIRED, {**flags, "review_candidate": True})
    return Resolution(JobStatus.DONE, {**flags, "review_candidate": False})


FALLBACK_ERROR_CODES: Final = frozenset({"library_error", "corrupted_file", "timeout", "low_quality"})
#: what basic's quality gate refuses and the premium pipeline may still read: for a
#: tenant with the GPU fallback, such a scan goes to premium instead of being refused.
QUALITY_GATE_CODES: Final = frozenset({"BLUR_OR_SHAKE", "TOO_DARK", "RESOLUTION_TOO_LOW", "OMR_PHOTO_NOT_ALLOWED"})


@dataclass(frozen=True)
class Failure:
    """Why a run produced no result worth keeping, and whether another attempt may help.

    ``confidence``: a weak reading's, when the run did produce one (a basic reading at
    or below the tenant's GPU-fallback threshold)."""

    kind: str  # "validation_failed" | "processing_failed"
    error_code: str = ""
    confidence: float | None = None
    detail: str = ""
    retryable: bool = False


def fallback_qualifies(
    *,
    tier: str,
    failure: Failure,
    has_premium: bool,
    allow_gpu_fallback: bool,
    threshold: float,
) -> bool:
    """A basic failure goes to the premium GPU pool when the tenant pays for that.

    A validation failure qualifies at once; a processing failure qualifies on a
    confidence at or below the tenant's threshold, or on one of the fallback error codes.
    """
    if tier != "basic" or not (has_premium and allow_gpu_fallback):
        return False
    if failure.kind == "validation_failed":
        return True
    if failure.kind == "processing_failed":
        if failure.confidence is not None and failure.confidence <= threshold:
            return True
        return failure.error_code in FALLBACK_ERROR_CODES
    return False


def retry_countdown(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before retry ``attempt``: exponential backoff with full jitter, drawn from
    0 to min(``cap``, ``base`` * 2**(attempt - 1)) (``AI_RETRY_BACKOFF_BASE``, ``_MAX``).

    Celery's own backoff (the one ``autoretry_for`` uses) draws it. It counts in whole
    units, so it is given milliseconds: a base under a second still backs off. Full jitter
    spreads a burst of failures (a dependency that blinked) over the window instead of
    retrying them all in lock-step.
    """
    millis = get_exponential_backoff_interval(
        factor=round(base * 1000), retries=max(0, attempt - 1), maximum=round(cap * 1000), full_jitter=True
    )
    return millis / 1000


def doubling_wait(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before try ``attempt`` of something re-sent on a schedule: ``base``, then
    twice that each time, at most ``cap``; no jitter. Celery's backoff again, in milliseconds."""
    millis = get_exponential_backoff_interval(
        factor=round(base * 1000), retries=max(0, attempt - 1), maximum=round(cap * 1000)
    )
    return millis / 1000
