"""What one run's outcome makes of its job, decided without reading or writing anything.

    result ok ........................ status by confidence (tier bands, shadow mode)
    result weak on basic ............. GPU fallback when the tenant pays, else as above
    bad input ........................ REJECTED_BAD_INPUT (or GPU fallback)
    retryable failure, attempts left . RETRYING, re-published with backoff
    any other failure ................ GPU fallback, else DONE+review (lite/basic) / FAILED
    attempts exhausted ............... DONE+review (lite/basic) / FAILED (premium)

:func:`outcome_decide` takes everything it looks at as arguments (the job's facts, the
tenant's policy, the shadow-mode flag, the backoff settings) and returns a
:data:`Transition`; :func:`academy.jobs.outcome.outcome_apply` reads those inputs and
writes the transition. Keeping the rules here, apart from the writes, lets every branch
be tested without a database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from academy import policies
from academy.policies import Failure
from academy.rejections import rejection_message
from academy.states import JobStatus
from workers.base import Artifact, ProcessorResult

if TYPE_CHECKING:  # the type only: the decision reads no row
    from academy.selectors import TenantPolicy

#: what a run came to: the processor's result, or why there is none
Outcome = ProcessorResult | Failure


@dataclass
class Finish:
    status: str
    flags: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error_message: str = ""
    rejection_code: str = ""
    artifacts: list[Artifact] = field(default_factory=list)  # the processor's files, to store

    @property
    def stores_result(self) -> bool:
        """Whether this close writes ``result`` (once): a finished run's outcome, not a
        rejection, a retry or a hand-over."""
        return self.result is not None and self.status in (JobStatus.DONE, JobStatus.REVIEW_REQUIRED, JobStatus.FAILED)


def rejection_finish(*, code: str, detail: str) -> Finish:
    """The finish for input the worker found bad: REJECTED_BAD_INPUT with the code and
    its message."""
    return Finish(
        status=JobStatus.REJECTED_BAD_INPUT,
        flags={"rejection_detail": detail[:1000]},
        error_message=rejection_message(code),
        rejection_code=code,
    )


@dataclass(frozen=True)
class JobFacts:
    """What the decision reads of the claimed job."""

    tier: str
    tenant_id: int | None
    attempt_count: int
    max_attempts: int
    flags: dict[str, Any] = field(default_factory=dict)
    #: the basic job this premium job re-runs (GPU fallback), if it is one
    fallback_from_id: int | None = None


@dataclass(frozen=True)
class Close:
    """Close the job with ``finish``. ``answer`` is what :func:`outcome_apply` returns.

    ``basic_result_of``: a premium re-run that fails keeps basic's outcome, and with it
    basic's stored result, which lives in the database: the applier reads it from that
    job and puts it in place of ``finish.result`` when there is one. ``claimed``: the
    writer may use the claimed job's row as read (a run's own result)."""

    finish: Finish
    answer: str
    basic_result_of: int | None = None
    claimed: bool = False


@dataclass(frozen=True)
class Done(Close):
    """DONE or REVIEW_REQUIRED (a review flag, if any, is in ``finish.flags``)."""


@dataclass(frozen=True)
class Reject(Close):
    """REJECTED_BAD_INPUT with ``finish.rejection_code``."""


@dataclass(frozen=True)
class Fail(Close):
    """FAILED (premium only: lite and basic never fail)."""


@dataclass(frozen=True)
class Retry:
    """Back to RETRYING, re-published after ``countdown`` seconds."""

    countdown: float
    error: str


@dataclass(frozen=True)
class Fallback:
    """Hand the basic job to the premium GPU pool, if today's slot can be taken.

    ``capped`` is what to do when the tenant's daily cap is reached: the close basic's
    own policy makes, with ``fallback_skipped`` in its flags."""

    reason: str
    basic_result: Any
    basic_outcome: dict[str, Any]
    #: the tenant's daily fallback cap, checked as the slot is taken
    cap: int
    capped: Close


#: a close is one of Done, Reject or Fail
Transition = Retry | Fallback | Close


def _close(
    finish: Finish, *, answer: str | None = None, basic_result_of: int | None = None, claimed: bool = False
) -> Close:
    kind: type[Close]
    if finish.status == JobStatus.REJECTED_BAD_INPUT:
        kind = Reject
    elif finish.status == JobStatus.FAILED:
        kind = Fail
    else:
        kind = Done
    return kind(finish=finish, answer=answer or finish.status, basic_result_of=basic_result_of, claimed=claimed)


def basic_kept(job: JobFacts, *, code: str, detail: str) -> Close | None:
    """The close for a premium re-run of a basic job (GPU fallback) whose own run
    failed or refused: what basic's policy would have written (its DONE-plus-review
    result, or its refusal with the code), with the premium failure recorded under
    ``premium_failed``. Paying for the GPU pool never leaves a job worse than basic
    would have. None for any other job: its own outcome stands."""
    basic = job.flags.get("basic_outcome") if job.tier == "premium" and job.fallback_from_id else None
    if not isinstance(basic, dict):
        return None
    failed = {"code": code, "detail": detail[:500]}
    message = f"the premium re-run failed ({code}: {detail[:300]}); basic's outcome stands"
    if basic.get("status") == JobStatus.REJECTED_BAD_INPUT and basic.get("rejection_code"):
        rejection = str(basic["rejection_code"])
        return _close(
            Finish(
                status=JobStatus.REJECTED_BAD_INPUT,
                flags={**job.flags, "premium_failed": failed, "rejection_detail": message[:1000]},
                error_message=rejection_message(rejection),
                rejection_code=rejection,
            )
        )
    if basic.get("status") not in (JobStatus.DONE, JobStatus.REVIEW_REQUIRED):
        return None
    given = basic.get("flags")
    basic_flags: dict[str, Any] = given if isinstance(given, dict) else {"review_candidate": True}
    return _close(
        Finish(
            status=str(basic["status"]),
            flags={**job.flags, **basic_flags, "premium_failed": failed},
            result={"error_code": code, "error": detail},
            error_message=message[:2000],
        ),
        basic_result_of=job.fallback_from_id,
    )


def fallback_wanted(*, tier: str, tenant_id: int | None, failure: Failure, policy: TenantPolicy) -> bool:
    """Whether a failure goes to the GPU pool, the daily cap aside: a basic job of a
    tenant that pays for the fallback, on a failure that qualifies
    (:func:`~academy.policies.fallback_qualifies`)."""
    return tenant_id is not None and policies.fallback_qualifies(
        tier=tier,
        failure=failure,
        has_premium=policy.has_premium_subscription,
        allow_gpu_fallback=policy.allow_gpu_fallback,
        threshold=policy.gpu_fallback_threshold,
    )


def _fallback_or(
    job: JobFacts,
    failure: Failure,
    *,
    policy: TenantPolicy,
    basic_result: Any,
    basic_outcome: dict[str, Any],
    otherwise: Callable[[JobFacts], Close],
) -> Transition:
    """A GPU fallback when the failure and the tenant qualify, else ``otherwise(job)``.

    The daily cap is the applier's to check, as it takes the slot; the fallback carries
    ``otherwise`` for a job whose flags say the cap was reached. ``basic_outcome`` is
    how basic would close the job otherwise; the re-run keeps it, so a premium run that
    fails ends no worse (:func:`basic_kept`)."""
    if not fallback_wanted(tier=job.tier, tenant_id=job.tenant_id, failure=failure, policy=policy):
        return otherwise(job)
    return Fallback(
        reason=f"{failure.kind}:{failure.error_code or 'low_confidence'}",
        basic_result=basic_result,
        basic_outcome=basic_outcome,
        cap=policy.daily_fallback_cap,
        capped=otherwise(replace(job, flags={**job.flags, "fallback_skipped": "daily_cap_reached"})),
    )


def _failure_close(job: JobFacts, failure: Failure, resolution: policies.Resolution) -> Close:
    """The close of a run that failed for good (no retry, no fallback)."""
    kept = basic_kept(job, code=failure.error_code, detail=failure.detail)
    if failure.kind == "validation_failed":
        if kept is not None and kept.finish.status != JobStatus.REJECTED_BAD_INPUT:
            return kept
        return _close(rejection_finish(code=failure.error_code, detail=failure.detail), answer="rejected")
    if resolution.status == JobStatus.FAILED and kept is not None:
        return kept
    return _close(
        Finish(
            status=resolution.status,
            flags={**job.flags, **resolution.flags},
            result={"error_code": failure.error_code, "error": failure.detail},
            error_message=failure.detail[:2000] or failure.error_code,
        )
    )


def _result_close(
    job: JobFacts,
    result: ProcessorResult,
    resolution: policies.Resolution,
    extra: dict[str, Any],
    policy: TenantPolicy,
) -> Close:
    """The close of a run that produced a result (no fallback)."""
    finish = Finish(
        status=resolution.status,
        flags={**job.flags, **resolution.flags, **extra},
        result=result.data,
        artifacts=list(result.artifacts),
    )
    if resolution.status == JobStatus.FAILED:  # premium, below its fail band: say so
        code = result.error_code or "low_confidence"
        detail = f"confidence {result.confidence:.2f} is below the premium fail band ({policy.premium_fail_below})"
        finish.flags.setdefault("error_code", code)
        finish.error_message = detail
        kept = basic_kept(job, code=code, detail=detail)
        if kept is not None:
            return replace(kept, claimed=True)
    return _close(finish, claimed=True)


def outcome_decide(
    job: JobFacts,
    outcome: Outcome,
    *,
    policy: TenantPolicy,
    shadow_mode: bool,
    backoff_base: float,
    backoff_max: float,
) -> Transition:
    """The job's next state after one run's ``outcome``, by the rules in this module's
    opening. ``policy``: the tenant's; ``shadow_mode``: whether a premium result in the
    review band is DONE with a review flag rather than REVIEW_REQUIRED;
    ``backoff_base``/``backoff_max``: the retry backoff, in seconds."""
    if isinstance(outcome, Failure):
        if outcome.retryable and job.attempt_count < job.max_attempts:
            countdown = policies.retry_countdown(job.attempt_count, base=backoff_base, cap=backoff_max)
            return Retry(countdown=countdown, error=outcome.detail)
        resolution = policies.status_for_exception(job.tier, error_code=outcome.error_code)
        basic_outcome: dict[str, Any]
        if outcome.kind == "validation_failed":
            basic_outcome = {
                "status": JobStatus.REJECTED_BAD_INPUT,
                "rejection_code": outcome.error_code,
                "detail": outcome.detail[:1000],
            }
        else:
            basic_outcome = {"status": resolution.status, "flags": resolution.flags}
        failure = outcome
        return _fallback_or(
            job,
            failure,
            policy=policy,
            basic_result={"error_code": outcome.error_code, "error": outcome.detail},
            basic_outcome=basic_outcome,
            otherwise=lambda facts: _failure_close(facts, failure, resolution),
        )

    resolution = policies.status_for_confidence(
        tier=job.tier,
        confidence=outcome.confidence,
        processor_review=outcome.review or outcome.error_code is not None,
        fail_below=policy.premium_fail_below,
        review_below=policy.premium_review_below,
        shadow_mode=shadow_mode,
    )
    extra = {"error_code": outcome.error_code} if outcome.error_code else {}
    result = outcome

    def otherwise(facts: JobFacts) -> Close:
        return _result_close(facts, result, resolution, extra, policy)

    weak = outcome.error_code is not None or outcome.confidence <= policy.gpu_fallback_threshold
    if not (weak and job.tier == "basic"):
        return otherwise(job)
    return _fallback_or(
        job,
        Failure("processing_failed", error_code=outcome.error_code or "", confidence=outcome.confidence),
        policy=policy,
        basic_result=outcome.data,
        basic_outcome={"status": resolution.status, "flags": {**resolution.flags, **extra}},
        otherwise=otherwise,
    )


def exhausted_decide(job: JobFacts, *, last_error: str | None) -> Close:
    """The close of a job out of attempts (a poison message, or a worker killed each
    time): lite and basic DONE with a review flag, premium FAILED (or basic's outcome,
    for a premium re-run), flagged ``poison``."""
    resolution = policies.status_for_exception(job.tier, error_code="max_attempts")
    message = f"gave up after {job.attempt_count} attempts: {last_error}"[:2000]
    if resolution.status == JobStatus.FAILED:
        kept = basic_kept(job, code="max_attempts", detail=message)
        if kept is not None:
            kept.finish.flags["poison"] = True
            return kept
    return _close(
        Finish(
            status=resolution.status,
            flags={**job.flags, **resolution.flags, "poison": True},
            result={"error_code": "max_attempts", "error": last_error or "attempts exhausted"},
            error_message=message,
        )
    )
