"""The lifecycle in eager mode: the task runs inline when dispatch publishes."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from academy.jobs.dispatch import job_dispatch
from academy.models import AIJob, AIResult, JobStatus
from academy.storage import upload_save

pytestmark = pytest.mark.django_db(transaction=True)


def _workbook_with_broken_xml() -> bytes:
    """A real OOXML zip, so dispatch's byte check passes it; only the worker that
    parses the workbook finds that its XML is broken."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "not xml at all <")
    return buf.getvalue()


def test_a_corrupt_spreadsheet_found_by_the_worker_is_rejected(eager: None, make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    path = upload_save(tenant=tenant, name="roster.xlsx", data=_workbook_with_broken_xml())
    outcome = job_dispatch(job_type="excel_parsing", payload={"file_path": path}, tenant=tenant)
    job = AIJob.objects.get(job_id=outcome["job_id"])
    assert job.status == JobStatus.REJECTED_BAD_INPUT
    assert job.rejection_code == "FILE_UNREADABLE"
    assert not AIResult.objects.filter(job=job).exists()


def test_a_corrupt_spreadsheet_from_a_paying_tenant_falls_back_to_premium(eager: None, make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True, fallback=True)
    path = upload_save(tenant=tenant, name="roster.xlsx", data=_workbook_with_broken_xml())
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


def test_a_weak_basic_reading_decides_its_fallback_on_the_academy_config_read_with_the_job(
    eager: None, make_tenant: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tenant, _ = make_tenant(premium=True, fallback=True)
    with CaptureQueriesContext(connection) as queries:
        outcome = job_dispatch(job_type="probe_record", payload={"confidence": 0.1}, tenant=tenant, tier="basic")
    assert AIJob.objects.get(job_id=outcome["job_id"]).status == JobStatus.FALLBACK_TO_GPU
    config_reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    config_reads = [sql for sql in config_reads if sql.split(" FROM ")[1].startswith('"academy_tenantconfig"')]
    # Once, to dispatch: the runs decide on the config claimed with their jobs.
    assert len(config_reads) == 1, config_reads
