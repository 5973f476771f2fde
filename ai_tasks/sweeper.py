"""Recovery, run by celery beat: the safety net under at-least-once delivery.

- PENDING/RETRYING jobs whose message was lost (a crash between commit and publish, a
  broker that dropped it) are re-published.
- RUNNING jobs whose lease expired (their worker was SIGKILLed, OOM-killed or cut off)
  go back to RETRYING and are re-published; the dead run counted as an attempt, so a
  poison job stops at max_attempts.
- Finished jobs whose domain callback never ran get it published again.
- OMR batches whose upload request died before sealing them are sealed with the sheets
  they have, so they are still graded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from ai_tasks import routing
from config.celery import app

_soft, _hard = routing.time_limits("domain")


def sweep_once(*, limit: int = 500) -> dict[str, int]:
    from academy import selectors
    from academy.models import AIJob
    from academy.services import jobs as job_services
    from academy.services.omr_batches import omr_batches_seal_abandoned
    from academy.states import CALLBACK_STATUSES
    from ai_tasks import lifecycle

    now = timezone.now()
    counts = {"republished": 0, "requeued": 0, "exhausted": 0, "callbacks": 0}
    older = now - timedelta(seconds=settings.AI_REPUBLISH_AFTER_SECONDS)
    for job in selectors.jobs_to_republish(older_than=older, limit=limit):
        if job.attempt_count >= job.max_attempts:
            counts["exhausted"] += lifecycle.exhausted_finish(job) != "skipped"
        else:
            counts["republished"] += job_services.job_republish(job=job)
    for job in selectors.jobs_with_expired_lease(now=now, limit=limit):
        if job.attempt_count >= job.max_attempts:
            counts["exhausted"] += lifecycle.exhausted_finish(job) != "skipped"
        else:
            counts["requeued"] += job_services.job_requeue_expired(job=job)
    stale_callbacks = AIJob.objects.filter(
        status__in=CALLBACK_STATUSES,
        callback_done_at__isnull=True,
        finished_at__lt=older,
    ).exclude(source_domain="")
    for job_id in stale_callbacks.values_list("job_id", flat=True)[:limit]:
        job_services.callback_publish_safely(job_id)
        counts["callbacks"] += 1
    abandoned = now - timedelta(seconds=settings.AI_BATCH_SEAL_AFTER_SECONDS)
    counts["batches_sealed"] = omr_batches_seal_abandoned(older_than=abandoned)
    return counts


@app.task(name=routing.SWEEP_TASK, soft_time_limit=_soft, time_limit=_hard, ignore_result=True)
def sweep() -> dict[str, Any]:
    close_old_connections()
    return sweep_once()
