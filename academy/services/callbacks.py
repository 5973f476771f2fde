"""Domain callbacks: what a finished job does to the object it came from. Exactly once.

The handler's writes and the job's ``callback_done_at`` commit in one transaction under
a row lock, so a redelivered callback message (or one the sweeper re-sent) finds the
mark and does nothing; a callback that crashed half-way rolled everything back and
runs again whole.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from academy.models import AIJob, AIResult, JobStatus, Submission, SubmissionStatus
from academy.services.grading import submission_apply_result, submission_grade, submissions_apply_results
from academy.services.omr_batches import omr_batch_settle, submission_reject
from academy.states import CALLBACK_STATUSES

logger = logging.getLogger(__name__)

Handler = Callable[[AIJob, Any], None]

# Batches whose settling waits until a whole message of callbacks has been applied
# (jobs_callback_apply). None: a callback settles its batch itself.
_settle_later: contextvars.ContextVar[set[int] | None] = contextvars.ContextVar("settle_later", default=None)


def _submission_handler(job: AIJob, result: Any) -> None:
    submission = Submission.objects.select_for_update().filter(pk=job.source_id, tenant=job.tenant_id).first()
    if submission is None:
        logger.warning("ai_callback_no_submission job_id=%s source_id=%s", job.job_id, job.source_id)
        return
    if job.status == JobStatus.REJECTED_BAD_INPUT:
        submission_reject(submission=submission, code=job.rejection_code, message=job.error_message)
    elif job.status == JobStatus.FAILED:
        submission_reject(submission=submission, code="", message=job.error_message or "reading failed")
    elif job.flags.get("from_exception"):
        # The no-fail policy closed the job as DONE, but nothing was read: a teacher
        # must look at the sheet; grading an empty reading would give a false zero.
        submission.status = SubmissionStatus.NEEDS_REVIEW
        submission.error_message = str(job.flags.get("error_code") or job.error_message)[:2000]
        submission.save(update_fields=["status", "error_message", "updated_at"])
    else:
        submission_apply_result(submission=submission, result=result if isinstance(result, dict) else {})
        if submission.batch_id is None:
            submission_grade(submission=submission)
    if submission.batch_id is not None:
        later = _settle_later.get()
        if later is None:
            omr_batch_settle(batch_id=submission.batch_id)
        else:
            later.add(submission.batch_id)


HANDLERS: dict[str, Handler] = {"submission": _submission_handler}


def job_callback_apply(*, job_id: str) -> bool:
    """Run the job's domain handler once. True if it ran now, False if it had already."""
    with transaction.atomic():
        # The result comes with the job row (one query); only the job is locked.
        job = AIJob.objects.select_for_update(of=("self",)).select_related("result").filter(job_id=job_id).first()
        if job is None or job.callback_done_at is not None:
            return False
        if job.status not in CALLBACK_STATUSES:
            return False
        handler = HANDLERS.get(job.source_domain)
        if handler is not None:
            try:
                result = job.result.payload
            except AIResult.DoesNotExist:
                result = None
            handler(job, result)
        job.callback_done_at = timezone.now()
        job.save(update_fields=["callback_done_at", "updated_at"])
    return True


def jobs_callback_apply(*, job_ids: list[str]) -> list[str]:
    """Apply several finished jobs' callbacks (one message from a worker that ran them
    together), each exactly once. Returns the ids of those that ran now.

    The usual case, a batch sheet read without trouble, is applied for all of them in
    one transaction (:func:`_readings_apply`); the rest go one by one as in
    :func:`job_callback_apply`. Their OMR batches are settled once at the end instead of
    after every sheet, also for jobs whose callback had already run, so a message
    redelivered after a crash between the callbacks and the settling still settles.
    """
    batches: set[int] = set()
    try:
        bulk = _readings_apply(job_ids=job_ids, batches=batches)
    except Exception:  # e.g. one malformed reading: every job then goes on its own
        logger.exception("ai_callbacks_bulk_failed job_ids=%s", job_ids)
        bulk, batches = set(), set()
    reset = _settle_later.set(batches)
    applied, earlier, error = [j for j in job_ids if j in bulk], [], None
    try:
        for job_id in job_ids:
            if job_id in bulk:
                continue
            try:
                if job_callback_apply(job_id=job_id):
                    applied.append(job_id)
                else:
                    earlier.append(job_id)
            except Exception as exc:  # the others still go on; the message is retried
                logger.exception("ai_callback_failed job_id=%s", job_id)
                error = error or exc
    finally:
        _settle_later.reset(reset)
    if earlier:
        jobs = AIJob.objects.filter(job_id__in=earlier, source_domain="submission")
        sources = jobs.values_list("source_id", flat=True)
        ids = [int(s) for s in sources if str(s).isdigit()]
        found = Submission.objects.filter(pk__in=ids, batch__isnull=False).values_list("batch_id", flat=True)
        batches.update(b for b in found if b is not None)
    for batch_id in sorted(batches):
        omr_batch_settle(batch_id=batch_id)
    if error is not None:
        raise error
    return applied


@transaction.atomic
def _readings_apply(*, job_ids: list[str], batches: set[int]) -> set[str]:
    """Apply, in one transaction, the callbacks of the jobs that read a batch sheet with
    no trouble (DONE or REVIEW_REQUIRED, a result, not closed by the no-fail policy).

    The same writes and the same ``callback_done_at`` mark as one callback each, in five
    statements for the lot. Returns the ids applied; adds their batches to ``batches``.
    """
    jobs = (
        AIJob.objects.select_for_update(of=("self",))
        .select_related("result")
        .filter(
            job_id__in=job_ids,
            callback_done_at__isnull=True,
            source_domain="submission",
            status__in=[JobStatus.DONE, JobStatus.REVIEW_REQUIRED],
        )
        .order_by("pk")  # one lock order for every caller
    )
    readings: dict[int, tuple[AIJob, dict[str, Any]]] = {}
    for job in jobs:
        try:
            payload = job.result.payload
        except AIResult.DoesNotExist:
            continue
        if isinstance(payload, dict) and not job.flags.get("from_exception") and str(job.source_id).isdigit():
            readings[int(job.source_id)] = (job, payload)
    if not readings:
        return set()
    submissions = [
        s
        for s in Submission.objects.select_for_update().filter(pk__in=readings, batch__isnull=False).order_by("pk")
        if s.tenant_id == readings[s.pk][0].tenant_id
    ]
    if not submissions:
        return set()
    submissions_apply_results(readings=[(s, readings[s.pk][1]) for s in submissions])
    done = [readings[s.pk][0] for s in submissions]
    now = timezone.now()
    AIJob.objects.filter(pk__in=[j.pk for j in done]).update(callback_done_at=now, updated_at=now)
    batches.update(s.batch_id for s in submissions if s.batch_id is not None)
    return {j.job_id for j in done}
