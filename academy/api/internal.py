"""The internal worker API, for workers outside the cluster (the original app's contract).

``GET  /api/v1/internal/ai/job/next/``   claims the oldest due job: ``{"job": {...} | null}``
``POST /api/v1/internal/ai/job/result/`` reports ``{job_id, status: DONE|FAILED, result, error}``

Both go through the same claim and the same lifecycle rules as the Celery pools, so a
job handed out here is skipped by a Celery worker that later gets its message, and a
result posted twice is ignored.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from academy.models import AIJob, JobStatus


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


class InternalJobNextView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        denied = _worker_auth(request)
        if denied:
            return denied
        from academy.services.jobs import job_claim

        tiers = [t for t in request.query_params.get("tier", "").split(",") if t]
        worker = _worker_id(request)
        # SKIP LOCKED lets several external workers poll at once without blocking.
        for _ in range(5):
            with transaction.atomic():
                due = AIJob.objects.select_for_update(skip_locked=True).filter(
                    status__in=[JobStatus.PENDING, JobStatus.RETRYING]
                )
                if tiers:
                    due = due.filter(tier__in=tiers)
                job_id = due.order_by("next_run_at").values_list("job_id", flat=True).first()
            if job_id is None:
                return Response({"job": None})
            job, token = job_claim(job_id=job_id, worker=worker)
            if job is not None:
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
                }
                return Response({"job": body})
        return Response({"job": None})


class InternalJobResultView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        denied = _worker_auth(request)
        if denied:
            return denied
        from academy.selectors import job_get
        from ai_tasks.lifecycle import Failed, outcome_apply
        from workers.base import ProcessorResult

        data = request.data if isinstance(request.data, dict) else {}
        job_id = data.get("job_id")
        if not job_id:
            return Response({"detail": "job_id required"}, status=status.HTTP_400_BAD_REQUEST)
        status_in = str(data.get("status") or "DONE").upper().strip()
        if status_in not in ("DONE", "FAILED"):
            return Response({"detail": "status must be DONE or FAILED"}, status=status.HTTP_400_BAD_REQUEST)
        result = data.get("result")
        if result is not None and not isinstance(result, dict):
            return Response({"detail": "result must be object or null"}, status=status.HTTP_400_BAD_REQUEST)
        job = job_get(str(job_id))
        if job is None:
            return Response({"detail": "job not found"}, status=status.HTTP_404_NOT_FOUND)
        if job.is_terminal:
            return Response({"ok": True, "detail": "duplicate_ignored"})
        token = str(data.get("lease_token") or "")
        if not token and job.locked_by == _worker_id(request):
            token = job.lease_token  # the original contract sends no token: the worker id stands in
        if not token or token != job.lease_token:
            return Response({"ok": False, "detail": "not_lease_holder"}, status=status.HTTP_409_CONFLICT)
        if status_in == "DONE":
            body = result or {}
            confidence = body.get("confidence", 1.0)
            outcome: Any = ProcessorResult(
                data=body,
                confidence=float(confidence) if isinstance(confidence, (int, float)) else 1.0,
                review=bool(body.get("review_required", False)),
            )
        else:
            code = str((result or {}).get("error_code") or "library_error")
            outcome = Failed("processing_failed", code, str(data.get("error") or "failed"))
        decision = outcome_apply(job, token, outcome)
        return Response({"ok": True, "detail": decision})
