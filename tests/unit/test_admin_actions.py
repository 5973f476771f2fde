"""Admin re-runs: retry, force rerun with a reason, send to premium; and the job/batch pages.

Each action makes a new job row through the admin_actions service and leaves the
original alone. These tests use a plain transaction per test, so nothing is published.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from academy import storage
from academy.models import (
    AIJob,
    AIResult,
    JobArtifact,
    JobStatus,
    OmrBatch,
    Submission,
    SubmissionAnswer,
)
from academy.services import admin_actions
from academy.services.exams import exam_create

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/academy/aijob/"


def finished(tenant: Any, *, status: str = JobStatus.FAILED, tier: str = "basic", **fields: Any) -> AIJob:
    return AIJob.objects.create(
        job_type="ping",
        payload={"echo": "hi"},
        tenant=tenant,
        tier=tier,
        status=status,
        source_domain="probe",
        source_id="42",
        finished_at=timezone.now(),
        **fields,
    )


def reruns_of(job: AIJob) -> list[AIJob]:
    return list(AIJob.objects.filter(flags__rerun_of=job.job_id).order_by("pk"))


@pytest.fixture
def tenant(make_tenant: Any) -> Any:
    return make_tenant()[0]


@pytest.fixture
def premium_tenant(make_tenant: Any) -> Any:
    return make_tenant(premium=True)[0]


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("ops", password="x"))
    return client


# --- the service ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.REJECTED_BAD_INPUT])
def test_retry_dispatches_a_new_job_with_the_same_payload_tier_and_source(tenant: Any, status: str) -> None:
    job = finished(tenant, status=status, tier="lite")
    outcome = admin_actions.job_admin_retry(job=job, actor="ops")
    assert outcome.ok, outcome
    rerun = AIJob.objects.get(job_id=outcome.job_id)
    assert (rerun.job_type, rerun.payload, rerun.tier, rerun.tenant_id) == ("ping", {"echo": "hi"}, "lite", tenant.pk)
    assert (rerun.source_domain, rerun.source_id, rerun.status) == ("probe", "42", JobStatus.PENDING)
    assert rerun.force_rerun is True
    assert rerun.rerun_reason == "admin retry by ops"
    assert (rerun.flags["rerun_of"], rerun.flags["rerun_by"]) == (job.job_id, "ops")
    job.refresh_from_db()
    assert job.status == status  # the original row is untouched


@pytest.mark.parametrize("status", [JobStatus.DONE, JobStatus.REVIEW_REQUIRED, JobStatus.RUNNING])
def test_retry_refuses_jobs_that_did_not_fail(tenant: Any, status: str) -> None:
    job = finished(tenant, status=status)
    outcome = admin_actions.job_admin_retry(job=job, actor="ops")
    assert not outcome.ok
    assert status in outcome.error
    assert AIJob.objects.count() == 1


def test_force_rerun_needs_a_reason_and_a_finished_job(tenant: Any) -> None:
    done = finished(tenant, status=JobStatus.DONE)
    running = finished(tenant, status=JobStatus.RUNNING)
    assert not admin_actions.job_rerun(job=done, reason="  ", actor="ops").ok
    assert not admin_actions.job_rerun(job=running, reason="stuck", actor="ops").ok
    outcome = admin_actions.job_rerun(job=done, reason="model upgraded", actor="ops")
    assert outcome.ok
    assert AIJob.objects.get(job_id=outcome.job_id).rerun_reason == "model upgraded"
    assert AIJob.objects.count() == 3


def test_send_to_premium_runs_on_premium_for_a_subscriber(premium_tenant: Any) -> None:
    job = finished(premium_tenant, status=JobStatus.DONE, tier="basic")
    outcome = admin_actions.job_send_to_premium(job=job, actor="ops")
    assert (outcome.ok, outcome.tier, outcome.warning) == (True, "premium", "")
    rerun = AIJob.objects.get(job_id=outcome.job_id)
    assert (rerun.tier, rerun.force_rerun, rerun.rerun_reason) == ("premium", True, "sent to premium by ops")
    assert rerun.flags["rerun_of"] == job.job_id


def test_send_to_premium_without_a_subscription_runs_on_basic_and_says_so(tenant: Any) -> None:
    outcome = admin_actions.job_send_to_premium(job=finished(tenant), actor="ops")
    assert (outcome.ok, outcome.tier) == (True, "basic")
    assert "premium" in outcome.warning


def test_a_rerun_refused_by_prevalidation_makes_no_row(tenant: Any) -> None:
    job = finished(tenant)
    AIJob.objects.filter(pk=job.pk).update(payload={"echo": 12})  # no longer valid
    job.refresh_from_db()
    outcome = admin_actions.job_admin_retry(job=job, actor="ops")
    assert not outcome.ok
    assert AIJob.objects.count() == 1


# --- through the admin ---------------------------------------------------------------------


def test_retry_action_posted_from_the_changelist_creates_the_rerun(tenant: Any, staff: Client) -> None:
    failed, done = finished(tenant), finished(tenant, status=JobStatus.DONE)
    response = staff.post(CHANGELIST, {"action": "retry_jobs", "_selected_action": [failed.pk, done.pk]}, follow=True)
    assert response.status_code == 200
    [rerun] = reruns_of(failed)
    assert rerun.rerun_reason == "admin retry by ops"
    assert reruns_of(done) == []
    text = response.content.decode()
    assert f"new job {rerun.job_id}" in text
    assert "not re-run" in text


def test_force_rerun_action_asks_for_a_reason_first(tenant: Any, staff: Client) -> None:
    job = finished(tenant, status=JobStatus.DONE)
    form = staff.post(CHANGELIST, {"action": "force_rerun_jobs", "_selected_action": [job.pk]})
    assert form.status_code == 200
    assert 'name="reason"' in form.content.decode()
    assert reruns_of(job) == []

    blank = {"action": "force_rerun_jobs", "_selected_action": [job.pk], "apply": "1", "reason": ""}
    assert staff.post(CHANGELIST, blank).status_code == 200  # the form again
    assert reruns_of(job) == []

    response = staff.post(CHANGELIST, {**blank, "reason": "template fixed"})
    assert response.status_code == 302
    [rerun] = reruns_of(job)
    assert rerun.rerun_reason == "template fixed (by ops)"
    assert rerun.force_rerun


def test_send_to_premium_action_creates_a_premium_job(premium_tenant: Any, staff: Client) -> None:
    job = finished(premium_tenant, status=JobStatus.DONE)
    staff.post(CHANGELIST, {"action": "send_to_premium", "_selected_action": [job.pk]})
    [rerun] = reruns_of(job)
    assert rerun.tier == "premium"


def test_actions_need_a_staff_login(tenant: Any) -> None:
    job = finished(tenant)
    response = Client().post(CHANGELIST, {"action": "retry_jobs", "_selected_action": [job.pk]})
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert reruns_of(job) == []


def test_job_page_shows_result_lineage_and_the_overlay_served_only_to_staff(tenant: Any, staff: Client) -> None:
    basic = finished(tenant, status=JobStatus.FALLBACK_TO_GPU)
    premium = finished(tenant, status=JobStatus.DONE, tier="premium", fallback_from=basic, fallback_from_tier="basic")
    AIResult.objects.create(job=premium, payload={"answers": {"1": ["A"]}, "점수": 3})
    path = storage.artifact_save(tenant=tenant, job_id=premium.job_id, name="overlay.png", data=b"\x89PNG-overlay")
    JobArtifact.objects.create(job=premium, name="overlay.png", path=path, content_type="image/png", size=12)

    page = staff.get(reverse("admin:academy_aijob_change", args=[premium.pk])).content.decode()
    overlay_url = reverse("admin:academy_aijob_artifact", args=[premium.pk, "overlay.png"])
    assert f'<img src="{overlay_url}"' in page
    assert "&quot;점수&quot;: 3" in page  # pretty-printed, not escaped to \uXXXX
    assert reverse("admin:academy_aijob_change", args=[basic.pk]) in page  # lineage link to the parent

    listing = staff.get(CHANGELIST).content.decode()
    assert f'← <a href="{reverse("admin:academy_aijob_change", args=[basic.pk])}"' in listing

    image = staff.get(overlay_url)
    assert (image.status_code, image["Content-Type"]) == (200, "image/png")
    assert b"".join(image.streaming_content) == b"\x89PNG-overlay"  # type: ignore[attr-defined]
    assert Client().get(overlay_url).status_code == 302  # to the admin login, not the file
    missing = reverse("admin:academy_aijob_artifact", args=[premium.pk, "nope.png"])
    assert staff.get(missing).status_code == 404


def test_batch_and_submission_pages_are_read_only_with_progress_and_answers(tenant: Any, staff: Client) -> None:
    exam = exam_create(tenant=tenant, title="mock", template=None)
    batch = OmrBatch.objects.create(tenant=tenant, exam=exam, total_sheets=2)
    graded = Submission.objects.create(tenant=tenant, exam=exam, batch=batch, sheet_name="kim.jpg", status="GRADED")
    Submission.objects.create(tenant=tenant, exam=exam, batch=batch, sheet_name="lee.jpg", status="PROCESSING")
    SubmissionAnswer.objects.create(submission=graded, question="7", detected=["C"], confidence=0.42, flagged=True)

    listing = staff.get("/admin/academy/omrbatch/").content.decode()
    assert "1/2 (50%)" in listing
    page = staff.get(f"/admin/academy/omrbatch/{batch.pk}/change/").content.decode()
    assert "GRADED: 1, PROCESSING: 1" in page
    assert "kim.jpg" in page
    assert 'name="_save"' not in page  # view only

    submission_page = staff.get(f"/admin/academy/submission/{graded.pk}/change/").content.decode()
    assert "0.42" in submission_page
    assert 'name="_save"' not in submission_page
    assert staff.get("/admin/academy/omrbatch/add/").status_code == 403


def test_tenant_config_and_runtime_flags_stay_editable(tenant: Any, staff: Client) -> None:
    assert 'name="_save"' in staff.get(f"/admin/academy/tenantconfig/{tenant.config.pk}/change/").content.decode()
    assert staff.get("/admin/academy/runtimeflag/add/").status_code == 200
