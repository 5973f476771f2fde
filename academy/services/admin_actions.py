"""Writes ops start from the Django admin: re-running a job, on its tier or on premium.

A re-run never touches the original row: it is a new job, dispatched like any other
(pre-validation, tier resolution, publish on commit) with ``force_rerun`` and a reason.
Its flags record where it came from (``rerun_of``, ``rerun_by``), which the admin
shows as lineage next to the GPU-fallback chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from django.db import transaction

from academy.jobs.dispatch import job_dispatch
from academy.models import AIJob, JobStatus

#: Statuses the plain "retry" action accepts; "force rerun" accepts any finished job.
RETRYABLE_STATUSES: Final = frozenset({JobStatus.FAILED, JobStatus.REJECTED_BAD_INPUT})


@dataclass(frozen=True)
class RerunOutcome:
    source_job_id: str
    ok: bool
    job_id: str | None = None
    tier: str | None = None
    error: str = ""
    warning: str = ""


def job_rerun(*, job: AIJob, reason: str, actor: str, tier: str | None = None) -> RerunOutcome:
    """Dispatch a new job with ``job``'s type, payload, tenant and source.

    ``tier`` None keeps the job's tier. The new job's flags carry ``rerun_of`` and
    ``rerun_by``. A dispatch refused by pre-validation (the input is still bad) comes back
    with ``ok=False`` and the error; no row is made then.
    """
    reason = reason.strip()
    if not reason:
        return RerunOutcome(job.job_id, ok=False, error="a reason is required")
    if not job.is_terminal:
        return RerunOutcome(job.job_id, ok=False, error=f"job is {job.status}, not finished")
    wanted = tier or job.tier
    with transaction.atomic():  # the flags land before the message is published
        outcome = job_dispatch(
            job_type=job.job_type,
            payload=job.payload,
            tenant=job.tenant,
            source_domain=job.source_domain,
            source_id=job.source_id,
            tier=wanted,
            force_rerun=True,
            rerun_reason=reason[:2000],
        )
        new_id = outcome.get("job_id")
        if not outcome.get("ok") or not new_id:
            return RerunOutcome(job.job_id, ok=False, job_id=new_id, error=str(outcome.get("error") or "refused"))
        rerun = AIJob.objects.select_for_update().get(job_id=new_id)
        rerun.flags = {**rerun.flags, "rerun_of": job.job_id, "rerun_by": actor}
        rerun.save(update_fields=["flags", "updated_at"])
    warning = str(rerun.flags.get("tier_warning") or "")
    return RerunOutcome(job.job_id, ok=True, job_id=rerun.job_id, tier=rerun.tier, warning=warning)


def job_admin_retry(*, job: AIJob, actor: str) -> RerunOutcome:
    """Retry a FAILED or REJECTED_BAD_INPUT job on its own tier."""
    if job.status not in RETRYABLE_STATUSES:
        return RerunOutcome(job.job_id, ok=False, error=f"only FAILED or REJECTED jobs are retried, not {job.status}")
    return job_rerun(job=job, reason=f"admin retry by {actor}", actor=actor)


def job_send_to_premium(*, job: AIJob, actor: str, reason: str = "") -> RerunOutcome:
    """Re-run a finished job on the premium (GPU) pool.

    Tier rules still apply: a tenant without the premium subscription gets basic, and
    the outcome's ``warning`` says so.
    """
    return job_rerun(job=job, reason=reason or f"sent to premium by {actor}", actor=actor, tier="premium")
