"""The page where a teacher checks a template proposed from a blank card, and confirms it.

``GET /review/exams/<exam_id>/proposals/<job_id>/`` shows the picture of what the
``omr_template`` job found (every bubble outlined, each question's number, each ID
column's number and digits) and what it counted. Three buttons: confirm with the
numbering down the columns, confirm numbered across (row by row), or reject. Confirming
goes through ``omr_template_confirm`` (the same service as the JSON API), so the exam's
batches then read with the proposal; rejecting changes no template and closes the
proposal (``omr_template_reject``). POST, redirect, GET.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from academy import selectors
from academy.models import AIJob, AIResult, JobStatus
from academy.rejections import Rejection
from academy.review.views import LOGIN_URL, _exam, _tenant
from academy.services.omr_templates import PROPOSAL_JOB_TYPE, omr_template_confirm, omr_template_reject

PICTURE = "proposal.png"
#: what each button posts as ``decision``.
DECISIONS = ("columns", "rows", "reject")


def _proposal(request: HttpRequest, job_id: str) -> tuple[AIJob, dict[str, Any]]:
    job = selectors.job_get_for_tenant(job_id, _tenant(request))
    if job is None or job.job_type != PROPOSAL_JOB_TYPE:
        raise Http404("해당 양식 제안을 찾을 수 없습니다.")
    result = AIResult.objects.filter(job=job).first()
    payload = result.payload if result is not None and isinstance(result.payload, dict) else {}
    return job, payload


@login_required(login_url=LOGIN_URL)
@require_GET
def proposal_show(request: HttpRequest, exam_id: int, job_id: str) -> HttpResponse:
    exam = _exam(request, exam_id)
    job, payload = _proposal(request, job_id)
    raw = payload.get("template")
    template: dict[str, Any] = raw if isinstance(raw, dict) else {}
    raw_found = payload.get("found")
    found: dict[str, Any] = raw_found if isinstance(raw_found, dict) else {}
    questions = sum(int(b.get("count", 0)) for b in template.get("question_blocks", []))
    context = {
        "exam": exam,
        "job": job,
        "ready": job.status == JobStatus.DONE and bool(template),
        "error": job.error_message,
        "questions": questions,
        "choices": len(template.get("choices", [])),
        "id_digits": (template.get("student_id") or {}).get("digits", 0),
        "alignment": found.get("alignment", ""),
    }
    return render(request, "review/proposal.html", context)


@login_required(login_url=LOGIN_URL)
@require_GET
def proposal_picture(request: HttpRequest, job_id: str) -> FileResponse:
    artifact = selectors.artifact_get_for_tenant(job_id, PICTURE, _tenant(request))
    if artifact is None or not default_storage.exists(artifact.path):
        raise Http404("그림을 찾을 수 없습니다.")
    return FileResponse(default_storage.open(artifact.path, "rb"), content_type=artifact.content_type)


@login_required(login_url=LOGIN_URL)
@require_POST
def proposal_decide(request: HttpRequest, exam_id: int, job_id: str) -> HttpResponse:
    exam = _exam(request, exam_id)
    job, _ = _proposal(request, job_id)
    decision = request.POST.get("decision", "")
    if decision not in DECISIONS:
        messages.error(request, "확인 또는 거절을 선택해 주세요.")
        return redirect("review:proposal", exam_id=exam.pk, job_id=job.job_id)
    if decision == "reject":
        omr_template_reject(tenant=_tenant(request), job_id=job.job_id)
        messages.success(request, "양식 제안을 거절했습니다. 시험의 양식은 바뀌지 않았습니다.")
        return redirect("review:index")
    try:
        omr_template_confirm(tenant=_tenant(request), exam=exam, job_id=job.job_id, numbering=decision)
    except Rejection as rejection:
        messages.error(request, rejection.message or rejection.detail)
        return redirect("review:proposal", exam_id=exam.pk, job_id=job.job_id)
    order = "세로(열마다 위에서 아래로)" if decision == "columns" else "가로(한 줄씩 왼쪽에서 오른쪽으로)"
    messages.success(request, f"양식을 확정했습니다. 문항 번호: {order}. 이 시험의 답안지는 이 양식으로 판독합니다.")
    return redirect("review:exam", exam_id=exam.pk)
