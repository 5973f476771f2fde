"""Dispatch: pre-validation rejects before a row exists; publishing waits for the commit."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from academy.jobs.dispatch import job_dispatch
from academy.models import AIJob, JobStatus


@pytest.fixture
def tenant(make_tenant: Any) -> Any:
    return make_tenant()[0]


def stored(tenant: Any, name: str, data: bytes) -> str:
    return str(default_storage.save(f"tenants/{tenant.slug}/uploads/{name}", ContentFile(data)))


@pytest.mark.parametrize(
    ("job_type", "payload", "code"),
    [
        ("ping", ["not", "an", "object"], "INVALID_PAYLOAD"),
        ("ping", "text", "INVALID_PAYLOAD"),
        ("teleport", {}, "UNKNOWN_JOB_TYPE"),
        (None, {}, "UNKNOWN_JOB_TYPE"),
        ("handwriting_analysis", {"image_path": "x.png"}, "BACKEND_NOT_CONFIGURED"),
        ("ping", {"echo": "x" * 300_000}, "PAYLOAD_TOO_LARGE"),
        ("ping", {"echo": 12}, "INVALID_PAYLOAD"),
        ("excel_parsing", {}, "FILE_REQUIRED"),
        ("excel_parsing", {"file_path": "tenants/academy-1/uploads/missing.xlsx"}, "FILE_NOT_FOUND"),
        ("excel_parsing", {"file_path": "../../etc/passwd"}, "INVALID_PATH"),
        ("excel_parsing", {"file_path": "/etc/passwd"}, "INVALID_PATH"),
        ("excel_parsing", {"file_path": "tenants/other/uploads/roster.xlsx"}, "INVALID_PATH"),
        ("excel_parsing", {"file_path": "x.xlsx", "file_size_mb": 51}, "FILE_TOO_LARGE"),
        ("excel_parsing", {"file_path": "x.xlsx", "content_type": "application/x-msdownload"}, "INVALID_FORMAT"),
    ],
)
def test_bad_input_is_rejected_with_a_code_and_no_job_row(tenant: Any, job_type: Any, payload: Any, code: str) -> None:
    outcome = job_dispatch(job_type=job_type, payload=payload, tenant=tenant)
    assert outcome["ok"] is False
    assert outcome["rejection_code"] == code
    assert outcome["job_id"] is None
    assert outcome["error"]  # the Korean message
    assert not AIJob.objects.exists()


def test_seed_rejection_messages_are_kept(tenant: Any) -> None:
    outcome = job_dispatch(
        job_type="excel_parsing", payload={"file_path": "x.xlsx", "file_size_bytes": 60 * 1024 * 1024}, tenant=tenant
    )
    assert outcome["error"] == "파일 크기가 제한을 초과했습니다."


def test_wrong_extension_and_empty_files_are_rejected(tenant: Any) -> None:
    exe = stored(tenant, "roster.exe", b"MZ...")
    empty = stored(tenant, "roster.xlsx", b"")
    assert job_dispatch(job_type="excel_parsing", payload={"file_path": exe}, tenant=tenant)["rejection_code"] == (
        "INVALID_FORMAT"
    )
    assert job_dispatch(job_type="excel_parsing", payload={"file_path": empty}, tenant=tenant)["rejection_code"] == (
        "EMPTY_FILE"
    )


def test_oversized_real_file_is_rejected(tenant: Any, settings: Any) -> None:
    path = stored(tenant, "big.csv", b"a" * (51 * 1024 * 1024))
    try:
        outcome = job_dispatch(job_type="excel_parsing", payload={"file_path": path}, tenant=tenant)
        assert outcome["rejection_code"] == "FILE_TOO_LARGE"
    finally:
        default_storage.delete(path)


def test_publish_waits_for_the_outer_transaction_to_commit(
    tenant: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch("academy.jobs.sending.job_send", return_value="task-1") as publish:
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            outcome = job_dispatch(job_type="ping", payload={}, tenant=tenant, tier="lite")
            assert outcome["status"] == JobStatus.PENDING
            publish.assert_not_called()
        publish.assert_called_once_with(job_id=outcome["job_id"], tier="lite", countdown=None)
    assert AIJob.objects.get(job_id=outcome["job_id"]).celery_task_id == "task-1"


@pytest.mark.django_db(transaction=True)  # autocommit: the publish runs inside job_dispatch
def test_publish_failure_marks_the_job_failed_and_is_reported(tenant: Any) -> None:
    with mock.patch("academy.jobs.sending.job_send", side_effect=ConnectionError("broker down")):
        outcome = job_dispatch(job_type="ping", payload={}, tenant=tenant, tier="basic")
    assert outcome["ok"] is False
    job = AIJob.objects.get(job_id=outcome["job_id"])
    assert job.status == JobStatus.FAILED
    assert "broker down" in job.error_message


def test_dispatch_never_raises_on_an_unexpected_error(tenant: Any) -> None:
    with mock.patch("academy.selectors.tenant_policy", side_effect=RuntimeError("boom")):
        outcome = job_dispatch(job_type="ping", payload={}, tenant=tenant)
    assert outcome == {"ok": False, "job_id": None, "type": "ping", "rejection_code": None, "error": "boom"}


def test_omr_photo_is_not_allowed_on_basic(tenant: Any) -> None:
    from academy.jobs.prevalidation import _quality_gate
    from academy.rejections import Rejection

    with pytest.raises(Rejection) as caught:
        _quality_gate(job_type="omr_grading", payload={"mode": "photo"}, max_mb=50)
    assert caught.value.code == "OMR_PHOTO_NOT_ALLOWED"
    assert caught.value.message.startswith("Basic 요금제에서는")


def test_a_job_type_without_a_processor_in_this_build_is_not_available(
    tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from academy import policies

    monkeypatch.setitem(policies.JOB_TYPES, "hologram_scan", policies.JobTypeSpec("basic", frozenset({"basic"})))
    outcome = job_dispatch(job_type="hologram_scan", payload={}, tenant=tenant)
    assert (outcome["ok"], outcome["rejection_code"]) == (False, "JOB_TYPE_NOT_AVAILABLE")
    assert not AIJob.objects.exists()
