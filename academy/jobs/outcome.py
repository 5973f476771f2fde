"""Writing what one run's outcome makes of its job.

The rules live in :mod:`academy.jobs.decision`, as pure code that returns a transition;
this module reads what they need (the tenant's policy, the shadow-mode flag, the
backoff settings), writes the transition and, for a GPU fallback, takes the day's slot
right before the hand-over. The Celery pools (``ai_tasks.lifecycle``) and the internal
worker API for out-of-cluster workers both hand an outcome to :func:`outcome_apply`, so
both follow the same rules. Processors never see any of this.
"""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings

from academy import flags, selectors
from academy.jobs.decision import (
    Close,
    Fallback,
    Finish,
    JobFacts,
    Retry,
    Transition,
    exhausted_decide,
    outcome_decide,
)
from academy.jobs.decision import Outcome as Outcome
from academy.jobs.finish import FinishBatch, job_finish
from academy.jobs.transitions import fallback_slot_take, job_fallback, job_retry
from academy.models import AIJob, AIResult
from academy.policies import Failure


def job_facts(job: AIJob) -> JobFacts:
    """What :func:`~academy.jobs.decision.outcome_decide` reads of the claimed job."""
    return JobFacts(
        tier=job.tier,
        tenant_id=job.tenant_id,
        attempt_count=job.attempt_count,
        max_attempts=job.max_attempts,
        flags=job.flags,
        fallback_from_id=job.fallback_from_id,
    )


def outcome_apply(job: AIJob, token: str | None, outcome: Outcome, *, batch: FinishBatch | None = None) -> str:
    """Decide the job's next state from one run's outcome and write it. Returns the decision.

    ``batch``: the worker's message holds its finishes there, to write them together
    (and their callbacks, to send as one message); None writes and publishes at once.
    """
    # Read with the job when it was claimed (selectors.job_get): no query of its own.
    policy = selectors.tenant_policy_of(job.tenant)
    # Only a result's confidence band looks at shadow mode: a failure does not read it.
    shadow = True if isinstance(outcome, Failure) else flags.flag_enabled(flags.SHADOW_MODE, default=True)
    transition = outcome_decide(
        job_facts(job),
        outcome,
        policy=policy,
        shadow_mode=shadow,
        backoff_base=settings.AI_RETRY_BACKOFF_BASE,
        backoff_max=settings.AI_RETRY_BACKOFF_MAX,
    )
    return transition_apply(job, token, transition, batch=batch)


def transition_apply(job: AIJob, token: str | None, transition: Transition, *, batch: FinishBatch | None) -> str:
    """Write ``transition`` for the run holding ``token``. Returns what
    :func:`outcome_apply` returns: "retry", "fallback", "rejected" or the status."""
    if isinstance(transition, Retry):
        job_retry(job_id=job.job_id, token=token or "", error=transition.error, countdown=transition.countdown)
        return "retry"
    if isinstance(transition, Fallback):
        # The day's slot is taken in one conditional UPDATE, right before the hand-over.
        if job.tenant_id is not None and fallback_slot_take(tenant_id=job.tenant_id, cap=transition.cap):
            job_fallback(
                job_id=job.job_id,
                token=token,
                reason=transition.reason,
                basic_result=transition.basic_result,
                basic_outcome=transition.basic_outcome,
            )
            return "fallback"
        job.flags = {**job.flags, "fallback_skipped": "daily_cap_reached"}
        return transition_apply(job, token, transition.capped, batch=batch)
    finish = _with_basic_result(transition)
    finish_or_hold(job=job, token=token, finish=finish, batch=batch, claimed=job if transition.claimed else None)
    return transition.answer


def _with_basic_result(close: Close) -> Finish:
    """The close's finish, with basic's stored result in place when it keeps basic's
    outcome (a premium re-run that failed) and basic stored one."""
    if close.basic_result_of is None:
        return close.finish
    stored = AIResult.objects.filter(job_id=close.basic_result_of).values_list("payload", flat=True).first()
    result = stored.get("basic_result") if isinstance(stored, dict) else None
    return close.finish if result is None else replace(close.finish, result=result)


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
    finish = _with_basic_result(exhausted_decide(job_facts(job), last_error=job.last_error))
    done = job_finish(job_id=job.job_id, token=None, finish=finish, held_callbacks=held_callbacks)
    return finish.status if done else "skipped"
