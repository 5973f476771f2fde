"""Exams, OMR batches, submissions and job artifacts. Thin adapters over services and selectors.

Every object is looked up within the caller's tenant: another academy's exam, batch,
sheet or file answers 404, never 403, so ids reveal nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from academy import selectors, storage
from academy.api.errors import SafeJSONParser, error_response, field_error, invalid_payload
from academy.api.jobs import request_tenant
from academy.api.uploads import WholeFormParser, WholeMultiPartParser
from academy.models import Exam, JobArtifact
from academy.rejections import Rejection
from academy.services.exams import answer_key_set, exam_create
from academy.services.grading import submission_correct
from academy.services.omr_batches import Upload, omr_batch_create
from academy.services.omr_templates import exam_create_from_blank, open_proposal
from academy.states import TIERS


def _rejected(rejection: Rejection, http: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return error_response(rejection.code, rejection.detail, http, message=rejection.message)


def _exam_or_404(request: Request, exam_id: int) -> Exam:
    exam = selectors.exam_get_for_tenant(exam_id, request_tenant(request))
    if exam is None:
        raise NotFound("해당 시험을 찾을 수 없습니다.")
    return exam


def exam_body(exam: Exam) -> dict[str, Any]:
    key = getattr(exam, "answer_key", None)
    return {
        "exam_id": exam.pk,
        "title": exam.title,
        "template": exam.sheet_template,
        "answer_key": {"questions": key.questions, "scheme": key.scheme} if key else None,
        "template_proposal": proposal_body(exam),
        "created_at": exam.created_at,
    }


def proposal_body(exam: Exam) -> dict[str, Any] | None:
    """The exam's open template proposal (one the teacher has not confirmed or rejected)
    with the page to check it on, or None."""
    job = open_proposal(exam)
    if job is None:
        return None
    return {
        "job_id": job.job_id,
        "status": job.status,
        "proposal_url": reverse("review:proposal", kwargs={"exam_id": exam.pk, "job_id": job.job_id}),
    }


class ExamSerializer(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=200)
    template = serializers.JSONField(required=False, allow_null=True, default=None)
    answer_key = serializers.JSONField(required=False, allow_null=True, default=None)


class BlankCardSerializer(serializers.Serializer[Any]):
    """The three counts a teacher knows about their card, sent with ``blank_sheet``."""

    questions = serializers.IntegerField(min_value=1, max_value=300)
    choices = serializers.IntegerField(min_value=2, max_value=10)
    id_digits = serializers.IntegerField(min_value=0, max_value=12, default=0)
    mode = serializers.ChoiceField(choices=("scan", "photo"), default="scan")


class ExamListCreateView(APIView):
    @extend_schema(
        request={
            "application/json": ExamSerializer,
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "template": {"type": "string", "description": "JSON"},
                    "answer_key": {"type": "string", "description": "JSON"},
                    "blank_sheet": {"type": "string", "format": "binary"},
                    "questions": {"type": "integer"},
                    "choices": {"type": "integer"},
                    "id_digits": {"type": "integer"},
                    "mode": {"type": "string", "enum": ["scan", "photo"]},
                },
            },
        },
        responses={201: dict, 400: dict, 413: dict},
    )
    def post(self, request: Request) -> Response:
        """Create an exam. With ``blank_sheet`` (multipart) and the card's counts, also
        propose its template from that blank card: the response's ``template_job``."""
        serializer = ExamSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid_payload(serializer.errors, serializer)
        values = serializer.validated_data
        blanks = request.FILES.getlist("blank_sheet") if hasattr(request, "FILES") else []
        if blanks:
            return self._create_from_blank(request, values, blanks)
        try:
            exam = exam_create(
                tenant=request_tenant(request),
                title=values["title"],
                template=values["template"],
                answer_key=values["answer_key"],
            )
        except Rejection as rejection:
            return _rejected(rejection)
        return Response(exam_body(exam), status=status.HTTP_201_CREATED)

    def _create_from_blank(self, request: Request, values: dict[str, Any], blanks: list[Any]) -> Response:
        if len(blanks) > 1:
            return field_error("blank_sheet", "send one blank card", "빈 답안지는 한 장만 보내 주세요.")
        blank = blanks[0]
        if (blank.size or 0) > settings.MAX_UPLOAD_BYTES:
            return error_response("FILE_TOO_LARGE", f"{blank.size} bytes", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        counts = BlankCardSerializer(data=request.data)
        if not counts.is_valid():
            return invalid_payload(counts.errors, counts)
        card = counts.validated_data
        try:
            exam, job = exam_create_from_blank(
                tenant=request_tenant(request),
                title=values["title"],
                blank_name=blank.name or "blank",
                blank=blank.read(),
                questions=card["questions"],
                choices=card["choices"],
                id_digits=card["id_digits"],
                mode=card["mode"],
                template=values["template"],
                answer_key=values["answer_key"],
            )
        except Rejection as rejection:
            return _rejected(rejection)
        body = exam_body(exam)
        body["template_job"] = {
            "job_id": job["job_id"],
            "status": job.get("status"),
            "proposal_url": reverse("review:proposal", kwargs={"exam_id": exam.pk, "job_id": job["job_id"]}),
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="exams_list", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        exams = selectors.exams_for_tenant(request_tenant(request))
        return Response({"results": list(exams.values("id", "title", "created_at")[:200])})


class ExamDetailView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, exam_id: int) -> Response:
        return Response(exam_body(_exam_or_404(request, exam_id)))


class AnswerKeyView(APIView):
    @extend_schema(request=dict, responses={200: dict, 400: dict})
    def put(self, request: Request, exam_id: int) -> Response:
        exam = _exam_or_404(request, exam_id)
        try:
            answer_key_set(exam=exam, answer_key=request.data)
        except Rejection as rejection:
            return _rejected(rejection)
        exam.refresh_from_db()
        return Response(exam_body(exam))


class OmrBatchListCreateView(APIView):
    parser_classes = [WholeMultiPartParser, WholeFormParser]

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "mode": {"type": "string", "enum": ["scan", "photo"]},
                    "tier": {"type": "string", "enum": list(TIERS)},
                    "idempotency_key": {"type": "string"},
                },
            }
        },
        responses={201: dict, 200: dict, 400: dict, 413: dict},
    )
    def post(self, request: Request, exam_id: int) -> Response:
        """Upload sheets (images, PDFs with a sheet a page, or zips of them): one job per sheet."""
        exam = _exam_or_404(request, exam_id)
        files = request.FILES.getlist("files") or request.FILES.getlist("file")
        if not files:
            return error_response("FILE_REQUIRED", "send the sheets as 'files'", status.HTTP_400_BAD_REQUEST)
        total = sum(f.size or 0 for f in files)
        if total > settings.MAX_UPLOAD_BYTES:
            return error_response("FILE_TOO_LARGE", f"{total} bytes", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        tier = request.data.get("tier") or None
        if tier is not None and tier not in TIERS:
            return field_error(
                "tier", "tier must be lite, basic or premium", "lite, basic, premium 중 하나로 보내 주세요."
            )
        try:
            batch, created = omr_batch_create(
                tenant=exam.tenant,
                exam=exam,
                # Read one file at a time as the batch expands it; Django spooled the
                # large ones to disk, so the request never holds every file twice.
                uploads=(Upload(name=f.name or "upload", data=f.read()) for f in files),
                mode=str(request.data.get("mode") or "scan"),
                tier=tier,
                idempotency_key=str(request.data.get("idempotency_key") or "") or None,
            )
        except Rejection as rejection:
            return _rejected(rejection)
        body = selectors.batch_body(batch)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(operation_id="omr_batches_list", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, exam_id: int) -> Response:
        exam = _exam_or_404(request, exam_id)
        batches = exam.omr_batches.all()[:100]
        return Response({"results": [selectors.batch_body(b, with_sheets=False) for b in batches]})


class OmrBatchDetailView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, exam_id: int, batch_id: str) -> Response:
        batch = selectors.batch_get_for_tenant(batch_id, request_tenant(request), exam_id=exam_id)
        if batch is None:
            raise NotFound("해당 답안지 묶음을 찾을 수 없습니다.")
        return Response(selectors.batch_body(batch))


class CorrectionSerializer(serializers.Serializer[Any]):
    answers = serializers.DictField(child=serializers.JSONField(), required=False)
    student_id = serializers.CharField(max_length=32, required=False)


class SubmissionDetailView(APIView):
    parser_classes = [SafeJSONParser]

    def _get(self, request: Request, submission_id: int) -> Any:
        submission = selectors.submission_get_for_tenant(submission_id, request_tenant(request))
        if submission is None:
            raise NotFound("해당 답안지를 찾을 수 없습니다.")
        return submission

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, submission_id: int) -> Response:
        return Response(selectors.submission_body(self._get(request, submission_id)))

    @extend_schema(request=CorrectionSerializer, responses={200: dict, 400: dict})
    def patch(self, request: Request, submission_id: int) -> Response:
        """A teacher's correction: the answers (and/or student id) they read; regrades."""
        submission = self._get(request, submission_id)
        serializer = CorrectionSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid_payload(serializer.errors, serializer)
        values = serializer.validated_data
        if not values:
            return error_response(
                "INVALID_PAYLOAD",
                "send answers and/or student_id",
                status.HTTP_400_BAD_REQUEST,
                message="고칠 내용이 없습니다. 답안(answers)이나 학번(student_id)을 보내 주세요.",
            )
        try:
            submission_correct(
                submission=submission, answers=values.get("answers"), student_id=values.get("student_id")
            )
        except Rejection as rejection:
            return _rejected(rejection)
        return Response(selectors.submission_body(self._get(request, submission_id)))


class DownloadView(APIView):
    """A signed, expiring link: the token is the credential, so no login is asked."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, token: str) -> FileResponse:
        artifact_id = storage.download_resolve(token, max_age=settings.AI_DOWNLOAD_URL_TTL_SECONDS)
        artifact = JobArtifact.objects.filter(pk=artifact_id).first() if artifact_id is not None else None
        if artifact is None or not default_storage.exists(artifact.path):
            raise NotFound("링크가 만료되었거나 올바르지 않습니다.")
        return FileResponse(
            default_storage.open(artifact.path, "rb"),
            content_type=artifact.content_type,
            as_attachment=True,
            filename=artifact.name,
        )


class JobArtifactView(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, job_id: str, name: str) -> FileResponse:
        artifact = selectors.artifact_get_for_tenant(job_id, name, request_tenant(request))
        if artifact is None or not default_storage.exists(artifact.path):
            raise NotFound("파일을 찾을 수 없습니다.")
        return FileResponse(default_storage.open(artifact.path, "rb"), content_type=artifact.content_type)
