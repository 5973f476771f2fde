"""A template proposed from a blank card (the ``omr_template`` job), confirmed onto an exam.

The job (workers/omr/template_processor.py) proposes; a person confirms. Confirming takes
the proposal from the job's stored result, numbered as the teacher chose ("columns": down
each column of blocks; "rows": across the blocks side by side), checks it as any exam
template is checked (``template_clean``) and makes it the exam's template. An exam whose
sheets have already been uploaded keeps its template: those sheets were read with it.

An exam created from a blank card (``exam_create_from_blank``) waits for that
confirmation: it is made without a template, so no batch can be read with the wrong card,
unless the teacher also gave a template, which it reads with until the proposal is
confirmed.

The decision is kept with the proposal, in its job's flags (``proposal_decision``: the
numbering confirmed, or "rejected"; the stored result is write-once); a proposal without
one, of a job that has not failed, is the exam's open proposal (``open_proposal``), which
the exam's API body and pages link to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from django.db import transaction

from academy import selectors, storage
from academy.jobs.dispatch import job_dispatch
from academy.models import AIJob, AIResult, Exam, JobStatus, Tenant
from academy.rejections import Rejection
from academy.services.exams import answer_key_set, exam_create, template_clean
from academy.states import TERMINAL_STATUSES

PROPOSAL_JOB_TYPE: Final = "omr_template"
NUMBERINGS: Final = ("columns", "rows")
#: the proposal job's flags record what the teacher decided under this key.
DECISION: Final = "proposal_decision"
REJECTED: Final = "rejected"
#: a proposal job in one of these states will never propose anything.
_ENDED_WITHOUT_PROPOSAL: Final = frozenset({JobStatus.FAILED, JobStatus.REJECTED_BAD_INPUT})


@transaction.atomic
def exam_create_from_blank(
    *,
    tenant: Tenant,
    title: str,
    blank_name: str,
    blank: bytes,
    questions: int,
    choices: int,
    id_digits: int = 0,
    mode: str = "scan",
    template: Any = None,
    answer_key: Any = None,
) -> tuple[Exam, dict[str, Any]]:
    """Create the exam and dispatch the ``omr_template`` job that proposes its template
    from one blank card. Returns (exam, the dispatch's outcome: ``job_id``, ``status``).

    Without ``template`` the exam has none until the proposal is confirmed: a batch
    uploaded meanwhile is refused rather than read with the shipped 40-question sheet,
    which would misread every sheet of the teacher's own card. The job runs once this
    transaction commits; a bad template or answer key leaves no exam and no job.
    """
    if template is None:
        exam = Exam.objects.create(tenant=tenant, title=title[:200], sheet_template={})
        if answer_key is not None:
            answer_key_set(exam=exam, answer_key=answer_key)
    else:
        exam = exam_create(tenant=tenant, title=title, template=template, answer_key=answer_key)
    path = storage.upload_save(tenant=tenant, name=blank_name, data=blank)
    outcome = job_dispatch(
        job_type=PROPOSAL_JOB_TYPE,
        payload={
            "image_path": path,
            "questions": questions,
            "choices": choices,
            "id_digits": id_digits,
            "mode": mode,
            "name": title[:80],
        },
        tenant=tenant,
        tier="basic",
        source_domain="exam",
        source_id=str(exam.pk),
    )
    return exam, outcome


@transaction.atomic
def omr_template_confirm(*, tenant: Tenant, exam: Exam, job_id: str, numbering: str = "columns") -> Exam:
    """Make the proposal of ``job_id`` (this tenant's, an ``omr_template`` job that is
    done) the exam's template, numbered ``numbering``. Raises Rejection."""
    from workers.omr.blank import template_renumber
    from workers.omr.errors import OmrError

    if numbering not in NUMBERINGS:
        raise Rejection("INVALID_PAYLOAD", "numbering must be 'columns' or 'rows'")
    job = selectors.job_get_for_tenant(job_id, tenant)
    if job is None or job.job_type != PROPOSAL_JOB_TYPE:
        raise Rejection("INVALID_SOURCE", f"job {job_id} is not a template proposal of this academy")
    result = AIResult.objects.filter(job=job).first()
    proposal: Any = (result.payload or {}).get("template") if result is not None else None
    if job.status != JobStatus.DONE or not isinstance(proposal, dict):
        raise Rejection("INVALID_SOURCE", f"job {job_id} has no proposed template (status {job.status})")
    locked = Exam.objects.select_for_update().get(pk=exam.pk)
    if locked.omr_batches.exists():
        raise Rejection(
            "INVALID_PAYLOAD", "template: the exam's sheets are already uploaded and read with its template"
        )
    try:
        template = template_renumber(proposal, numbering)
    except OmrError as exc:
        raise Rejection(exc.code, exc.message) from exc
    locked.sheet_template = template_clean(template)
    locked.save(update_fields=["sheet_template"])
    _decide(job, numbering)
    return locked


@transaction.atomic
def omr_template_reject(*, tenant: Tenant, job_id: str) -> None:
    """Record that the teacher rejected the proposal of ``job_id``: no exam's template
    changes, and the proposal is no longer open. A job still running is left to finish
    (its flags are the job engine's until then) and stays open. Raises Rejection."""
    job = selectors.job_get_for_tenant(job_id, tenant)
    if job is None or job.job_type != PROPOSAL_JOB_TYPE:
        raise Rejection("INVALID_SOURCE", f"job {job_id} is not a template proposal of this academy")
    if job.status in TERMINAL_STATUSES:
        _decide(job, REJECTED)


def _decide(job: AIJob, decision: str) -> None:
    locked = AIJob.objects.select_for_update().get(pk=job.pk)
    locked.flags = {**(locked.flags or {}), DECISION: decision}
    locked.save(update_fields=["flags"])


def open_proposal(exam: Exam) -> AIJob | None:
    """The exam's newest template proposal while it is open: its job has not failed and
    the teacher has neither confirmed nor rejected it. None otherwise."""
    return open_proposals([exam]).get(exam.pk)


def open_proposals(exams: Iterable[Exam]) -> dict[int, AIJob]:
    """``open_proposal`` for each of ``exams`` (of one tenant), in one query: exam id ->
    its open proposal's job, for the exams that have one."""
    exams = list(exams)
    if not exams:
        return {}
    newest: dict[int, AIJob] = {}
    jobs = AIJob.objects.filter(
        tenant=exams[0].tenant,
        job_type=PROPOSAL_JOB_TYPE,
        source_domain="exam",
        source_id__in=[str(e.pk) for e in exams],
    ).order_by("created_at", "pk")
    for job in jobs:
        newest[int(job.source_id)] = job  # the last one of each exam is its newest
    return {
        pk: job
        for pk, job in newest.items()
        if job.status not in _ENDED_WITHOUT_PROPOSAL and not (job.flags or {}).get(DECISION)
    }
