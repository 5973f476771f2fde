"""Putting messages on the broker: the one place academy sends through Celery.

A message carries job ids and nothing else. Everything a worker needs is re-read from
the row, so a stale or duplicated message can never carry stale instructions. Most
messages carry one job; an OMR batch sends its sheets a few jobs per message
(:func:`jobs_send`): each sheet keeps its own row, claim, lease, attempts and result,
and only the broker's per-message cost (and the domain callback's) is shared.

The task names below are the contract with the Celery adapter: ``ai_tasks`` defines its
tasks under them and routes them (``ai_tasks.routing``). A task is found through the
Celery app by its name, so this package never imports ``ai_tasks``; the adapter's
Django app loads its task modules when the apps are ready, so every process that sends
knows them, and a send in eager mode (the unit tests) runs the task in place.

"Send" here means the broker only. "Publish" (:mod:`academy.jobs.publish`) is a send
plus its record on the job row, after the transaction that made the job commits.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from celery import current_app

from academy.states import TIERS

DOMAIN_QUEUE: Final = "domain"

RUN_TASK: Final = {tier: f"ai_tasks.{tier}.run_job" for tier in TIERS}
#: several jobs of one tier in one message (an OMR batch's sheets)
RUN_MANY_TASK: Final = {tier: f"ai_tasks.{tier}.run_jobs" for tier in TIERS}
CALLBACK_TASK: Final = "ai_tasks.domain.job_callback"
CALLBACKS_TASK: Final = "ai_tasks.domain.job_callbacks"


def _send(name: str, args: tuple[Any, ...], *, queue: str, task_id: str | None = None, countdown: float = 0) -> None:
    current_app.tasks[name].apply_async(
        args=args,
        task_id=task_id,
        countdown=countdown,
        # The routing table already names the queue; being explicit keeps a misconfigured
        # route from silently landing premium work on the default queue.
        queue=queue,
        routing_key=queue,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )


def job_send(*, job_id: str, tier: str, countdown: float | None = None) -> str:
    """Send the job to its tier's queue; return the Celery task id. Raises on broker errors."""
    task_id = f"{job_id}-{uuid.uuid4().hex[:8]}"
    _send(RUN_TASK[tier], (job_id,), queue=tier, task_id=task_id, countdown=countdown or 0)
    return task_id


def jobs_send(*, job_ids: list[str], tier: str) -> str:
    """Send several jobs of one tier in one message; return its task id. Raises on broker errors."""
    if len(job_ids) == 1:
        return job_send(job_id=job_ids[0], tier=tier)
    task_id = f"jobs-{uuid.uuid4().hex}"
    _send(RUN_MANY_TASK[tier], (list(job_ids),), queue=tier, task_id=task_id)
    return task_id


def callbacks_send(*, job_ids: list[str]) -> None:
    """One domain message for the callbacks of finished jobs (one job or several).
    Raises on broker errors."""
    if len(job_ids) == 1:
        _send(CALLBACK_TASK, (job_ids[0],), queue=DOMAIN_QUEUE)
    elif job_ids:
        _send(CALLBACKS_TASK, (list(job_ids),), queue=DOMAIN_QUEUE)
