"""Domain callbacks: what a finished job does to the object it came from. Exactly once.

The handler's writes and the job's ``callback_done_at`` commit in one transaction under
a row lock, so a redelivered callback message (or one the sweeper re-sent) finds the
mark and does nothing; a callback that crashed half-way rolled everything back and
runs again whole.

A callback that fails is recorded on the job (``callback_attempts``, ``callback_error``).
An error that cannot change on another try (a malformed source id, a job the
submission does not wait for) gives up at once; any other gives up after
``AI_CALLBACK_MAX_ATTEMPTS`` failures. A given-up callback (``callback_failed_at``) is
not retried by Celery nor re-sent by the sweeper; the admin, the job-status API and
``/metrics`` (``callback_failures``) show it.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldError, ObjectDoesNotExist, ValidationError
from django.db import DataError, transaction
from django.utils import timezone

from academy import policies
from academy.models import AIJob, AIResult, JobStatus, Submission, SubmissionStatus
from academy.services.grading import submission_apply_result, submission_grade, submissions_apply_results
from academy.services.omr_batches import omr_batch_settle, submission_reject
from academy.services.sources import SUBMISSION_JOB_TYPE, SUBMISSION_WAITING, submission_pk, submission_refusal
from academy.states import CALLBACK_STATUSES

logger = logging.getLogger(__name__)

Handler = Callable[[AIJob, Any], None]

# Batches whose settling waits until a whole message of callbacks has been applied
# (jobs_callback_apply). None: a callback settles its batch itself.
_settle_later: contextvars.ContextVar[set[int] | None] = contextvars.ContextVar("settle_later", default=None)


class CallbackRefused(Exception):
    """The job may not apply to its source (academy.services.sources): nothing is
    written, and trying again cannot change that."""


#: errors that another try of the same callback cannot change (bad data, not a blip)
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    CallbackRefused,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    ArithmeticError,
    ValidationError,
    ObjectDoesNotExist,
    FieldError,
    DataError,
)


def callback_error_is_permanent(exc: BaseException) -> bool:
    """A lost connection, a lock timeout or a time limit may pass; these may not."""
    return isinstance(exc, PERMANENT_ERRORS)


def _submission_handler(job: AIJob, result: Any) -> None:
    pk = submission_pk(job.source_id)
    if pk is None:
        raise CallbackRefused(f"source_id {job.source_id[:64]!r} is not a submission id")
    submission = Submission.objects.select_for_update().filter(pk=pk, tenant=job.tenant_id).first()
    if submission is None:
        logger.warning("ai_callback_no_submission job_id=%s source_id=%s", job.job_id, job.source_id)
        return
    refusal = submission_refusal(job=job, submission=submission)
    if refusal:
        raise CallbackRefused(refusal)
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
    """Run the job's domain handler once. True if it ran now, False if it had already,
    or if it failed and was given up (recorded on the job). A failure that may pass
    is recorded and raised, for the caller's retry."""
    try:
        return _callback_apply(job_id=job_id)
    except Exception as exc:
        if _callback_failed(job_id=job_id, exc=exc):
            return False
        raise


def _callback_failed(*, job_id: str, exc: Exception) -> bool:
    """Record a failed callback on its job. True when it is given up: the error cannot
    change, or the job has failed ``AI_CALLBACK_MAX_ATTEMPTS`` times."""
    permanent = callback_error_is_permanent(exc)
    now = timezone.now()
    try:
        with transaction.atomic():
            job = AIJob.objects.select_for_update().filter(job_id=job_id, callback_done_at__isnull=True).first()
            if job is None:
                return False
            attempts = job.callback_attempts + 1
            give_up = permanent or attempts >= settings.AI_CALLBACK_MAX_ATTEMPTS
            backoff = policies.doubling_wait(
                attempts, base=settings.AI_REPUBLISH_AFTER_SECONDS, cap=settings.AI_RETRY_BACKOFF_MAX
            )
            AIJob.objects.filter(pk=job.pk).update(
                callback_attempts=attempts,
                callback_error=f"{type(exc).__name__}: {exc}"[:2000],
                callback_failed_at=now if give_up else None,
                callback_next_at=None if give_up else now + timedelta(seconds=backoff),
                updated_at=now,
            )
    except Exception:  # the database itself is gone: the caller's retry is all there is
        logger.exception("ai_callback_failure_unrecorded job_id=%s", job_id)
        return False
    if give_up:
        logger.error(
            "ai_callback_given_up job_id=%s attempts=%s permanent=%s error=%r", job_id, attempts, permanent, exc
        )
    else:
        logger.warning("ai_callback_failed job_id=%s attempts=%s error=%r", job_id, attempts, exc)
    return give_up


def _callback_apply(*, job_id: str) -> bool:
    with transaction.atomic():
        # The result comes with the job row (one query); only the job is locked.
        job = AIJob.objects.select_for_update(of=("self",)).select_related("result").filter(job_id=job_id).first()
        if job is None or job.callback_done_at is not None or job.callback_failed_at is not None:
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
        ids = [pk for pk in map(submission_pk, sources) if pk is not None]
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
            callback_failed_at__isnull=True,
            source_domain="submission",
            job_type=SUBMISSION_JOB_TYPE,
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
        pk = submission_pk(job.source_id)
        if isinstance(payload, dict) and not job.flags.get("from_exception") and pk is not None:
            readings[pk] = (job, payload)
    if not readings:
        return set()
    # Only sheets that wait for exactly this job; any other case goes one by one, where
    # a job the sheet does not wait for is refused and recorded.
    submissions = [
        s
        for s in Submission.objects.select_for_update().filter(pk__in=readings, batch__isnull=False).order_by("pk")
        if s.tenant_id == readings[s.pk][0].tenant_id
        and s.status in SUBMISSION_WAITING
        and s.job_id == readings[s.pk][0].pk
    ]
    if not submissions:
        return set()
    submissions_apply_results(readings=[(s, readings[s.pk][1]) for s in submissions])
    done = [readings[s.pk][0] for s in submissions]
    now = timezone.now()
    AIJob.objects.filter(pk__in=[j.pk for j in done]).update(callback_done_at=now, updated_at=now)
    batches.update(s.batch_id for s in submissions if s.batch_id is not None)
    return {j.job_id for j in done}
