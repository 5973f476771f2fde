"""Which job may write to which domain object: the rule both dispatch and the domain
callback check.

A submission (one answer sheet) is written by the ``omr_grading`` job made for it, and
only while it waits for that job (PENDING or PROCESSING). Its GPU-fallback re-run
counts as that job: it carries the same source and ``fallback_from`` points at it. Once
the sheet is read, graded or refused, only a teacher's correction changes it
(``grading.submission_correct``); a job dispatched at it is refused at dispatch with a
code, and one that got through anyway (made before the sheet settled, a forged row) is
refused again when it would apply, and that refusal is recorded on the job.
"""

from __future__ import annotations

from typing import Final

from django.db.models import Q
from django.utils import timezone

from academy.models import AIJob, Submission, SubmissionStatus
from academy.rejections import Rejection

#: the job type that may write to a submission
SUBMISSION_JOB_TYPE: Final = "omr_grading"
#: a submission in one of these states waits for its job; in any other it is read or settled
SUBMISSION_WAITING: Final = frozenset({SubmissionStatus.PENDING, SubmissionStatus.PROCESSING})
#: the longest decimal id a submission's primary key (bigint) can have
_MAX_ID_DIGITS: Final = 18


def submission_pk(source_id: str) -> int | None:
    """The submission id in ``source_id``, or None when it cannot be one."""
    text = str(source_id)
    if not (text.isascii() and text.isdecimal()) or len(text) > _MAX_ID_DIGITS:
        return None
    return int(text)


def source_check(*, job: AIJob) -> None:
    """Refuse (with a :class:`Rejection`) an unsaved job aimed at a submission it may
    not write to. ``job.idempotency_key`` is already the stored key: the repeat of the
    dispatch that made the submission's job passes, so the caller returns that job."""
    if job.source_domain != "submission":
        return
    if job.job_type != SUBMISSION_JOB_TYPE:
        raise Rejection("INVALID_SOURCE", f"only an {SUBMISSION_JOB_TYPE} job may be aimed at a submission")
    pk = submission_pk(job.source_id)
    if pk is None:
        raise Rejection("INVALID_SOURCE", f"source_id {job.source_id[:64]!r} is not a submission id")
    if job.tenant_id is None:
        raise Rejection("INVALID_SOURCE", "a job without an academy has no submission")
    row = (
        Submission.objects.filter(pk=pk, tenant_id=job.tenant_id)
        .values_list("status", "job_id", "job__idempotency_key")
        .first()
    )
    if row is None:  # another academy's sheet reads the same as none at all
        raise Rejection("INVALID_SOURCE", f"no submission {pk}")
    status, waits_for, waits_for_key = row
    repeat = waits_for is not None and bool(job.idempotency_key) and waits_for_key == job.idempotency_key
    if repeat:
        return
    if status not in SUBMISSION_WAITING:
        raise Rejection("SUBMISSION_NOT_WAITING", f"submission {pk} is {status}; a teacher corrects it instead")
    if waits_for is not None:
        raise Rejection("SUBMISSION_NOT_WAITING", f"submission {pk} waits for another job")


def source_link(*, job: AIJob) -> bool:
    """Record a saved job as the one its submission waits for, if it waits for none yet
    (inside the dispatch's transaction). True if linked."""
    pk = submission_pk(job.source_id) if job.source_domain == "submission" else None
    if pk is None:
        return False
    waiting = Q(pk=pk, tenant_id=job.tenant_id, status__in=SUBMISSION_WAITING, job__isnull=True)
    return Submission.objects.filter(waiting).update(job=job, updated_at=timezone.now()) == 1


def submission_refusal(*, job: AIJob, submission: Submission) -> str:
    """Why ``job`` may not apply to ``submission`` now ("" when it may)."""
    if job.job_type != SUBMISSION_JOB_TYPE:
        return f"a {job.job_type} job may not write to a submission"
    if submission.status not in SUBMISSION_WAITING:
        return f"submission {submission.pk} is {submission.status} and waits for no job"
    made_for = {job.pk, job.fallback_from_id} - {None}
    if submission.job_id is not None and submission.job_id not in made_for:
        return f"submission {submission.pk} waits for another job"
    return ""
