"""The domain pool: callbacks that apply a finished job to its source (then grade).

``celery -A config worker -Q domain -n domain@%h``. Short DB work only; it has its own
queue so grading never waits behind a long OMR batch.
"""

from __future__ import annotations

from typing import Any

from academy.jobs import sending
from academy.services.callbacks import job_callback_apply, jobs_callback_apply
from ai_tasks import routing
from config.celery import app

_soft, _hard = routing.time_limits("domain")
# Both callback tasks: late acks, and a failure retried with backoff (a callback is
# idempotent: the job's callback_done_at mark commits with its writes).
_OPTIONS: dict[str, Any] = {
    "soft_time_limit": _soft,
    "time_limit": _hard,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (Exception,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@app.task(name=sending.CALLBACK_TASK, **_OPTIONS)
def job_callback(job_id: str) -> dict[str, Any]:
    return {"job_id": job_id, "applied": job_callback_apply(job_id=str(job_id))}


@app.task(name=sending.CALLBACKS_TASK, **_OPTIONS)
def job_callbacks(job_ids: list[str]) -> dict[str, Any]:
    """The callbacks of jobs one worker message ran together (an OMR batch's sheets).
    The result names the jobs applied by this run, for the admin and the chaos probes."""
    ids = [str(j) for j in job_ids]
    return {"job_ids": ids, "applied": jobs_callback_apply(job_ids=ids)}
