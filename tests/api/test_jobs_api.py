"""The HTTP API: dispatch, status, tenant isolation, internal worker auth."""

from __future__ import annotations

import io
from typing import Any
from unittest import mock

import pytest
from django.test import override_settings

from academy.models import AIJob, JobStatus


@pytest.fixture
def no_broker() -> Any:
    with mock.patch("academy.jobs.sending.job_send", return_value="task-x") as publish:
        yield publish


def test_dispatch_requires_authentication(db: Any, client: Any) -> None:
    response = client.post("/api/v1/jobs/", {"job_type": "ping"}, content_type="application/json")
    assert response.status_code == 401


def test_dispatch_and_read_status(make_tenant: Any, api_for: Any, no_broker: Any) -> None:
    _, token = make_tenant()
    api = api_for(token)
    created = api.post("/api/v1/jobs/", {"job_type": "ping", "payload": {"echo": "hi"}, "tier": "lite"}, format="json")
    assert created.status_code == 202, created.json()
    job_id = created.json()["job_id"]
    body = api.get(f"/api/v1/jobs/{job_id}/").json()
    assert body["status"] == "PENDING"
    assert body["tier"] == "lite"
    assert body["lineage"] == [{"job_id": job_id, "tier": "lite", "status": "PENDING", "attempt_count": 0}]
    assert {"job_id", "job_type", "status", "result", "error_message", "progress"} <= set(body)


def test_another_tenants_job_is_a_404(make_tenant: Any, api_for: Any, no_broker: Any) -> None:
    _, token_a = make_tenant()
    _, token_b = make_tenant()
    job_id = api_for(token_a).post("/api/v1/jobs/", {"job_type": "ping"}, format="json").json()["job_id"]
    assert api_for(token_b).get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert api_for(token_a).get(f"/api/v1/jobs/{job_id}/").status_code == 200
    assert api_for(token_b).get("/api/v1/jobs/").json()["results"] == []


@pytest.mark.parametrize(
    ("body", "content_type", "code", "status"),
    [
        ('{"job_type": "ping", "payload": [1, 2]}', "application/json", "INVALID_PAYLOAD", 400),
        ('{"job_type": "ping", ', "application/json", "INVALID_PAYLOAD", 400),
        ('{"job_type": "nope"}', "application/json", "UNKNOWN_JOB_TYPE", 400),
        ("job_type=ping", "text/plain", "INVALID_FORMAT", 415),
    ],
)
def test_bad_requests_get_a_code(
    make_tenant: Any, api_for: Any, no_broker: Any, body: str, content_type: str, code: str, status: int
) -> None:
    _, token = make_tenant()
    response = api_for(token).generic("POST", "/api/v1/jobs/", body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["rejection_code"] == code
    assert not AIJob.objects.exists()


def test_upload_a_file_with_the_job(make_tenant: Any, api_for: Any, no_broker: Any) -> None:
    tenant, token = make_tenant()
    upload = io.BytesIO("이름,연락처\n김철수,010-1234-5678\n".encode())
    upload.name = "roster.csv"
    response = api_for(token).post(
        "/api/v1/jobs/", {"job_type": "excel_parsing", "payload": "{}", "file": upload}, format="multipart"
    )
    assert response.status_code == 202, response.json()
    job = AIJob.objects.get(job_id=response.json()["job_id"])
    assert job.payload["file_path"].startswith(f"tenants/{tenant.slug}/uploads/")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_oversized_request_body_is_refused_at_the_web_layer(make_tenant: Any, api_for: Any, no_broker: Any) -> None:
    _, token = make_tenant()
    response = api_for(token).post(
        "/api/v1/jobs/", {"job_type": "ping", "payload": {"echo": "x" * 2000}}, format="json"
    )
    assert response.status_code == 413
    assert response.json()["rejection_code"] == "PAYLOAD_TOO_LARGE"


@override_settings(INTERNAL_WORKER_TOKEN="")
def test_internal_api_is_closed_without_a_configured_token(db: Any, client: Any) -> None:
    assert client.get("/api/v1/internal/ai/job/next/").status_code == 503
    assert client.post("/api/v1/internal/ai/job/result/", {}).status_code == 503


@override_settings(INTERNAL_WORKER_TOKEN="s3cret")
def test_internal_api_rejects_a_wrong_token(db: Any, client: Any) -> None:
    assert client.get("/api/v1/internal/ai/job/next/", HTTP_X_WORKER_TOKEN="nope").status_code == 401
    assert client.get("/api/v1/internal/ai/job/next/").status_code == 401


@override_settings(INTERNAL_WORKER_TOKEN="s3cret")
def test_external_worker_claims_and_reports_once(make_tenant: Any, client: Any, no_broker: Any) -> None:
    from academy.jobs.dispatch import job_dispatch

    tenant, _ = make_tenant()
    job_id = job_dispatch(job_type="ping", payload={}, tenant=tenant, tier="basic")["job_id"]
    headers = {"HTTP_X_WORKER_TOKEN": "s3cret", "HTTP_X_WORKER_ID": "gpu-box-1"}
    claimed = client.get("/api/v1/internal/ai/job/next/", **headers).json()["job"]
    assert claimed["id"] == job_id
    assert client.get("/api/v1/internal/ai/job/next/", **headers).json() == {"job": None}

    report = {"job_id": job_id, "status": "DONE", "result": {"pong": True, "confidence": 0.95}}
    first = client.post("/api/v1/internal/ai/job/result/", report, content_type="application/json", **headers)
    second = client.post("/api/v1/internal/ai/job/result/", report, content_type="application/json", **headers)
    assert first.json() == {"ok": True, "detail": "DONE"}
    assert second.json() == {"ok": True, "detail": "duplicate_ignored"}
    job = AIJob.objects.get(job_id=job_id)
    assert job.status == JobStatus.DONE
    assert job.locked_by == "external:gpu-box-1"


@override_settings(INTERNAL_WORKER_TOKEN="s3cret")
def test_external_failure_on_basic_is_done_with_review(make_tenant: Any, client: Any, no_broker: Any) -> None:
    from academy.jobs.dispatch import job_dispatch

    tenant, _ = make_tenant()
    job_id = job_dispatch(job_type="ping", payload={}, tenant=tenant, tier="basic")["job_id"]
    headers = {"HTTP_X_WORKER_TOKEN": "s3cret", "HTTP_X_WORKER_ID": "w"}
    client.get("/api/v1/internal/ai/job/next/", **headers)
    report = {"job_id": job_id, "status": "FAILED", "error": "model crashed"}
    assert (
        client.post("/api/v1/internal/ai/job/result/", report, content_type="application/json", **headers).json()[
            "detail"
        ]
        == "DONE"
    )
    job = AIJob.objects.get(job_id=job_id)
    assert (job.status, job.flags["from_exception"]) == (JobStatus.DONE, True)


def test_openapi_schema_is_served(db: Any, client: Any) -> None:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/jobs/" in response.content
