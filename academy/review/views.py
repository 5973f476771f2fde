"""Server-rendered review pages: a teacher settles the answers the reader was unsure of.

Every page needs a session login and looks objects up within the user's academy: another
academy's exam or sheet answers 404, as in the JSON API. A correction goes through
``submission_correct`` (the same service as ``PATCH /api/v1/submissions/<id>/``), so it
regrades the sheet exactly as the API does, and the page redirects back (POST, redirect,
GET), so a reload never posts twice.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from academy import selectors
from academy.models import Exam, JobArtifact, Submission, SubmissionAnswer, Tenant
from academy.rejections import Rejection
from academy.services.grading import submission_correct
from academy.services.omr_templates import open_proposal, open_proposals

if TYPE_CHECKING:
    from workers.omr.template import Template

LOGIN_URL = "review:login"
#: the value a "blank" button posts: the teacher reads no mark on the row.
BLANK = "__blank__"
#: margins of a crop around a question's row, in bubble radii (the printed question
#: number sits 2.6 radii left of the first bubble; the review box 1.5 radii around).
CROP_LEFT, CROP_RIGHT, CROP_VERTICAL = 3.4, 2.2, 2.0


def _tenant(request: HttpRequest) -> Tenant:
    tenant = selectors.tenant_for_user(request.user)
    if tenant is None:
        # A login with no academy (an ops account) has nothing to review here.
        raise Http404("학원에 속한 계정이 아닙니다.")
    return tenant


def _exam(request: HttpRequest, exam_id: int) -> Exam:
    exam = selectors.exam_get_for_tenant(exam_id, _tenant(request))
    if exam is None:
        raise Http404("해당 시험을 찾을 수 없습니다.")
    return exam


@functools.lru_cache(maxsize=32)
def _template_from_json(raw: str) -> Template | None:
    from workers.omr.errors import OmrError
    from workers.omr.omrchecker import STORED_FORMAT, stored_template_load
    from workers.omr.template import load_template

    data = json.loads(raw)
    try:
        return stored_template_load(data) if data.get("format") == STORED_FORMAT else load_template(data)
    except OmrError:
        return None


def sheet_template(exam: Exam) -> Template | None:
    """The exam's sheet geometry (the reader's own parser), or None without a valid one."""
    if not isinstance(exam.sheet_template, dict) or not exam.sheet_template:
        return None
    return _template_from_json(json.dumps(exam.sheet_template, sort_keys=True))


def crop_box(template: Template, question: str, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The pixel box of a question's row in an overlay ``width`` x ``height`` pixels.

    The overlay is the sheet straightened into the template frame and scaled down (to
    100 dpi for the 200-dpi templates); its scale is read off its width, so an overlay
    drawn at another scale still crops right.
    """
    field = next((f for f in template.questions if f.label == question), None)
    if field is None or not field.centres:
        return None
    scale = width / template.width
    r = template.bubble_radius
    xs = [x for x, _ in field.centres]
    ys = [y for _, y in field.centres]
    left = max(0, round((min(xs) - CROP_LEFT * r) * scale))
    top = max(0, round((min(ys) - CROP_VERTICAL * r) * scale))
    right = min(width, round((max(xs) + CROP_RIGHT * r) * scale))
    bottom = min(height, round((max(ys) + CROP_VERTICAL * r) * scale))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


@dataclass(frozen=True)
class ReviewItem:
    answer: SubmissionAnswer
    submission: Submission
    sheet: str
    choices: tuple[str, ...]
    crop_url: str | None


def _question_order(label: str) -> tuple[int, int | str]:
    return (0, int(label)) if label.isdigit() else (1, label)


def _choices_for(template: Template | None, exam: Exam, question: str) -> tuple[str, ...]:
    if template is not None:
        for field in template.questions:
            if field.label == question:
                return field.values
    choices = (exam.sheet_template or {}).get("choices")
    return tuple(str(c) for c in choices) if isinstance(choices, list) else ()


def _has_overlay(submission: Submission) -> bool:
    job = submission.job
    return job is not None and any(a.name == selectors.OVERLAY for a in job.artifacts.all())


def review_items(exam: Exam) -> list[ReviewItem]:
    """Every answer of the exam's sheets that the reader flagged and no one corrected yet."""
    template = sheet_template(exam)
    answers = (
        SubmissionAnswer.objects.filter(
            submission__exam=exam, submission__tenant=exam.tenant, flagged=True, corrected__isnull=True
        )
        .select_related("submission", "submission__job")
        .prefetch_related("submission__job__artifacts")
    )
    items = []
    for answer in answers:
        submission = answer.submission
        crop = None
        if template is not None and _has_overlay(submission):
            crop = reverse("review:crop", kwargs={"submission_id": submission.pk, "question": answer.question})
        items.append(
            ReviewItem(
                answer=answer,
                submission=submission,
                sheet=submission.sheet_name or submission.source_file.rsplit("/", 1)[-1] or f"#{submission.pk}",
                choices=_choices_for(template, exam, answer.question),
                crop_url=crop,
            )
        )
    items.sort(key=lambda i: (i.submission.pk, _question_order(i.answer.question)))
    return items


@require_GET
@login_required(login_url=LOGIN_URL)
def exam_index(request: HttpRequest) -> HttpResponse:
    tenant = _tenant(request)
    pending = Q(submissions__answers__flagged=True, submissions__answers__corrected__isnull=True)
    exams = list(
        selectors.exams_for_tenant(tenant).annotate(pending=Count("submissions__answers", filter=pending))[:200]
    )
    proposals = open_proposals(exams)
    for exam in exams:
        exam.open_proposal = proposals.get(exam.pk)  # type: ignore[attr-defined]
    return render(request, "review/index.html", {"tenant": tenant, "exams": exams})


@require_GET
@login_required(login_url=LOGIN_URL)
def exam_review(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = _exam(request, exam_id)
    items = review_items(exam)
    context = {
        "exam": exam,
        "items": items,
        "blank": BLANK,
        "sheets": len({i.submission.pk for i in items}),
        "proposal": open_proposal(exam),  # a template proposed from a blank card, to confirm
    }
    return render(request, "review/exam.html", context)


def _posted_choices(request: HttpRequest) -> list[str] | None:
    """The choices a form posted: one button's value, the blank button, or a typed list."""
    choice = request.POST.get("choice")
    if choice == BLANK:
        return []
    if choice:
        return [choice]
    typed = request.POST.get("choices", "")
    values = [v for v in typed.replace(",", " ").split() if v]
    return values or None


@require_POST
@login_required(login_url=LOGIN_URL)
def answer_correct(request: HttpRequest, exam_id: int) -> HttpResponse:
    exam = _exam(request, exam_id)
    back = reverse("review:exam", kwargs={"exam_id": exam.pk})
    question = request.POST.get("question", "")
    try:
        submission_id = int(request.POST.get("submission_id", ""))
    except ValueError as exc:
        raise Http404("해당 답안지를 찾을 수 없습니다.") from exc
    submission = Submission.objects.filter(pk=submission_id, exam=exam, tenant=exam.tenant).first()
    if submission is None:
        raise Http404("해당 답안지를 찾을 수 없습니다.")
    choices = _posted_choices(request)
    if not question or choices is None:
        messages.error(request, "고칠 답을 고르세요.")
        return redirect(back)
    try:
        grade = submission_correct(submission=submission, answers={question: choices})
    except Rejection as rejection:
        messages.error(request, f"고치지 못했습니다: {rejection.detail}")
        return redirect(back)
    shown = ", ".join(choices) if choices else "빈칸"
    sheet = submission.sheet_name or submission.pk
    messages.success(request, f"{sheet} {question}번 → {shown}. 다시 채점: {grade.score:g}/{grade.max_score:g}")
    return redirect(back)


def _overlay_artifact(submission: Submission) -> JobArtifact | None:
    if submission.job is None:
        return None
    return next((a for a in submission.job.artifacts.all() if a.name == selectors.OVERLAY), None)


def overlay_crop_png(data: bytes, template: Template, question: str) -> bytes | None:
    """The question's row cut out of an overlay PNG, or None when the sheet has no such row.

    A palette image stays a palette image, so a crop is a few KB.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        box = crop_box(template, question, image.width, image.height)
        if box is None:
            return None
        out = io.BytesIO()
        image.crop(box).save(out, format="PNG")
    return out.getvalue()


@require_GET
@login_required(login_url=LOGIN_URL)
@cache_control(private=True, max_age=300)
def answer_crop(request: HttpRequest, submission_id: int, question: str) -> HttpResponse:
    submission = selectors.submission_get_for_tenant(submission_id, _tenant(request))
    if submission is None:
        raise Http404("해당 답안지를 찾을 수 없습니다.")
    template = sheet_template(submission.exam)
    artifact = _overlay_artifact(submission)
    if template is None or artifact is None or not default_storage.exists(artifact.path):
        raise Http404("검토 이미지가 없습니다.")
    with default_storage.open(artifact.path, "rb") as fh:
        data: bytes = fh.read()
    png = overlay_crop_png(data, template, question)
    if png is None:
        raise Http404("해당 문항이 답안지에 없습니다.")
    return HttpResponse(png, content_type="image/png")
