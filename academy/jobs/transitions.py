"""The transitions after a run other than its finish: retry, GPU fallback, a re-send of a
lost message, and the recovery of a job whose worker died. Each locks the row and checks
the lease (:func:`~academy.jobs.claims.locked_run`) before it writes.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from academy import policies, selectors
from academy.jobs.claims import lease_expired_error, locked_run, run_close
from academy.jobs.decision import fallback_wanted
from academy.jobs.publish import job_publish
from academy.models import AIJob, AIResult, FallbackQuota, JobStatus

logger = logging.getLogger(__name__)


def fallback_slot_take(*, tenant_id: int, cap: int) -> bool:
    """Take one of today's GPU fallbacks for the tenant; False when ``cap`` are taken.

    One conditional UPDATE (``used < cap``) on the tenant's row for the day: concurrent
    callers queue on its row lock and each sees the count the one before left, so the
    cap holds however many fallbacks arrive at once (a read of the count, then the
    hand-over, let them all pass the last slot).
    """
    if cap <= 0:
        return False
    today = timezone.localdate()
    quota = FallbackQuota.objects.filter(tenant_id=tenant_id, day=today, used__lt=cap)
    if quota.update(used=F("used") + 1):
        return True
    FallbackQuota.objects.get_or_create(tenant_id=tenant_id, day=today)  # the day's first (or it is full)
    return quota.update(used=F("used") + 1) == 1


def gpu_fallback_verdict(
    *,
    tier: str,
    tenant_id: int | None,
    failure: policies.Failure,
    policy: selectors.TenantPolicy,
) -> str:
    """Whether a basic failure goes to the GPU pool: "go", "no" (the tenant does not pay
    for it, or the failure does not qualify) or "capped" (today's fallbacks are spent).

    For a caller that only asks (dispatch's quality gate): the cap is read, not taken.
    A run's outcome takes the day's slot as it hands the job over
    (:func:`~academy.jobs.outcome.outcome_apply`); both go by
    :func:`~academy.jobs.decision.fallback_wanted`, so they cannot disagree about the
    rules. ``policy`` is the tenant's as the caller read it.
    """
    if tenant_id is None or not fallback_wanted(tier=tier, tenant_id=tenant_id, failure=failure, policy=policy):
        return "no"
    return "go" if selectors.fallbacks_today(tenant_id) < policy.daily_fallback_cap else "capped"


def job_retry(*, job_id: str, token: str, error: str, countdown: float) -> bool:
    """Put the job back as RETRYING and re-publish it after ``countdown`` seconds."""
    due = timezone.now() + timedelta(seconds=countdown)
    with transaction.atomic():
        job = locked_run(job_id, token)
        if job is None:
            return False
        run_close(job, status=JobStatus.RETRYING, next_run_at=due, last_error=error[:5000], finished_at=None)
        transaction.on_commit(lambda: job_publish(job_id=job_id, tier=job.tier, countdown=countdown, fail=False))
    return True


def job_fallback(
    *,
    job_id: str,
    token: str | None,
    reason: str,
    basic_result: Any = None,
    basic_outcome: dict[str, Any] | None = None,
) -> str | None:
    """Close a basic job as FALLBACK_TO_GPU and start its premium re-run.

    Returns the premium job's id, or None when this run no longer owns the job. The
    re-run's idempotency key is derived from the basic job, so a redelivered basic
    message can never start two premium runs. ``basic_outcome``: how basic's own policy
    would have closed the job (status, flags or rejection code), kept in the re-run's
    flags, so a premium run that fails ends no worse than that.
    """
    with transaction.atomic():
        job = locked_run(job_id, token)
        if job is None:
            return None
        rerun, created = AIJob.objects.get_or_create(
            idempotency_key=f"fallback:{job.job_id}",
            defaults={
                "job_type": job.job_type,
                "payload": job.payload,
                "tenant": job.tenant,
                "tier": "premium",
                "source_domain": job.source_domain,
                "source_id": job.source_id,
                "max_attempts": job.max_attempts,
                "fallback_from": job,
                "fallback_from_tier": job.tier,
                "flags": {"fallback_reason": reason, **({"basic_outcome": basic_outcome} if basic_outcome else {})},
            },
        )
        if not AIResult.objects.filter(job=job).exists():
            AIResult.objects.create(job=job, payload={"fallback_job_id": rerun.job_id, "basic_result": basic_result})
        run_close(
            job,
            status=JobStatus.FALLBACK_TO_GPU,
            flags={**job.flags, "fallback_reason": reason, "fallback_job_id": rerun.job_id},
            error_message=reason,
        )
        if created:
            transaction.on_commit(lambda: job_publish(job_id=rerun.job_id, tier="premium"))
    return rerun.job_id


def job_republish(*, job: AIJob) -> bool:
    """Re-send a job whose message was lost; push its next check further out each time."""
    backoff = settings.AI_REPUBLISH_AFTER_SECONDS * min(job.publish_count + 1, 8)
    moved = AIJob.objects.filter(pk=job.pk, status=job.status, next_run_at=job.next_run_at).update(
        next_run_at=timezone.now() + timedelta(seconds=backoff)
    )
    return moved == 1 and job_publish(job_id=job.job_id, tier=job.tier, fail=False)


def job_requeue_expired(*, job: AIJob) -> bool:
    """A RUNNING job whose lease expired: its worker died. Back to RETRYING and re-publish.

    The dead run counts as an attempt (it was counted at claim), so a job that kills its
    worker every time stops at ``max_attempts`` instead of looping forever.
    """
    with transaction.atomic():
        locked = locked_run(job.job_id, None)
        if locked is None:
            return False
        run_close(
            locked,
            status=JobStatus.RETRYING,
            next_run_at=timezone.now() + timedelta(seconds=settings.AI_REPUBLISH_AFTER_SECONDS),
            last_error=lease_expired_error(locked_by=locked.locked_by, attempt=locked.attempt_count),
            lease_lost_attempt=locked.attempt_count,
            finished_at=None,
        )
        transaction.on_commit(lambda: job_publish(job_id=locked.job_id, tier=locked.tier, fail=False))
    return True
