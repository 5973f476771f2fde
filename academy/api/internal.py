"""The internal worker API, for workers outside the cluster (a fixed contract: paths and bodies).

``GET  /api/v1/internal/ai/job/next/``       claims the oldest due job: ``{"job": {...} | null}``
``POST /api/v1/internal/ai/job/heartbeat/``  renews the lease and records progress
``POST /api/v1/internal/ai/job/result/``     reports ``{job_id, status: DONE|FAILED, result, error}``

All three go through the same claim, lease and lifecycle rules as the Celery pools, so a
job handed out here is skipped by a Celery worker that later gets its message. The lease
token handed out with a job fences its run: once the lease is lost (no heartbeat within
``AI_LEASE_SECONDS``, and the job was handed to another run), the heartbeat and the
result of the old run get 409 ``SUPERSEDED``. The one result posted twice that is still
a 200 (``duplicate_ignored``) is a repeat of the result that was stored, from the worker
that ran the job last: a network retry, nothing lost.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from academy.api.errors import SafeJSONParser, error_response, field_error, invalid_payload
from academy.jobs import claims
from academy.jobs.outcome import outcome_apply
from academy.models import AIJob, AIResult, JobStatus
from academy.policies import Failure
from academy.selectors import job_get
from academy.states import TIERS
from workers.base import ProcessorResult

#: how deep a reported result may nest (checked without recursion)
MAX_RESULT_DEPTH = 64
#: integers in a result beyond a 64-bit integer are refused: no count or score is that
#: large, and a 400-digit one would only reach the readers of the result to break them
MAX_RESULT_INTEGER = 2**63


def _worker_auth(request: Request) -> Response | None:
    expected = settings.INTERNAL_WORKER_TOKEN
    if not expected:
        return Response({"detail": "INTERNAL_WORKER_TOKEN not configured"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    given = request.headers.get("X-Worker-Token", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return Response({"detail": "Unauthorized worker"}, status=status.HTTP_401_UNAUTHORIZED)
    return None


def _worker_id(request: Request) -> str:
    return "external:" + (request.headers.get("X-Worker-Id") or "ai-worker")[:150]


def _superseded(detail: str = "superseded") -> Response:
    return error_response("SUPERSEDED", detail, status.HTTP_409_CONFLICT)


def _bad_value(value: Any) -> tuple[str, str] | None:
    """(code, what) for the first value in a JSON document the database cannot store as
    it came, or that is out of any sensible range; None when all is well. Iterative, so a
    deeply nested document is refused rather than overflowing the stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_RESULT_DEPTH:
            return "INVALID_PAYLOAD", f"nested deeper than {MAX_RESULT_DEPTH} levels"
        if isinstance(item, float) and not math.isfinite(item):
            return "NUMBER_OUT_OF_RANGE", f"{item} is not a finite number"
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_RESULT_INTEGER:
            return "NUMBER_OUT_OF_RANGE", f"an integer of {len(str(abs(item)))} digits"
        if isinstance(item, str):
            if "\x00" in item:
                return "INVALID_PAYLOAD", "a string holds a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "INVALID_PAYLOAD", "a string holds a lone surrogate (not UTF-8)"
        if isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


_NUMBER_CODES = frozenset({"overflow", "max_value", "min_value", "max_string_length"})
_KO_BAD = {
    "NUMBER_OUT_OF_RANGE": "숫자 값이 허용 범위를 벗어났습니다 (무한대, NaN 또는 너무 큰 정수).",
    "INVALID_PAYLOAD": "저장할 수 없는 값이 있습니다 (NUL 문자, 잘못된 유니코드 또는 너무 깊은 중첩).",
}


def _validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> tuple[Any, Response | None]:
    """(the validated values, None), or (None, a 400 with a code and a Korean message
    naming the field) for a request the serializer refuses or that holds a value the
    database cannot store: never a 500."""
    if not isinstance(data, dict):
        message = "요청 본문은 JSON 객체로 보내 주세요."
        return None, error_response("INVALID_PAYLOAD", "send a JSON object", 400, message=message)
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        response = invalid_payload(serializer.errors, serializer)
        codes = {str(getattr(e, "code", "")) for e in _leaves(serializer.errors)}
        bad = _bad_value(data)
        if codes & _NUMBER_CODES or (bad is not None and bad[0] == "NUMBER_OUT_OF_RANGE"):
            response.data["rejection_code"] = "NUMBER_OUT_OF_RANGE"
        return None, response
    bad = _bad_value(data)
    if bad is not None:
        code, what = bad
        field = "result" if "result" in data else "progress"
        return None, field_error(field, what, _KO_BAD[code], code=code)
    return serializer.validated_data, None


def _leaves(errors: Any) -> list[Any]:
    """Every error in a serializer's (nested) errors."""
    if isinstance(errors, dict):
        return [leaf for value in errors.values() for leaf in _leaves(value)]
    if isinstance(errors, list):
        return [leaf for value in errors for leaf in _leaves(value)]
    return [errors]


def _token_of(job: AIJob, given: str, request: Request) -> str:
    """The lease token a request speaks for. The original contract sends none: then the
    worker id stands in, for the run that worker holds now."""
    if not given and job.locked_by == _worker_id(request):
        return job.lease_token
    return given


class ProgressSerializer(serializers.Serializer[Any]):
    stage = serializers.CharField(max_length=64, required=False, allow_blank=True)
    percent = serializers.FloatField(min_value=0, max_value=100, required=False)


class HeartbeatSerializer(serializers.Serializer[Any]):
    job_id = serializers.CharField(max_length=64)
    lease_token = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    progress = ProgressSerializer(required=False)


class ResultBodySerializer(serializers.Serializer[Any]):
    """The parts of a result the platform reads; any other keys are stored as they are."""

    confidence = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    review_required = serializers.BooleanField(required=False)
    error_code = serializers.CharField(max_length=64, required=False, allow_blank=True)


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "description": "what the worker made; stored as it is, with these keys read by the platform",
        "properties": {
            "confidence": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
            "review_required": {"type": "boolean"},
            "error_code": {"type": "string", "maxLength": 64},
        },
        "additionalProperties": True,
    }
)
class _ResultField(serializers.DictField):
    pass


@extend_schema_field({"type": "string", "enum": ["DONE", "FAILED"], "default": "DONE", "nullable": True})
class _StatusField(serializers.CharField):
    pass


class ResultSerializer(serializers.Serializer[Any]):
    job_id = serializers.CharField(max_length=64)
    status = _StatusField(max_length=16, required=False, allow_blank=True, allow_null=True, default="DONE")
    lease_token = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    result = _ResultField(required=False, allow_null=True, default=None)
    error = serializers.CharField(max_length=5000, required=False, allow_blank=True, allow_null=True, default="")

    def validate_status(self, value: str | None) -> str:
        status_in = (value or "DONE").upper().strip()
        if status_in not in ("DONE", "FAILED"):
            raise serializers.ValidationError("status must be DONE or FAILED", code="invalid_choice")
        return status_in

    def validate_result(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            body = ResultBodySerializer(data=value)
            if not body.is_valid():
                raise serializers.ValidationError(body.errors)
        return value


class _WorkerView(APIView):
    """A view of the worker contract: no user session or token; each method checks the
    worker's own token first (``_worker_auth``)."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    parser_classes = [SafeJSONParser]  # the contract is JSON


class InternalJobNextView(_WorkerView):
    @extend_schema(
        parameters=[OpenApiParameter("tier", str, description="comma-separated tiers to take jobs from")],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        denied = _worker_auth(request)
        if denied:
            return denied

        tiers = [t.strip() for t in request.query_params.get("tier", "").split(",") if t.strip()]
        if any(t not in TIERS for t in tiers):
            return field_error(
                "tier", "tier must be lite, basic or premium", "lite, basic, premium 중에서 보내 주세요."
            )
        worker = _worker_id(request)
        # The row lock is held through the claim: SKIP LOCKED lets several external
        # workers poll at once without blocking or taking the same row, and the claim's
        # UPDATE runs in the same transaction, so no other poller sees the row free
        # between the pick and the claim. A job waiting out its retry backoff
        # (next_run_at in the future) is not due, and one out of attempts is the
        # sweeper's to close, not to hand out.
        with transaction.atomic():
            due = AIJob.objects.select_for_update(skip_locked=True).filter(
                status__in=[JobStatus.PENDING, JobStatus.RETRYING],
                next_run_at__lte=timezone.now(),
                attempt_count__lt=F("max_attempts"),
            )
            if tiers:
                due = due.filter(tier__in=tiers)
            job_id = due.order_by("next_run_at").values_list("job_id", flat=True).first()
            if job_id is None:
                return Response({"job": None})
            job, token = claims.job_claim(job_id=job_id, worker=worker)
        if job is None:
            return Response({"job": None})
        body: dict[str, Any] = {
            "id": job.job_id,
            "type": job.job_type,
            "tier": job.tier,
            "payload": job.payload,
            "tenant_id": job.tenant_id,
            "source_domain": job.source_domain,
            "source_id": job.source_id,
            "attempt": job.attempt_count,
            "lease_token": token,
            "lease_seconds": settings.AI_LEASE_SECONDS,
        }
        return Response({"job": body})


class InternalJobHeartbeatView(_WorkerView):
    @extend_schema(request=HeartbeatSerializer, responses={200: OpenApiTypes.OBJECT, 400: dict, 404: dict, 409: dict})
    def post(self, request: Request) -> Response:
        """Renew the lease of a job this worker runs, and record its progress (stage, percent)."""
        denied = _worker_auth(request)
        if denied:
            return denied

        values, refused = _validated(HeartbeatSerializer, request.data)
        if refused is not None:
            return refused
        job = job_get(values["job_id"])
        if job is None:
            return error_response("JOB_NOT_FOUND", "job not found", status.HTTP_404_NOT_FOUND)
        token = _token_of(job, values["lease_token"], request)
        progress = None
        if values.get("progress"):
            progress = {**(job.progress or {}), **values["progress"]}
        if not token or not claims.job_heartbeat(job_id=job.job_id, token=token, progress=progress):
            return _superseded()
        return Response({"ok": True, "lease_seconds": settings.AI_LEASE_SECONDS})


class InternalJobResultView(_WorkerView):
    @extend_schema(request=ResultSerializer, responses={200: OpenApiTypes.OBJECT, 400: dict, 404: dict, 409: dict})
    def post(self, request: Request) -> Response:
        denied = _worker_auth(request)
        if denied:
            return denied

        values, refused = _validated(ResultSerializer, request.data)
        if refused is not None:
            return refused
        status_in: str = values["status"]
        result: dict[str, Any] | None = values["result"]
        # The row stays locked from the lease check to the write, so the lease cannot
        # pass to another run in between (the sweeper and a claim wait for the lock).
        with transaction.atomic():
            if not AIJob.objects.select_for_update().filter(job_id=values["job_id"]).exists():
                return error_response("JOB_NOT_FOUND", "job not found", status.HTTP_404_NOT_FOUND)
            job = job_get(values["job_id"])
            assert job is not None
            if job.is_terminal:
                if _is_repeat(job, request, status_in, result):
                    return Response({"ok": True, "detail": "duplicate_ignored"})
                return _superseded("superseded: the job was finished by another run")
            token = _token_of(job, values["lease_token"], request)
            if not token or token != job.lease_token or job.status != JobStatus.RUNNING:
                return _superseded("superseded: this run no longer holds the job's lease")
            if status_in == "DONE":
                body = result or {}
                outcome: Any = ProcessorResult(
                    data=body,
                    confidence=_confidence(body),
                    review=bool(body.get("review_required", False)),
                )
            else:
                code = str((result or {}).get("error_code") or "library_error")
                outcome = Failure("processing_failed", error_code=code, detail=str(values["error"] or "failed"))
            decision = outcome_apply(job, token, outcome)
        return Response({"ok": True, "detail": decision})


def _confidence(body: dict[str, Any]) -> float:
    """The reported confidence, checked in [0, 1] by the serializer; 1.0 when none is sent."""
    value = body.get("confidence")
    return 1.0 if value is None else float(value)


def _is_repeat(job: AIJob, request: Request, status_in: str, result: dict[str, Any] | None) -> bool:
    """Whether a result for a finished job repeats the one that was stored, from the
    worker that ran the job last (a retry of a post whose answer was lost)."""
    if job.locked_by != _worker_id(request):
        return False
    stored = AIResult.objects.filter(job=job).values_list("payload", flat=True).first()
    kept = [stored, stored.get("basic_result")] if isinstance(stored, dict) else [stored]
    if status_in == "DONE":
        return (result or {}) in kept
    code = str((result or {}).get("error_code") or "library_error")
    if stored is None:  # refused as bad input: nothing stored
        return job.status == JobStatus.REJECTED_BAD_INPUT
    return any(isinstance(k, dict) and k.get("error_code") == code for k in kept)
