"""Recovery: the safety net under at-least-once delivery. Celery beat runs it
(``ai_tasks.sweeper``), and so does ``manage.py ai_sweep``.

- PENDING/RETRYING jobs whose message was lost (a crash between commit and publish, a
  broker that dropped it) are re-published.
- RUNNING jobs whose lease expired (their worker was SIGKILLed, OOM-killed or cut off)
  go back to RETRYING and are re-published; the dead run counted as an attempt, so a
  poison job stops at max_attempts.
- Finished jobs whose domain callback never ran get it published again, with a
  doubling wait between sends and a cap, after which the job records it as given up.
- OMR batches whose upload request died before sealing them are sealed with the sheets
  they have, so they are still graded.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from academy import selectors
from academy.jobs.outcome import exhausted_finish
from academy.jobs.sending import callbacks_send
from academy.jobs.transitions import job_republish, job_requeue_expired
from academy.models import AIJob
from academy.services.omr_batches import omr_batches_close_abandoned
from academy.states import CALLBACK_STATUSES

logger = logging.getLogger(__name__)


def sweep_once(*, limit: int = 500) -> dict[str, int]:
    now = timezone.now()
    counts = {"republished": 0, "requeued": 0, "exhausted": 0, "callbacks": 0}
    older = now - timedelta(seconds=settings.AI_REPUBLISH_AFTER_SECONDS)
    for job in selectors.jobs_to_republish(older_than=older, limit=limit):
        if job.attempt_count >= job.max_attempts:
            counts["exhausted"] += exhausted_finish(job) != "skipped"
        else:
            counts["republished"] += job_republish(job=job)
    for job in selectors.jobs_with_expired_lease(now=now, limit=limit):
        if job.attempt_count >= job.max_attempts:
            counts["exhausted"] += exhausted_finish(job) != "skipped"
        else:
            counts["requeued"] += job_requeue_expired(job=job)
    counts["callbacks"] = _callbacks_resend(older_than=older, now=now, limit=limit)
    abandoned = now - timedelta(seconds=settings.AI_BATCH_SEAL_AFTER_SECONDS)
    counts["batches_interrupted"] = omr_batches_close_abandoned(older_than=abandoned)
    return counts


def _callbacks_resend(*, older_than: Any, now: Any, limit: int) -> int:
    """Re-send the callbacks of finished jobs that never ran (lost, or failed and due
    again): each waits twice as long as the last before the next send, and after
    ``AI_CALLBACK_MAX_SENDS`` sends it is given up and recorded, not sent forever.
    Returns how many were sent."""
    stale = AIJob.objects.filter(
        Q(callback_next_at__isnull=True) | Q(callback_next_at__lte=now),
        status__in=CALLBACK_STATUSES,
        callback_done_at__isnull=True,
        callback_failed_at__isnull=True,
        finished_at__lt=older_than,
    ).exclude(source_domain="")
    sent = 0
    for pk, job_id, sends, error in stale.values_list("pk", "job_id", "callback_sends", "callback_error")[:limit]:
        mine = AIJob.objects.filter(pk=pk, callback_sends=sends, callback_done_at__isnull=True)
        if sends >= settings.AI_CALLBACK_MAX_SENDS:
            reason = error or f"callback not applied after {sends} re-sends"
            if mine.update(callback_failed_at=now, callback_error=reason, updated_at=now):
                logger.error("ai_callback_given_up job_id=%s sends=%s error=%s", job_id, sends, reason[:200])
            continue
        try:
            callbacks_send(job_ids=[job_id])
        except Exception:  # the broker is down: not a send; the next sweep tries again
            logger.exception("ai_callback_publish_failed job_id=%s", job_id)
            continue
        wait = settings.AI_REPUBLISH_AFTER_SECONDS * 2 ** min(sends, 10)
        sent += mine.update(callback_sends=sends + 1, callback_next_at=now + timedelta(seconds=wait))
    return sent
