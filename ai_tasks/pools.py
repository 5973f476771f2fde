"""The one task each tier pool consumes, built the same way for every tier.

The task is a thin adapter: it hands the job id to the lifecycle. Its time limits are
the tier's (soft raises inside the run and is recorded as ``timeout``; hard kills the
child, the message is requeued, and the attempt counter stops a poison job).
"""

from __future__ import annotations

from typing import Any

from celery import Task

from ai_tasks import routing
from config.celery import app


def define_run_task(tier: str) -> Task[..., Any]:
    soft, hard = routing.time_limits(tier)

    @app.task(
        name=routing.RUN_TASK[tier],
        bind=True,
        soft_time_limit=soft,
        time_limit=hard,
        acks_late=True,
        reject_on_worker_lost=True,
        # The canonical result is our own write-once job row, so a success is not written
        # a second time to the result backend (that write cost as much CPU as the whole
        # lifecycle around a short job). Flower still follows the task through its events;
        # a task that fails outside the lifecycle's hands is stored, for the admin.
        ignore_result=True,
        store_errors_even_if_ignored=True,
    )
    def run_job(self: Task[..., Any], job_id: str) -> dict[str, Any]:
        from ai_tasks import lifecycle

        return lifecycle.execute(job_id=str(job_id), tier=tier, worker=lifecycle.worker_name(self.request.hostname))

    return run_job
