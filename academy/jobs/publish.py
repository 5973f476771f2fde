"""Publishing: a send to the broker (:mod:`academy.jobs.sending`) and its record on the
job row, after the transaction that made the job commits.

``job_publish`` and ``jobs_publish`` put jobs on their tier's queue; ``callback_publish``
and ``callbacks_publish`` send finished jobs' domain callbacks.
"""

from __future__ import annotations

import logging

from django.db import connection
from django.db.models import F
from django.utils import timezone

from academy.jobs import sending
from academy.models import AIJob, JobStatus
from academy.states import CLAIMABLE_STATUSES

logger = logging.getLogger(__name__)


def job_publish(
    *, job_id: str, tier: str, countdown: float | None = None, fail: bool = True, into: AIJob | None = None
) -> bool:
    """Send the job to its tier's queue and record the send on its row. False when the
    broker refused it.

    A broker error marks the job FAILED with the error (a new job nobody will ever run
    must say so). ``fail=False`` is for re-sends (a retry, the sweeper's re-publish): the
    job already exists and is due, so during a broker outage it stays PENDING/RETRYING and
    the next sweep sends it again, instead of a healthy job ending FAILED.

    ``into``: the dispatched job, for the response: its status and error are set to the
    row's as they stand after the send. In eager mode the job has already run inside the
    send, and a fast worker may have claimed it: read back, never assumed.
    """
    try:
        task_id = sending.job_send(job_id=job_id, tier=tier, countdown=countdown)
    except Exception as exc:
        logger.exception("ai_publish_failed job_id=%s", job_id)
        if fail:
            AIJob.objects.filter(job_id=job_id, status__in=CLAIMABLE_STATUSES).update(
                status=JobStatus.FAILED,
                error_message=f"publish failed: {exc}",
                last_error=repr(exc),
                finished_at=timezone.now(),
            )
        if into is not None:
            into.refresh_from_db(fields=["status", "error_message"])  # what the failure left
        return False
    row = _published_returning(job_id, task_id)
    if into is not None and row is not None:
        into.status, into.error_message = row
    return True


def jobs_publish(*, job_ids: list[str], tier: str) -> bool:
    """Publish committed PENDING jobs of one tier in one message (an OMR batch's sheets).

    On a broker error they stay PENDING, and the sweeper sends each again once it has
    waited ``AI_REPUBLISH_AFTER_SECONDS``: a batch loses no sheet to a broker outage.
    """
    if not job_ids:
        return True
    try:
        task_id = sending.jobs_send(job_ids=job_ids, tier=tier)
    except Exception:
        logger.exception("ai_publish_failed job_ids=%s", job_ids)
        return False
    AIJob.objects.filter(job_id__in=job_ids).update(celery_task_id=task_id, publish_count=F("publish_count") + 1)
    return True


def _published_returning(job_id: str, task_id: str) -> tuple[str, str] | None:
    """Record a successful publish; the row's (status, error_message) after it."""
    if not connection.features.can_return_columns_from_insert:  # Postgres, SQLite >= 3.35 can
        jobs = AIJob.objects.filter(job_id=job_id)
        jobs.update(celery_task_id=task_id, publish_count=F("publish_count") + 1)
        return jobs.values_list("status", "error_message").first()
    # One UPDATE ... RETURNING instead of an UPDATE and a re-read (the ORM has no
    # RETURNING for updates).
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(AIJob._meta.db_table)}"
        f" SET {quote('celery_task_id')} = %s, {quote('publish_count')} = {quote('publish_count')} + 1"
        f" WHERE {quote('job_id')} = %s RETURNING {quote('status')}, {quote('error_message')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [task_id, job_id])
        row = cursor.fetchone()
    return (str(row[0]), str(row[1])) if row is not None else None


def callback_publish(*, job_id: str, held: list[str] | None = None) -> None:
    """After commit: send the finished job's domain callback, or add it to ``held`` for
    the caller to send with others (:func:`callbacks_publish`)."""
    if held is not None:
        held.append(job_id)
        return
    callbacks_publish(job_ids=[job_id])


def callbacks_publish(*, job_ids: list[str]) -> None:
    """Send the domain callbacks of finished jobs as one message. A broker error is
    logged, not raised: the sweeper finds finished jobs whose callback never ran."""
    try:
        sending.callbacks_send(job_ids=job_ids)
    except Exception:
        logger.exception("ai_callback_publish_failed job_ids=%s", job_ids)
