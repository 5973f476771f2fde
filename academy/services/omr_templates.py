"""A template proposed from a blank card (the ``omr_template`` job), confirmed onto an exam.

The job (workers/omr/template_processor.py) proposes; a person confirms. Confirming takes
the proposal from the job's stored result, numbered as the teacher chose ("columns": down
each column of blocks; "rows": across the blocks side by side), checks it as any exam
template is checked (``template_clean``) and makes it the exam's template. An exam whose
sheets have already been uploaded keeps its template: those sheets were read with it.
"""

from __future__ import annotations

from typing import Any, Final

from django.db import transaction

from academy import selectors
from academy.models import AIResult, Exam, JobStatus, Tenant
from academy.rejections import Rejection
from academy.services.exams import template_clean

PROPOSAL_JOB_TYPE: Final = "omr_template"
NUMBERINGS: Final = ("columns", "rows")


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
    return locked
