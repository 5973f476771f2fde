"""Domain callbacks: what a finished job does to the object it came from. Exactly once.

The handler's writes and the job's ``callback_done_at`` commit in one transaction under
a row lock, so a redelivered callback message (or one the sweeper re-sent) finds the
mark and does nothing; a callback that crashed half-way rolled everything back and
runs again whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from academy.models import AIJob, AIResult, JobStatus, Submission, SubmissionStatus
from academy.services.grading import submission_apply_result, submission_grade
from academy.services.omr_batches import omr_batch_settle, submission_reject
from academy.states import CALLBACK_STATUSES

logger = logging.getLogger(__name__)

Handler = Callable[[AIJob, Any], None]


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
        omr_batch_settle(batch_id=submission.batch_id)


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
