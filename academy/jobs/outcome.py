"""What one run's outcome makes of its job: the policy every run is subject to.

    result ok ........................ status by confidence (tier bands, shadow mode)
    result weak on basic ............. GPU fallback when the tenant pays, else as above
    bad input ........................ REJECTED_BAD_INPUT (or GPU fallback)
    retryable failure, attempts left . RETRYING, re-published with backoff
    any other failure ................ GPU fallback, else DONE+review (lite/basic) / FAILED
    attempts exhausted ............... DONE+review (lite/basic) / FAILED (premium)

The Celery pools (``ai_tasks.lifecycle``) and the internal worker API for
out-of-cluster workers both hand an outcome to :func:`outcome_apply`, so both follow
the same rules. Processors never see any of this.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from academy import flags, policies, selectors
from academy.jobs.finish import Finish, FinishBatch, job_finish, rejection_finish
from academy.jobs.transitions import gpu_fallback_verdict, job_fallback, job_retry
from academy.models import AIJob, AIResult, JobStatus
from academy.policies import Failure
from academy.rejections import rejection_message
from workers.base import ProcessorResult

#: what a run came to: the processor's result, or why there is none
Outcome = ProcessorResult | Failure


def _fallback_or_none(
    job: AIJob,
    token: str | None,
    failure: Failure,
    basic_result: Any,
    policy: selectors.TenantPolicy,
    basic_outcome: dict[str, Any],
) -> bool:
    """Re-route a failed basic job to the premium pool if the tenant qualifies.

    ``basic_outcome`` is how basic would close the job otherwise; the re-run keeps it,
    so a premium run that fails ends no worse (:func:`_basic_kept`). The day's slot is
    taken here, in one conditional UPDATE, right before the hand-over.
    """
    verdict = gpu_fallback_verdict(tier=job.tier, tenant_id=job.tenant_id, failure=failure, policy=policy, take=True)
    if verdict == "capped":
        job.flags = {**job.flags, "fallback_skipped": "daily_cap_reached"}
    if verdict != "go":
        return False
    reason = f"{failure.kind}:{failure.error_code or 'low_confidence'}"
    job_fallback(job_id=job.job_id, token=token, reason=reason, basic_result=basic_result, basic_outcome=basic_outcome)
    return True


def _basic_kept(job: AIJob, *, code: str, detail: str) -> Finish | None:
    """The finish for a premium re-run of a basic job (GPU fallback) whose own run
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
        return Finish(
            status=JobStatus.REJECTED_BAD_INPUT,
            flags={**job.flags, "premium_failed": failed, "rejection_detail": message[:1000]},
            error_message=rejection_message(rejection),
            rejection_code=rejection,
        )
    if basic.get("status") not in (JobStatus.DONE, JobStatus.REVIEW_REQUIRED):
        return None
    stored = AIResult.objects.filter(job_id=job.fallback_from_id).values_list("payload", flat=True).first()
    result = stored.get("basic_result") if isinstance(stored, dict) else None
    given = basic.get("flags")
    basic_flags: dict[str, Any] = given if isinstance(given, dict) else {"review_candidate": True}
    return Finish(
        status=str(basic["status"]),
        flags={**job.flags, **basic_flags, "premium_failed": failed},
        result=result if result is not None else {"error_code": code, "error": detail},
        error_message=message[:2000],
    )


def outcome_apply(job: AIJob, token: str | None, outcome: Outcome, *, batch: FinishBatch | None = None) -> str:
    """Decide the job's next state from one run's outcome and write it. Returns the decision.

    ``batch``: the worker's message holds its finishes there, to write them together
    (and their callbacks, to send as one message); None writes and publishes at once.
    """
    # Read with the job when it was claimed (selectors.job_get): no query of its own.
    policy = selectors.tenant_policy_of(job.tenant)
    if isinstance(outcome, Failure):
        if outcome.retryable and job.attempt_count < job.max_attempts:
            countdown = policies.retry_countdown(
                job.attempt_count, base=settings.AI_RETRY_BACKOFF_BASE, cap=settings.AI_RETRY_BACKOFF_MAX
            )
            job_retry(job_id=job.job_id, token=token or "", error=outcome.detail, countdown=countdown)
            return "retry"
        failure = outcome
        basic_result = {"error_code": outcome.error_code, "error": outcome.detail}
        resolution = policies.status_for_exception(job.tier, error_code=outcome.error_code)
        if outcome.kind == "validation_failed":
            basic_outcome: dict[str, Any] = {
                "status": JobStatus.REJECTED_BAD_INPUT,
                "rejection_code": outcome.error_code,
                "detail": outcome.detail[:1000],
            }
        else:
            basic_outcome = {"status": resolution.status, "flags": resolution.flags}
        if _fallback_or_none(job, token, failure, basic_result, policy, basic_outcome):
            return "fallback"
        kept = _basic_kept(job, code=outcome.error_code, detail=outcome.detail)
        if outcome.kind == "validation_failed":
            if kept is not None and kept.status != JobStatus.REJECTED_BAD_INPUT:
                finish_or_hold(job=job, token=token, finish=kept, batch=batch)
                return kept.status
            rejected = rejection_finish(code=outcome.error_code, detail=outcome.detail)
            finish_or_hold(job=job, token=token, finish=rejected, batch=batch)
            return "rejected"
        finish = Finish(
            status=resolution.status,
            flags={**job.flags, **resolution.flags},
            result={"error_code": outcome.error_code, "error": outcome.detail},
            error_message=outcome.detail[:2000] or outcome.error_code,
        )
        if resolution.status == JobStatus.FAILED and kept is not None:
            finish = kept
        finish_or_hold(job=job, token=token, finish=finish, batch=batch)
        return finish.status

    resolution = policies.status_for_confidence(
        tier=job.tier,
        confidence=outcome.confidence,
        processor_review=outcome.review or outcome.error_code is not None,
        fail_below=policy.premium_fail_below,
        review_below=policy.premium_review_below,
        shadow_mode=flags.flag_enabled(flags.SHADOW_MODE, default=True),
    )
    extra = {"error_code": outcome.error_code} if outcome.error_code else {}
    weak = outcome.error_code is not None or outcome.confidence <= policy.gpu_fallback_threshold
    if weak and job.tier == "basic":
        failure = Failure("processing_failed", error_code=outcome.error_code or "", confidence=outcome.confidence)
        basic_outcome = {"status": resolution.status, "flags": {**resolution.flags, **extra}}
        if _fallback_or_none(job, token, failure, outcome.data, policy, basic_outcome):
            return "fallback"
    finish = Finish(
        status=resolution.status,
        flags={**job.flags, **resolution.flags, **extra},
        result=outcome.data,
        artifacts=list(outcome.artifacts),
    )
    if resolution.status == JobStatus.FAILED:  # premium, below its fail band: say so
        code = outcome.error_code or "low_confidence"
        detail = f"confidence {outcome.confidence:.2f} is below the premium fail band ({policy.premium_fail_below})"
        finish.flags.setdefault("error_code", code)
        finish.error_message = detail
        finish = _basic_kept(job, code=code, detail=detail) or finish
    finish_or_hold(job=job, token=token, finish=finish, batch=batch, claimed=job)
    return finish.status


def finish_or_hold(
    *,
    job: AIJob,
    token: str | None,
    finish: Finish,
    batch: FinishBatch | None,
    claimed: AIJob | None = None,
) -> None:
    """Write the finish (:func:`~academy.jobs.finish.job_finish`), or hold it in
    ``batch`` when the batch can write it; either way its callback goes to the batch's
    held callbacks when there is a batch."""
    if batch is not None and token is not None and batch.takes(token=token, finish=finish, claimed=claimed):
        batch.add(job_id=job.job_id, token=token, finish=finish, claimed=claimed)
        return
    held = batch.held_callbacks if batch is not None else None
    job_finish(job_id=job.job_id, token=token, finish=finish, claimed=claimed, held_callbacks=held)


def exhausted_finish(job: AIJob, *, held_callbacks: list[str] | None = None) -> str:
    """A job out of attempts (a poison message, or a worker killed each time).
    ``held_callbacks``: as for :func:`~academy.jobs.finish.job_finish`."""
    resolution = policies.status_for_exception(job.tier, error_code="max_attempts")
    message = f"gave up after {job.attempt_count} attempts: {job.last_error}"[:2000]
    finish = Finish(
        status=resolution.status,
        flags={**job.flags, **resolution.flags, "poison": True},
        result={"error_code": "max_attempts", "error": job.last_error or "attempts exhausted"},
        error_message=message,
    )
    if resolution.status == JobStatus.FAILED:
        kept = _basic_kept(job, code="max_attempts", detail=message)
        if kept is not None:
            finish = kept
            finish.flags["poison"] = True
    done = job_finish(job_id=job.job_id, token=None, finish=finish, held_callbacks=held_callbacks)
    return finish.status if done else "skipped"
