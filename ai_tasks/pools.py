"""The tasks each tier pool consumes, built the same way for every tier.

The tasks are thin adapters: they hand job ids to the lifecycle. Their time limits are
the tier's (soft raises inside the run and is recorded as ``timeout``; hard kills the
child, the message is requeued, and the attempt counter stops a poison job).
"""

from __future__ import annotations

from typing import Any, cast

from celery import Task

from academy.jobs import sending
from ai_tasks import lifecycle, routing
from config.celery import app

# The canonical result is our own write-once job row, so a success is not written a
# second time to the result backend (that write cost as much CPU as the whole lifecycle
# around a short job). Flower still follows the task through its events; a task that
# fails outside the lifecycle's hands is stored, for the admin.
_RUN_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "store_errors_even_if_ignored": True,
}


def define_run_task(tier: str) -> Task[..., Any]:
    soft, hard = routing.time_limits(tier)

    @app.task(name=sending.RUN_TASK[tier], bind=True, soft_time_limit=soft, time_limit=hard, **_RUN_OPTIONS)
    def run_job(self: Task[..., Any], job_id: str) -> dict[str, Any]:
        return lifecycle.execute(job_id=str(job_id), tier=tier, worker=lifecycle.worker_name(self.request.hostname))

    return cast(Task[..., Any], run_job)


def define_run_many_task(tier: str) -> Task[..., Any]:
    """Several jobs in one message, run one after another in the same child.

    The message has the tier's limits, like one job's: the lifecycle starts a job from
    it only while it is young and sends the rest back as messages of their own
    (:func:`ai_tasks.lifecycle.execute_many`).
    """
    soft, hard = routing.time_limits(tier)

    @app.task(name=sending.RUN_MANY_TASK[tier], bind=True, soft_time_limit=soft, time_limit=hard, **_RUN_OPTIONS)
    def run_jobs(self: Task[..., Any], job_ids: list[str]) -> dict[str, Any]:
        return lifecycle.execute_many(
            job_ids=[str(j) for j in job_ids], tier=tier, worker=lifecycle.worker_name(self.request.hostname)
        )

    return cast(Task[..., Any], run_jobs)
