"""Confirming a template proposed from a blank card onto an exam. A thin adapter over
academy.services.omr_templates; the exam is looked up within the caller's tenant."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from academy import selectors
from academy.api.errors import error_response, invalid_payload
from academy.api.exams import exam_body
from academy.api.jobs import request_tenant
from academy.rejections import Rejection
from academy.services.omr_templates import NUMBERINGS, omr_template_confirm


class ProposalConfirmSerializer(serializers.Serializer[Any]):
    job_id = serializers.CharField(max_length=64)
    numbering = serializers.ChoiceField(choices=NUMBERINGS, default="columns")


class ExamTemplateProposalView(APIView):
    @extend_schema(request=ProposalConfirmSerializer, responses={200: dict, 400: dict, 404: dict})
    def post(self, request: Request, exam_id: int) -> Response:
        tenant = request_tenant(request)
        exam = selectors.exam_get_for_tenant(exam_id, tenant)
        if exam is None:
            raise NotFound("해당 시험을 찾을 수 없습니다.")
        serializer = ProposalConfirmSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid_payload(serializer.errors, serializer)
        values = serializer.validated_data
        try:
            exam = omr_template_confirm(
                tenant=tenant, exam=exam, job_id=values["job_id"], numbering=values["numbering"]
            )
        except Rejection as rejection:
            return error_response(rejection.code, rejection.detail, 400, message=rejection.message)
        return Response(exam_body(exam))
