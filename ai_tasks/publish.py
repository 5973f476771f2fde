"""Putting a job on its tier's queue. The message carries the job id and nothing else.

Everything a worker needs is re-read from the row, so a stale or duplicated message can
never carry stale instructions.
"""

from __future__ import annotations

import importlib
import uuid
from typing import Any

from celery import Task

from ai_tasks import routing


def _task(name: str) -> Task[..., Any]:
    # Import the pool's module on demand (it imports the lifecycle, which imports
    # this module), so that apply_async honours eager mode in unit tests.
    module = importlib.import_module(name.rsplit(".", 1)[0])
    task: Task[..., Any] = getattr(module, name.rsplit(".", 1)[1])
    return task


def job_publish(*, job_id: str, tier: str, countdown: float | None = None) -> str:
    """Send the job to its tier's queue; return the Celery task id. Raises on broker errors."""
    task_id = f"{job_id}-{uuid.uuid4().hex[:8]}"
    _task(routing.RUN_TASK[tier]).apply_async(
        args=(job_id,),
        task_id=task_id,
        countdown=countdown or 0,
        # The routing table already names the queue; being explicit keeps a misconfigured
        # route from silently landing premium work on the default queue.
        queue=tier,
        routing_key=tier,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )
    return task_id


def callback_publish(*, job_id: str) -> None:
    _task(routing.CALLBACK_TASK).apply_async(
        args=(job_id,), queue=routing.DOMAIN_QUEUE, routing_key=routing.DOMAIN_QUEUE
    )
