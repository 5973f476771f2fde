"""The lifecycle in eager mode: the task runs inline when dispatch publishes."""

from __future__ import annotations

from typing import Any

import pytest

from academy.models import AIJob, AIResult, JobStatus
from academy.services.jobs import job_dispatch
from academy.storage import upload_save

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_corrupt_spreadsheet_found_by_the_worker_is_rejected(eager: None, make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    path = upload_save(tenant=tenant, name="roster.xlsx", data=b"PK\x03\x04 definitely not a zip")
    outcome = job_dispatch(job_type="excel_parsing", payload={"file_path": path}, tenant=tenant)
    job = AIJob.objects.get(job_id=outcome["job_id"])
    assert job.status == JobStatus.REJECTED_BAD_INPUT
    assert job.rejection_code == "FILE_UNREADABLE"
    assert not AIResult.objects.filter(job=job).exists()


def test_a_corrupt_spreadsheet_from_a_paying_tenant_falls_back_to_premium(eager: None, make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True, fallback=True)
    path = upload_save(tenant=tenant, name="roster.xlsx", data=b"PK\x03\x04 definitely not a zip")
    outcome = job_dispatch(job_type="excel_parsing", payload={"file_path": path}, tenant=tenant)
    basic = AIJob.objects.get(job_id=outcome["job_id"])
    premium = AIJob.objects.get(fallback_from=basic)
    assert basic.status == JobStatus.FALLBACK_TO_GPU
    assert basic.flags["fallback_reason"] == "validation_failed:FILE_UNREADABLE"
    # Premium has no fallback of its own: bad input there is a plain rejection.
    assert (premium.tier, premium.status) == ("premium", JobStatus.REJECTED_BAD_INPUT)


def test_the_daily_fallback_cap_turns_fallback_into_review(eager: None, make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True, fallback=True, daily_fallback_cap=0)
    outcome = job_dispatch(job_type="probe_record", payload={"confidence": 0.1}, tenant=tenant, tier="basic")
    job = AIJob.objects.get(job_id=outcome["job_id"])
    assert (job.status, job.needs_review) == (JobStatus.DONE, True)
    assert job.flags["fallback_skipped"] == "daily_cap_reached"
