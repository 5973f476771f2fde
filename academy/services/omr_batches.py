"""OMR batches: a class's answer sheets in, one job per sheet out, one grading at the end.

The upload is expanded (images, PDF pages, zip members) and each sheet gets a Submission
and an ``omr_grading`` job (pre-validated on the actual file), committed sheet by sheet
and published a few sheets per message, so reading starts while the rest of the upload
is still being checked: 2 in the batch's first message, twice as many in each next one,
up to ``AI_OMR_SHEETS_PER_MESSAGE``.
A sheet refused at dispatch is settled at once as REJECTED with its code; the batch
goes on. Once every sheet exists the batch is *sealed*; only a sealed batch is graded.
An upload that stops before that (an error, a killed web process: the API refuses a
body that arrived cut, so none gets this far) leaves the batch *interrupted*: its
sheets are read but it is never sealed nor graded, as it holds part of the upload, and
a retry with the same idempotency key makes a whole new batch.

Each job's domain callback stores its reading on its submission (exactly once, see
``callbacks``). The callback that settles the batch's last sheet grades every read
sheet of the batch, under a lock on the batch row, and stamps ``graded_at``: so the
batch is graded once, whichever worker finishes last, however often messages repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Subquery
from django.utils import timezone

from academy import selectors, storage
from academy.jobs.dispatch import job_dispatch, job_idempotency_key, job_prepare
from academy.jobs.publish import jobs_publish
from academy.models import (
    SUBMISSION_SETTLED,
    AIJob,
    AnswerKey,
    Exam,
    OmrBatch,
    Submission,
    SubmissionStatus,
    Tenant,
)
from academy.rejections import Rejection, rejection_message
from academy.services.grading import submissions_grade

logger = logging.getLogger(__name__)

MAX_SHEETS_PER_BATCH: Final = 1000
#: A batch's first message carries this many sheets, and each next one twice as many as
#: the last, up to AI_OMR_SHEETS_PER_MESSAGE. The pool starts reading once two sheets are
#: checked instead of a whole message's worth (16 sheets through the quality gate took
#: about 0.19 s before the first read), a class-sized batch is still spread over several
#: children (2, 4, 8, 16 for 30 sheets), and a big batch mostly goes in full messages,
#: each paying the per-message costs once.
FIRST_MESSAGE_SHEETS: Final = 2
MODES: Final = frozenset({"scan", "photo"})


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


def omr_batch_create(
    *,
    tenant: Tenant,
    exam: Exam,
    uploads: Iterable[Upload],
    mode: str = "scan",
    tier: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[OmrBatch, bool]:
    """Create the batch, its submissions and their jobs. Returns (batch, created).

    The same ``idempotency_key`` returns the batch made the first time, unless that
    upload was interrupted: then the key moves to a new batch made from this upload.
    Raises :class:`Rejection` when no batch can be made at all (no template, a bad mode).
    """
    from workers.omr.bundle import Document, expand_upload

    if not exam.sheet_template:
        # An exam created from a blank card waits for its proposal to be confirmed.
        raise Rejection(
            "TEMPLATE_INVALID",
            "this exam has no sheet template yet: confirm the proposal from its blank card, or set one",
            message=(
                "이 시험의 답안지 양식이 아직 없습니다. "
                "빈 답안지로 만든 양식 제안을 확정하거나 양식을 지정한 뒤 올려 주세요."
            ),
        )
    if mode not in MODES:
        raise Rejection("INVALID_PAYLOAD", f"mode must be one of {sorted(MODES)}")
    key = f"{tenant.pk}:{idempotency_key}" if idempotency_key else None
    if key is not None:
        existing = OmrBatch.objects.filter(idempotency_key=key).first()
        if existing is not None and existing.interrupted_at is None:
            return existing, False
        if existing is not None:
            # Part of an earlier upload: it keeps its sheets (never graded) and gives up
            # the key, so this retry is made whole. Conditional, so two retries race to
            # one new batch (the loser meets the winner's key below).
            OmrBatch.objects.filter(pk=existing.pk, interrupted_at__isnull=False).update(idempotency_key=None)
    try:
        batch = OmrBatch.objects.create(tenant=tenant, exam=exam, mode=mode, idempotency_key=key)
    except IntegrityError:
        if key is None:
            raise
        return OmrBatch.objects.get(idempotency_key=key), False
    # The academy's config, read once for the whole upload as for any one request.
    policy = selectors.tenant_policy_of(tenant)
    sources: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    planned = sheets = 0  # sheets checked so far; sheets saved (they are the batch)
    waiting: list[_Sheet] = []
    unsent = _Unsent(size=settings.AI_OMR_SHEETS_PER_MESSAGE, first=FIRST_MESSAGE_SHEETS)
    try:
        for upload in uploads:
            sources.append({"name": upload.name, "size": len(upload.data)})
            for entry in expand_upload(upload.name, upload.data):
                if not isinstance(entry, Document):
                    skipped.append(_skip(entry.name, entry.code, entry.detail))
                    continue
                pages = range(1, entry.pages + 1) if entry.kind == "pdf" else [None]
                if planned + len(pages) > MAX_SHEETS_PER_BATCH:
                    limit = f"a batch holds at most {MAX_SHEETS_PER_BATCH} sheets"
                    skipped.append(_skip(entry.name, "BATCH_TOO_LARGE", limit))
                    continue
                path = storage.upload_save(tenant=tenant, name=entry.name, data=entry.data)
                for page in pages:
                    planned += 1
                    sheet = _sheet_prepare(batch=batch, path=path, name=entry.name, page=page, tier=tier, policy=policy)
                    if sheet is None:  # the quality gate hands it to the GPU pool: on its own
                        with transaction.atomic():
                            _sheet_dispatch(
                                batch=batch, path=path, name=entry.name, page=page, tier=tier, policy=policy
                            )
                        sheets += 1
                        continue
                    waiting.append(sheet)
                    if len(waiting) >= unsent.limit:
                        # A message's worth of sheets commits together and goes out at
                        # once, so the pool starts reading while the rest is still checked.
                        sheets += _sheets_save(batch=batch, sheets=waiting, unsent=unsent)
                        waiting = []
        sheets += _sheets_save(batch=batch, sheets=waiting, unsent=unsent)
    except BaseException:
        # Never sealed, so never graded from part of the upload; the sheets already
        # committed are still sent (their readings stay on their submissions).
        unsent.flush()
        if sheets == 0:
            batch.delete()
        else:
            _interrupt(batch=batch, skipped=skipped, sheets=sheets, sources=sources)
        raise
    unsent.flush()
    if sheets == 0:
        batch.delete()
    elif not _seal(batch=batch, skipped=skipped, sheets=sheets, sources=sources):
        logger.warning("omr_batch_not_sealed batch=%s: marked interrupted while it was made", batch.batch_id)
    if sheets == 0:
        why = skipped[0] if skipped else _skip("", "FILE_REQUIRED", "no files were uploaded")
        raise Rejection(why["code"], f"no answer sheet in the upload: {why['name']}: {why['detail']}")
    logger.info("omr_batch_created batch=%s sheets=%s skipped=%s", batch.batch_id, sheets, len(skipped))
    return batch, True


def _seal(
    *, batch: OmrBatch, skipped: list[dict[str, str]], sheets: int, sources: list[dict[str, Any]] | None = None
) -> bool:
    """The batch's sheets all exist: from now on the last sheet to settle grades it.

    Conditional on the batch not being sealed yet, so the upload and the sweeper never
    both seal it. True when this call sealed it.
    """
    fields: dict[str, Any] = {"skipped": skipped, "total_sheets": sheets, "sealed_at": timezone.now()}
    if sources is not None:
        fields["sources"] = sources
    unsealed = OmrBatch.objects.filter(pk=batch.pk, sealed_at__isnull=True, interrupted_at__isnull=True)
    sealed = unsealed.update(**fields)
    batch.refresh_from_db()
    if sealed:
        omr_batch_settle(batch_id=batch.pk)
    return bool(sealed)


def _interrupt(*, batch: OmrBatch, skipped: list[dict[str, str]], sheets: int, sources: list[dict[str, Any]]) -> bool:
    """The upload stopped with ``sheets`` sheets made: mark the batch interrupted, so it
    is never sealed (nor graded). Conditional on it being neither yet; True when marked."""
    note = _skip("", "UPLOAD_INTERRUPTED", f"the upload stopped after {sheets} sheets")
    open_batch = OmrBatch.objects.filter(pk=batch.pk, sealed_at__isnull=True, interrupted_at__isnull=True)
    marked = open_batch.update(
        interrupted_at=timezone.now(), skipped=[*skipped, note], total_sheets=sheets, sources=sources
    )
    batch.refresh_from_db()
    return bool(marked)


def omr_batches_close_abandoned(*, older_than: datetime) -> int:
    """Close batches whose upload request died before sealing them (the sweeper calls this).

    Their sheets were committed a message at a time and are being read, but the rest of
    the upload never became sheets, so grading them would grade part of a class as if
    it were all of it: they are marked interrupted (``UPLOAD_INTERRUPTED`` in
    ``skipped``) and never graded; a retry with the same key makes a whole batch. A
    batch with no sheet at all is deleted. Returns how many were marked.
    """
    marked = 0
    abandoned = OmrBatch.objects.filter(sealed_at__isnull=True, interrupted_at__isnull=True, created_at__lt=older_than)
    for batch in abandoned[:100]:
        sheets = batch.submissions.count()
        if sheets == 0:
            batch.delete()
            continue
        if _interrupt(batch=batch, skipped=batch.skipped, sheets=sheets, sources=batch.sources):
            marked += 1
            logger.warning("omr_batch_interrupted batch=%s sheets=%s", batch.batch_id, sheets)
    return marked


class _Unsent:
    """Committed sheets' jobs waiting for their message: ``first`` in the batch's first
    message, then each message twice the last, up to ``size``."""

    def __init__(self, *, size: int, first: int) -> None:
        self.size = size
        self.limit = min(size, first)  # how many jobs the next message carries
        self.jobs: dict[str, list[str]] = {}

    def add(self, job_id: str, tier: str) -> None:
        jobs = self.jobs.setdefault(tier, [])
        jobs.append(job_id)
        if len(jobs) >= self.limit:
            self._send(tier)

    def flush(self) -> None:
        for tier in list(self.jobs):
            self._send(tier)

    def _send(self, tier: str) -> None:
        self.limit = min(self.size, self.limit * 2)
        jobs_publish(job_ids=self.jobs.pop(tier), tier=tier)


def _skip(name: str, code: str, detail: str) -> dict[str, str]:
    return {"name": name, "code": code, "message": rejection_message(code), "detail": detail}


@dataclass
class _Sheet:
    """A checked sheet, not saved yet: its submission and, unless refused, its job."""

    submission: Submission
    job: AIJob | None


def _sheet_prepare(
    *, batch: OmrBatch, path: str, name: str, page: int | None, tier: str | None, policy: selectors.TenantPolicy
) -> _Sheet | None:
    """Check the sheet (the quality gate reads its pixels) and build its rows, unsaved.

    None when the gate refuses it but the tenant's GPU pool takes it: that hand-over is
    :func:`_sheet_dispatch`'s, one sheet at a time.
    """
    submission = _sheet_submission(batch=batch, path=path, name=name, page=page)
    try:
        job, gate_failure = job_prepare(
            job_type="omr_grading",
            payload=_sheet_payload(batch=batch, path=path, page=page),
            tenant=batch.tenant,
            tier=tier,
            source_domain="submission",
            policy=policy,
        )
    except Rejection as rejection:
        logger.info("ai_dispatch_rejected job_type=omr_grading code=%s %s", rejection.code, rejection.detail)
        _settle_refused(submission, code=rejection.code, message=rejection.message)
        return _Sheet(submission, None)
    except Exception as exc:  # as job_dispatch: the sheet fails, the upload goes on
        logger.exception("ai_dispatch_failed job_type=omr_grading sheet=%s", submission.sheet_name)
        _settle_refused(submission, code="", message=str(exc))
        return _Sheet(submission, None)
    return None if gate_failure is not None else _Sheet(submission, job)


def _sheets_save(*, batch: OmrBatch, sheets: list[_Sheet], unsent: _Unsent) -> int:
    """Save checked sheets in one transaction (a statement each for their submissions,
    their jobs and the links between them), then queue their jobs to be sent. Returns
    how many were saved."""
    if not sheets:
        return 0
    now = timezone.now()
    linked = [(sheet.submission, sheet.job) for sheet in sheets if sheet.job is not None]
    with transaction.atomic():
        _insert_all([sheet.submission for sheet in sheets])
        for submission, job in linked:
            job.source_id = str(submission.pk)
            job.idempotency_key = job_idempotency_key(tenant=batch.tenant, key=_sheet_key(batch, submission))
        _insert_all([job for _, job in linked])
        for submission, job in linked:
            submission.job = job
            submission.updated_at = now
        Submission.objects.bulk_update([submission for submission, _ in linked], ["job", "updated_at"])
    for _, job in linked:
        unsent.add(job.job_id, job.tier)
    return len(sheets)


def _insert_all(rows: list[Any]) -> None:
    """INSERT model objects of one kind, their primary keys set from the database: in one
    statement where it returns them (PostgreSQL, SQLite 3.35+), else one at a time."""
    if rows and connection.features.can_return_rows_from_bulk_insert:
        type(rows[0]).objects.bulk_create(rows)
        return
    for row in rows:
        row.save(force_insert=True)


def _sheet_submission(*, batch: OmrBatch, path: str, name: str, page: int | None) -> Submission:
    """A sheet's submission, unsaved, waiting to be read (a PDF's page is ``name#page``)."""
    label = f"{name}#{page}" if page is not None else name
    return Submission(
        tenant=batch.tenant,
        exam=batch.exam,
        batch=batch,
        sheet_name=label[:300],
        source_file=path,
        page=page,
        status=SubmissionStatus.PROCESSING,
    )


def _sheet_key(batch: OmrBatch, submission: Submission) -> str:
    """The idempotency key of a sheet's job."""
    return f"omr-batch:{batch.batch_id}:{submission.pk}"


def _sheet_payload(*, batch: OmrBatch, path: str, page: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"image_path": path, "template": batch.exam.sheet_template, "mode": batch.mode}
    if page is not None:
        payload["page"] = page
    return payload


def _settle_refused(submission: Submission, *, code: str, message: str) -> None:
    """Mark the sheet refused with its code (FAILED without one); the caller saves it."""
    submission.status = SubmissionStatus.REJECTED if code else SubmissionStatus.FAILED
    submission.rejection_code = code
    submission.error_message = message[:2000]


def _sheet_dispatch(
    *, batch: OmrBatch, path: str, name: str, page: int | None, tier: str | None, policy: selectors.TenantPolicy
) -> None:
    """Create one sheet's submission and job through :func:`job_dispatch` (a sheet the
    quality gate hands to the GPU pool, which the hand-over publishes)."""
    submission = _sheet_submission(batch=batch, path=path, name=name, page=page)
    submission.save(force_insert=True)
    outcome = job_dispatch(
        job_type="omr_grading",
        payload=_sheet_payload(batch=batch, path=path, page=page),
        tenant=batch.tenant,
        tier=tier,
        source_domain="submission",
        source_id=str(submission.pk),
        idempotency_key=_sheet_key(batch, submission),
        policy=policy,
        publish=False,
    )
    if not outcome["ok"]:
        submission_reject(
            submission=submission,
            code=outcome.get("rejection_code") or "",
            message=outcome.get("error") or "dispatch failed",
        )
        return
    # One UPDATE with a subquery: the outcome names the job by its public id only.
    Submission.objects.filter(pk=submission.pk).update(
        job=Subquery(AIJob.objects.filter(job_id=outcome["job_id"]).values("pk")[:1]), updated_at=timezone.now()
    )


def submission_reject(*, submission: Submission, code: str, message: str) -> None:
    """The sheet cannot be read: settle it with the code, so the batch can complete."""
    _settle_refused(submission, code=code, message=message)
    submission.save(update_fields=["status", "rejection_code", "error_message", "updated_at"])


def omr_batch_settle(*, batch_id: int) -> bool:
    """Grade the batch if its last sheet has settled and it was not graded yet.

    True when this call graded it. Safe to call after every sheet: the batch row lock
    orders concurrent callers, and ``graded_at`` makes every call after the first a no-op.
    """
    # No savepoint when a callback's transaction is already open: nothing here is retried alone.
    with transaction.atomic(savepoint=False):
        batch = OmrBatch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.sealed_at is None or batch.graded_at is not None:
            return False
        waiting = batch.submissions.exclude(status__in=[*SUBMISSION_SETTLED, SubmissionStatus.READ])
        if waiting.exists():
            return False
        key = AnswerKey.objects.filter(exam_id=batch.exam_id).first()
        read = batch.submissions.filter(status=SubmissionStatus.READ).values_list("pk", flat=True)
        submissions_grade(submission_ids=list(read), key=key)
        now = timezone.now()
        batch.completed_at = batch.completed_at or now
        batch.graded_at = now
        batch.save(update_fields=["completed_at", "graded_at"])
    logger.info("omr_batch_graded batch=%s", batch.batch_id)
    return True
