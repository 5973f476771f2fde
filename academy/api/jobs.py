"""Public job API: dispatch, list, status. Thin adapters over services and selectors."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from academy import selectors, storage
from academy.api.errors import SafeJSONParser, error_response, field_error, invalid_payload
from academy.api.fields import StrictBooleanField
from academy.api.uploads import WholeFormParser, WholeMultiPartParser
from academy.jobs.dispatch import job_dispatch
from academy.jobs.prevalidation import input_key_for
from academy.models import AIJob, Tenant
from academy.services.throttles import Throttled, force_rerun_slot
from academy.states import TIERS


def request_tenant(request: Request) -> Tenant:
    tenant = selectors.tenant_for_user(request.user)
    if tenant is None:
        raise PermissionDenied("this user belongs to no academy")
    return tenant


class DispatchSerializer(serializers.Serializer[Any]):
    job_type = serializers.CharField(max_length=64)
    payload = serializers.JSONField(required=False, default=dict)
    tier = serializers.ChoiceField(choices=list(TIERS), required=False, allow_null=True)
    idempotency_key = serializers.CharField(max_length=200, required=False, allow_blank=True)
    force_rerun = StrictBooleanField(required=False, default=False)
    rerun_reason = serializers.CharField(required=False, allow_blank=True, default="")
    source_domain = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    source_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    # An empty file passes here so that pre-validation refuses it with EMPTY_FILE.
    file = serializers.FileField(required=False, write_only=True, allow_empty_file=True)


def job_status_body(job: AIJob) -> dict[str, Any]:
    """The job-status response: status, result, error, progress, attempts and the fallback lineage."""
    return {
        "job_id": job.job_id,
        "job_type": job.job_type,
        "status": job.status,
        "tier": job.tier,
        "result": selectors.job_result_payload(job),
        "error_message": job.error_message or None,
        "rejection_code": job.rejection_code or None,
        "progress": job.progress or None,
        "needs_review": job.needs_review,
        "flags": job.flags,
        "attempt_count": job.attempt_count,
        "max_attempts": job.max_attempts,
        "lineage": [
            {"job_id": j.job_id, "tier": j.tier, "status": j.status, "attempt_count": j.attempt_count}
            for j in selectors.job_lineage(job)
        ],
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        # The domain callback (a job aimed at a submission): applied, failing or given up.
        "callback": {
            "done_at": job.callback_done_at,
            "attempts": job.callback_attempts,
            "error": job.callback_error or None,
            "failed_at": job.callback_failed_at,
        },
    }


class JobListCreateView(APIView):
    parser_classes = [SafeJSONParser, WholeMultiPartParser, WholeFormParser]

    @extend_schema(request=DispatchSerializer, responses={202: dict, 400: dict})
    def post(self, request: Request) -> Response:
        tenant = request_tenant(request)
        data: Any = request.data
        form = hasattr(data, "dict")
        if form:  # multipart/form: payload arrives as a JSON string field
            if len(request.FILES.getlist("file")) > 1:  # one job reads one file: never the last one silently
                return error_response(
                    "INVALID_PAYLOAD",
                    "send one 'file' part per job",
                    status.HTTP_400_BAD_REQUEST,
                    message="작업 하나에는 파일 하나만 보낼 수 있습니다. 'file'을 한 번만 보내 주세요.",
                )
            data = {**data.dict(), "file": request.FILES.get("file")}
            try:
                data["payload"] = json.loads(data.get("payload") or "{}")
            except (ValueError, RecursionError):
                return field_error(
                    "payload", "payload is not valid JSON", "올바른 JSON이 아닙니다. JSON 객체로 보내 주세요."
                )
        serializer = DispatchSerializer(data=data, context={"form": form})
        if not serializer.is_valid():
            return invalid_payload(serializer.errors, serializer)
        values = serializer.validated_data
        payload = values.get("payload")
        upload = values.get("file")
        if upload is not None:
            if upload.size > settings.MAX_UPLOAD_BYTES:
                return error_response(
                    "FILE_TOO_LARGE", f"{upload.size} bytes", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
                )
            key = input_key_for(values["job_type"])
            if key is None or not isinstance(payload, dict):
                return field_error(
                    "file", "this job type takes no file", "이 작업 종류는 파일을 받지 않습니다. 파일 없이 보내 주세요."
                )
            payload = {**payload, key: storage.upload_save(tenant=tenant, name=upload.name, data=upload.read())}
        # A forced rerun skips idempotency and makes a new job each time: at most
        # AI_FORCE_RERUN_PER_HOUR per tenant (counted under the tenant's row lock).
        slot = force_rerun_slot(tenant=tenant) if values["force_rerun"] else contextlib.nullcontext()
        try:
            with slot:
                outcome = job_dispatch(
                    job_type=values["job_type"],
                    payload=payload,
                    tenant=tenant,
                    tier=values.get("tier"),
                    idempotency_key=values.get("idempotency_key") or None,
                    force_rerun=values["force_rerun"],
                    rerun_reason=values["rerun_reason"],
                    source_domain=values["source_domain"],
                    source_id=values["source_id"],
                    # Read with this request's token (academy.api.auth): no query of its own.
                    policy=selectors.tenant_policy_of(tenant),
                )
        except Throttled as throttled:
            response = error_response(throttled.code, throttled.detail, status.HTTP_429_TOO_MANY_REQUESTS)
            response["Retry-After"] = str(throttled.retry_after)
            return response
        if outcome["ok"]:
            return Response(outcome, status=status.HTTP_202_ACCEPTED if outcome.get("created") else status.HTTP_200_OK)
        if outcome.get("rejection_code") == "IDEMPOTENCY_KEY_REUSED":  # the key names another request
            return Response(outcome, status=status.HTTP_409_CONFLICT)
        http = status.HTTP_400_BAD_REQUEST if outcome.get("rejection_code") else status.HTTP_503_SERVICE_UNAVAILABLE
        return Response(outcome, status=http)

    @extend_schema(operation_id="jobs_list", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        tenant = request_tenant(request)
        jobs = selectors.jobs_for_tenant(tenant)
        wanted = request.query_params.get("status")
        if wanted:
            jobs = jobs.filter(status=wanted.upper())
        if request.query_params.get("needs_review") in ("1", "true"):
            jobs = jobs.filter(needs_review=True)
        rows = jobs.values("job_id", "job_type", "status", "tier", "needs_review", "created_at")[:200]
        return Response({"results": list(rows)})


class JobStatusView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, job_id: str) -> Response:
        job = selectors.job_get_for_tenant(job_id, request_tenant(request))
        if job is None:
            raise NotFound("해당 job을 찾을 수 없습니다.")
        return Response(job_status_body(job))
