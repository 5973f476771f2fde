"""Putting jobs on their tier's queue. A message carries job ids and nothing else.

Everything a worker needs is re-read from the row, so a stale or duplicated message can
never carry stale instructions.

Most messages carry one job. An OMR batch publishes its sheets a few jobs per message
(``jobs_publish``): each sheet keeps its own job row, claim, lease, attempts and result,
and only the broker's per-message cost (and the domain callback's) is shared.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from celery import Task

from ai_tasks import routing

logger = logging.getLogger(__name__)


def _task(name: str) -> Task[..., Any]:
    # Import the pool's module on demand (it imports the lifecycle, which imports
    # this module), so that apply_async honours eager mode in unit tests.
    module = importlib.import_module(name.rsplit(".", 1)[0])
    task: Task[..., Any] = getattr(module, name.rsplit(".", 1)[1])
    return task


def _send(name: str, args: tuple[Any, ...], *, queue: str, task_id: str | None = None, countdown: float = 0) -> None:
    _task(name).apply_async(
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


def job_publish(*, job_id: str, tier: str, countdown: float | None = None) -> str:
    """Send the job to its tier's queue; return the Celery task id. Raises on broker errors."""
    task_id = f"{job_id}-{uuid.uuid4().hex[:8]}"
    _send(routing.RUN_TASK[tier], (job_id,), queue=tier, task_id=task_id, countdown=countdown or 0)
    return task_id


def jobs_publish(*, job_ids: list[str], tier: str) -> str:
    """Send several jobs of one tier in one message; return its task id. Raises on broker errors."""
    if len(job_ids) == 1:
        return job_publish(job_id=job_ids[0], tier=tier)
    task_id = f"jobs-{uuid.uuid4().hex}"
    _send(routing.RUN_MANY_TASK[tier], (list(job_ids),), queue=tier, task_id=task_id)
    return task_id


# While a worker runs the jobs of one message, their domain callbacks are held here and
# sent together when the message is done (see callbacks_held). None: send at once.
_held: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("held_callbacks", default=None)


def callback_publish(*, job_id: str) -> None:
    held = _held.get()
    if held is not None:
        held.append(job_id)
        return
    _send(routing.CALLBACK_TASK, (job_id,), queue=routing.DOMAIN_QUEUE)


def callbacks_publish(*, job_ids: list[str]) -> None:
    """One domain message for several finished jobs (one for a single job)."""
    if len(job_ids) == 1:
        _send(routing.CALLBACK_TASK, (job_ids[0],), queue=routing.DOMAIN_QUEUE)
    elif job_ids:
        _send(routing.CALLBACKS_TASK, (list(job_ids),), queue=routing.DOMAIN_QUEUE)


@contextlib.contextmanager
def callbacks_held() -> Iterator[list[str]]:
    """Hold the callbacks published inside the block; send them as one message at its end.

    A worker killed inside the block sends none: those jobs are finished with
    ``callback_done_at`` unset, and the sweeper publishes their callbacks again.
    """
    held: list[str] = []
    reset = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(reset)
        try:
            callbacks_publish(job_ids=held)
        except Exception:  # as for one callback: the sweeper sends them again
            logger.exception("ai_callback_publish_failed job_ids=%s", held)
