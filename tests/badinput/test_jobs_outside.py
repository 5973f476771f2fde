"""Jobs aimed at graded sheets, callbacks that cannot succeed, reused idempotency keys, a
premium fallback that fails, and the races in the fallback cap and a message's time
limit: what an API user (or a hostile academy) gets, through the HTTP API where one
exists. Jobs run eagerly (inline, on commit); tests/integration has the same callback
through a real domain worker.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from functools import cache
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connection
from django.utils import timezone

from academy import selectors
from academy.jobs import sending
from academy.jobs.dispatch import job_dispatch
from academy.jobs.finish import FinishBatch
from academy.jobs.outcome import exhausted_finish
from academy.jobs.sweep import sweep_once
from academy.models import AIJob, AIResult, JobStatus, Submission, SubmissionStatus
from academy.services import callbacks
from academy.services.callbacks import job_callback_apply
from ai_tasks import lifecycle
from workers.omr.render import filled_sheet_jpeg
from workers.omr.template import default_template

pytestmark = pytest.mark.django_db(transaction=True)

SHEET = default_template()
KEY = {q.label: q.values[i % len(q.values)] for i, q in enumerate(SHEET.questions)}
WRONG = {q: ("5" if a != "5" else "4") for q, a in KEY.items()}


@cache
def sheet_jpeg(student_id: str, answers: tuple[tuple[str, str], ...] = ()) -> bytes:
    return filled_sheet_jpeg(SHEET, student_id=student_id, answers=dict(answers) or KEY)


class Broker:
    """Records what would have been sent instead of sending it: (task name, args)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    def send(self, name: str, args: tuple[Any, ...], **options: Any) -> None:
        self.sent.append((name, args))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    recorder = Broker()
    monkeypatch.setattr(sending, "_send", recorder.send)
    return recorder


@pytest.fixture
def academy(make_tenant: Any, api_for: Any) -> tuple[Any, Any]:
    tenant, token = make_tenant()
    return tenant, api_for(token)


@pytest.fixture
def graded(eager: None, academy: tuple[Any, Any]) -> Submission:
    """A batch of one sheet, read and graded through the API: full marks, student 20260001."""
    _, api = academy
    key = {"questions": {q: {"correct": [a], "points": 1} for q, a in KEY.items()}}
    exam = api.post("/api/v1/exams/", {"title": "중간고사", "answer_key": key}, format="json").json()
    files = [SimpleUploadedFile("kim.jpg", sheet_jpeg("20260001"))]
    response = api.post(f"/api/v1/exams/{exam['exam_id']}/omr-batches/", {"files": files}, format="multipart")
    assert response.status_code == 201, response.json()
    submission = Submission.objects.select_related("grade", "batch").get(batch__batch_id=response.json()["batch_id"])
    assert (submission.status, submission.student_id) == (SubmissionStatus.GRADED, "20260001")
    assert submission.batch is not None
    assert submission.batch.graded_at is not None
    return submission


def sheet_state(submission: Submission) -> tuple[Any, ...]:
    fresh = Submission.objects.select_related("grade", "batch").get(pk=submission.pk)
    answers = sorted(fresh.answers.values_list("question", "detected"))
    assert fresh.batch is not None
    return (fresh.status, fresh.student_id, answers, fresh.grade.score, fresh.grade.times_graded, fresh.job_id,
            fresh.batch.graded_at)  # fmt: skip


def forged(submission: Submission, job_type: str, result: Any, **fields: Any) -> AIJob:
    """A finished job aimed at the sheet that never went through dispatch (made before
    the sheet settled, or written by hand): only the callback's own check stands."""
    job = AIJob.objects.create(
        job_type=job_type,
        tenant=submission.tenant,
        tier="basic",
        status=JobStatus.DONE,
        source_domain="submission",
        source_id=str(submission.pk),
        finished_at=timezone.now(),
        **fields,
    )
    AIResult.objects.create(job=job, payload=result)
    return job


# --- jobs aimed at a submission -----------------------------------------------------------


def another_scan(tenant: Any) -> str:
    """Another student's scan of the same exam, stored in the academy's files."""
    from academy.storage import upload_save

    return upload_save(tenant=tenant, name="x.jpg", data=sheet_jpeg("20269999", tuple(WRONG.items())))


@pytest.mark.parametrize(
    ("job_type", "code"),
    [("ping", "INVALID_SOURCE"), ("ocr", "INVALID_SOURCE"), ("omr_grading", "SUBMISSION_NOT_WAITING")],
)
def test_a_job_aimed_at_a_graded_sheet_is_refused_at_dispatch_and_the_sheet_stays_graded(
    graded: Submission, academy: tuple[Any, Any], job_type: str, code: str
) -> None:
    tenant, api = academy
    path = another_scan(tenant)
    payloads = {
        "ping": {"echo": "hi"},
        "ocr": {"image_path": path},
        "omr_grading": {"image_path": path, "template": SHEET.to_dict()},
    }
    payload = payloads[job_type]
    before = sheet_state(graded)
    jobs_before = AIJob.objects.count()

    response = api.post(
        "/api/v1/jobs/",
        {"job_type": job_type, "payload": payload, "source_domain": "submission", "source_id": str(graded.pk)},
        format="json",
    )

    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["rejection_code"] == code
    assert body["error"]  # the Korean message
    assert AIJob.objects.count() == jobs_before  # no job row
    assert sheet_state(graded) == before
    assert graded.batch is not None
    batch = api.get(f"/api/v1/exams/{graded.exam_id}/omr-batches/{graded.batch.batch_id}/").json()
    assert batch["graded"] is True
    assert [(s["status"], s["student_id"]) for s in batch["sheets"]] == [("GRADED", "20260001")]


@pytest.mark.parametrize("source_id", ["abc", "-1", "\uff11\uff12", "9" * 40, "999999"])
def test_a_source_id_that_names_no_submission_of_the_academy_is_refused_at_dispatch(
    eager: None, academy: tuple[Any, Any], source_id: str
) -> None:
    tenant, api = academy
    payload = {"image_path": another_scan(tenant), "template": SHEET.to_dict()}
    request = {"job_type": "omr_grading", "payload": payload, "source_domain": "submission", "source_id": source_id}
    response = api.post("/api/v1/jobs/", request, format="json")
    assert (response.status_code, response.json()["rejection_code"]) == (400, "INVALID_SOURCE")
    assert not AIJob.objects.exists()


def test_another_academys_sheet_reads_as_no_sheet_at_dispatch(
    graded: Submission, make_tenant: Any, api_for: Any
) -> None:
    other, token = make_tenant()
    before = sheet_state(graded)
    payload = {"image_path": another_scan(other), "template": SHEET.to_dict()}
    request = {
        "job_type": "omr_grading",
        "payload": payload,
        "source_domain": "submission",
        "source_id": str(graded.pk),
    }
    response = api_for(token).post("/api/v1/jobs/", request, format="json")
    assert (response.status_code, response.json()["rejection_code"]) == (400, "INVALID_SOURCE")
    assert sheet_state(graded) == before


@pytest.mark.parametrize("job_type", ["ping", "ocr", "omr_grading"])
def test_a_job_the_sheet_does_not_wait_for_is_refused_when_it_would_apply_and_recorded(
    graded: Submission, job_type: str
) -> None:
    before = sheet_state(graded)
    reading = {"student_id": "20269999", "answers": WRONG, "review": []}
    job = forged(graded, job_type, reading)

    assert job_callback_apply(job_id=job.job_id) is False
    assert job_callback_apply(job_id=job.job_id) is False  # a redelivery: still nothing, no second try

    assert sheet_state(graded) == before
    job.refresh_from_db()
    assert job.callback_done_at is None
    assert job.callback_failed_at is not None
    assert job.callback_attempts == 1
    assert job.callback_error.startswith("CallbackRefused")


def test_an_omr_job_of_another_scan_cannot_overwrite_a_sheet_in_a_message_of_callbacks(graded: Submission) -> None:
    before = sheet_state(graded)
    job = forged(graded, "omr_grading", {"student_id": "20269999", "answers": WRONG, "review": []})
    assert callbacks.jobs_callback_apply(job_ids=[job.job_id]) == []
    assert sheet_state(graded) == before
    job.refresh_from_db()
    assert job.callback_failed_at is not None


def test_the_job_made_for_a_sheet_still_applies_and_grades_it(eager: None, academy: tuple[Any, Any]) -> None:
    # The rule refuses strangers, not the sheet's own job (here dispatched at a sheet
    # that waits, as a caller of job_dispatch does).
    from academy.models import AnswerKey, Exam, Grade

    tenant, _ = academy
    exam = Exam.objects.create(tenant=tenant, title="t", sheet_template=SHEET.to_dict())
    AnswerKey.objects.create(exam=exam, questions={q: {"correct": [a]} for q, a in KEY.items()})
    from academy.storage import upload_save

    path = upload_save(tenant=tenant, name="s.jpg", data=sheet_jpeg("20260005"))
    submission = Submission.objects.create(tenant=tenant, exam=exam, source_file=path)
    outcome = job_dispatch(
        job_type="omr_grading",
        payload={"image_path": path, "template": SHEET.to_dict()},
        tenant=tenant,
        source_domain="submission",
        source_id=str(submission.pk),
    )
    assert outcome["ok"], outcome
    submission.refresh_from_db()
    assert submission.job is not None
    assert submission.job.job_id == outcome["job_id"]
    assert (submission.status, submission.student_id) == (SubmissionStatus.GRADED, "20260005")
    assert Grade.objects.get(submission=submission).times_graded == 1
    second = job_dispatch(
        job_type="omr_grading",
        payload={"image_path": path, "template": SHEET.to_dict()},
        tenant=tenant,
        source_domain="submission",
        source_id=str(submission.pk),
    )
    assert (second["ok"], second["rejection_code"]) == (False, "SUBMISSION_NOT_WAITING")


# --- callbacks that cannot succeed --------------------------------------------------------


def test_a_callback_that_cannot_succeed_is_tried_once_recorded_shown_and_never_resent(
    eager: None, academy: tuple[Any, Any], broker: Broker, settings: Any, make_tenant: Any
) -> None:
    from ai_tasks.domain import job_callback

    tenant, api = academy
    old = timezone.now() - timedelta(hours=1)
    job = AIJob.objects.create(job_type="ping", tenant=tenant, status=JobStatus.DONE, source_domain="submission",
                               source_id="abc", finished_at=old)  # fmt: skip

    outcome = job_callback.apply(args=[job.job_id])  # the domain task, with its autoretry

    assert outcome.successful(), outcome.traceback
    assert outcome.result == {"job_id": job.job_id, "applied": False}
    job.refresh_from_db()
    assert (job.callback_attempts, job.callback_done_at) == (1, None)
    assert job.callback_failed_at is not None
    for _ in range(3):  # sweeps: a given-up callback is not sent again
        assert sweep_once()["callbacks"] == 0
    assert broker.sent == []

    body = api.get(f"/api/v1/jobs/{job.job_id}/").json()
    assert body["callback"]["attempts"] == 1
    assert "not a submission id" in body["callback"]["error"]
    assert body["callback"]["failed_at"] is not None

    from django.contrib.auth import get_user_model
    from django.test import Client

    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("ops", password="x"))
    metrics = staff.get("/metrics").content.decode()
    assert 'academy_ai_callback_failures{job_type="ping",source_domain="submission"} 1.0' in metrics
    admin = staff.get("/admin/academy/aijob/?callback=given_up").content.decode()
    assert job.job_id in admin
    assert "given up" in admin


def test_a_callback_error_that_may_pass_is_retried_a_bounded_number_of_times(
    academy: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.AI_CALLBACK_MAX_ATTEMPTS = 3
    tenant, _ = academy
    calls = []

    def flaky(job: AIJob, result: Any) -> None:
        calls.append(job.job_id)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setitem(callbacks.HANDLERS, "flaky", flaky)
    job = AIJob.objects.create(job_type="ping", tenant=tenant, status=JobStatus.DONE, source_domain="flaky",
                               finished_at=timezone.now())  # fmt: skip
    for attempt in (1, 2):
        with pytest.raises(OperationalError):  # raised: Celery retries it with backoff
            job_callback_apply(job_id=job.job_id)
        job.refresh_from_db()
        assert (job.callback_attempts, job.callback_failed_at) == (attempt, None)
        assert job.callback_next_at is not None
        assert job.callback_next_at > timezone.now()
    assert job_callback_apply(job_id=job.job_id) is False  # the third: given up, not raised
    assert job_callback_apply(job_id=job.job_id) is False  # and not tried again
    job.refresh_from_db()
    assert job.callback_attempts == 3
    assert job.callback_failed_at is not None
    assert job.callback_error.startswith("OperationalError")
    assert len(calls) == 3


def test_the_sweeper_resends_a_lost_callback_with_doubling_waits_and_a_cap(
    academy: tuple[Any, Any], broker: Broker, settings: Any
) -> None:
    settings.AI_CALLBACK_MAX_SENDS = 3
    settings.AI_REPUBLISH_AFTER_SECONDS = 10
    tenant, _ = academy
    old = timezone.now() - timedelta(hours=1)
    job = AIJob.objects.create(job_type="ping", tenant=tenant, status=JobStatus.DONE, source_domain="lost",
                               finished_at=old)  # fmt: skip

    waits = []
    for _ in range(3):
        assert sweep_once()["callbacks"] == 1
        assert sweep_once()["callbacks"] == 0  # not on every sweep: it waits first
        job.refresh_from_db()
        assert job.callback_next_at is not None
        waits.append(round((job.callback_next_at - timezone.now()).total_seconds()))
        AIJob.objects.filter(pk=job.pk).update(callback_next_at=old)  # the wait is over
    assert waits == [10, 20, 40]
    assert sweep_once()["callbacks"] == 0  # the cap: given up and recorded
    job.refresh_from_db()
    assert job.callback_failed_at is not None
    assert "after 3 re-sends" in job.callback_error
    assert broker.sent == [(sending.CALLBACK_TASK, (job.job_id,))] * 3


def test_a_resend_the_broker_refused_is_not_counted(
    academy: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.AI_CALLBACK_MAX_SENDS = 1
    tenant, _ = academy
    old = timezone.now() - timedelta(hours=1)
    job = AIJob.objects.create(job_type="ping", tenant=tenant, status=JobStatus.DONE, source_domain="lost",
                               finished_at=old)  # fmt: skip
    broker = Broker()

    def down(name: str, args: tuple[Any, ...], **options: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(sending, "_send", down)
    for _ in range(3):  # an outage spends none of the job's sends
        assert sweep_once()["callbacks"] == 0
    job.refresh_from_db()
    assert (job.callback_sends, job.callback_next_at, job.callback_failed_at) == (0, None, None)
    monkeypatch.setattr(sending, "_send", broker.send)
    assert sweep_once()["callbacks"] == 1
    assert broker.sent == [(sending.CALLBACK_TASK, (job.job_id,))]


# --- idempotency keys ---------------------------------------------------------------------


def test_an_idempotency_key_reused_with_another_request_gets_409(
    academy: tuple[Any, Any], broker: Broker, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    _, api = academy

    def post(body: dict[str, Any], fmt: str = "json") -> Any:
        return api.post("/api/v1/jobs/", body, format=fmt)

    first = post({"job_type": "ping", "payload": {"echo": "a"}, "idempotency_key": "k-1"})
    assert first.status_code == 202
    again = post({"job_type": "ping", "payload": {"echo": "a"}, "idempotency_key": "k-1"})
    assert (again.status_code, again.json()["job_id"]) == (200, first.json()["job_id"])

    other_payload = post({"job_type": "ping", "payload": {"echo": "b"}, "idempotency_key": "k-1"})
    export = {"job_type": "attendance_excel_export", "payload": {"rows": []}, "idempotency_key": "k-1"}
    other_type = post(export)
    other_tier = post({"job_type": "ping", "payload": {"echo": "a"}, "tier": "lite", "idempotency_key": "k-1"})
    for response in (other_payload, other_type, other_tier):
        assert response.status_code == 409, response.json()
        body = response.json()
        assert body["rejection_code"] == "IDEMPOTENCY_KEY_REUSED"
        assert body["error"]
        assert first.json()["job_id"] in body["detail"]
    assert AIJob.objects.count() == 1

    # An upload is the same request when its bytes are, whatever path it was stored under.
    roster = "이름,연락처\n김철수,01012345678\n".encode()

    def upload(data: bytes) -> Any:
        file = SimpleUploadedFile("roster.csv", data)
        return post({"job_type": "excel_parsing", "payload": "{}", "idempotency_key": "k-2", "file": file}, "multipart")

    made = upload(roster)
    assert made.status_code == 202, made.json()
    assert (upload(roster).status_code, upload(roster).json()["job_id"]) == (200, made.json()["job_id"])
    changed = upload(roster + "이영희,01099998888\n".encode())
    assert (changed.status_code, changed.json()["rejection_code"]) == (409, "IDEMPOTENCY_KEY_REUSED")


# --- a premium fallback that fails --------------------------------------------------------


def test_a_failed_premium_fallback_leaves_basics_done_with_review_and_its_codes(
    eager: None, make_tenant: Any, api_for: Any, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    roster = "이름,학년,연락처\n김철수,3,01012345678\n이영희,2,010-9999\n박민수,1,12\n".encode()
    outcomes = {}
    for paying in (False, True):
        _, token = make_tenant(premium=paying, fallback=paying)
        api = api_for(token)
        file = SimpleUploadedFile("roster.csv", roster)
        response = api.post("/api/v1/jobs/", {"job_type": "excel_parsing", "payload": "{}", "file": file},
                            format="multipart")  # fmt: skip
        assert response.status_code == 202, response.json()
        outcomes[paying] = api.get(f"/api/v1/jobs/{response.json()['job_id']}/").json()

    basic = outcomes[False]
    assert (basic["status"], basic["needs_review"]) == ("DONE", True)
    paid = outcomes[True]
    assert [(step["tier"], step["status"]) for step in paid["lineage"]] == [
        ("basic", "FALLBACK_TO_GPU"),
        ("premium", "DONE"),
    ]
    premium = AIJob.objects.get(job_id=paid["lineage"][1]["job_id"])
    assert premium.status == JobStatus.DONE
    assert premium.needs_review is True
    assert premium.error_message  # why premium did not do better
    assert premium.flags["premium_failed"]["code"] == "low_confidence"
    # The result is the basic one, row for row: paying made nothing worse.
    kept = AIResult.objects.get(job=premium).payload
    assert isinstance(kept, dict)
    assert (kept["rows"], kept["errors"]) == (basic["result"]["rows"], basic["result"]["errors"])
    assert len(kept["errors"]) == 2


def test_a_processor_failure_on_both_tiers_ends_as_basic_alone_would(eager: None, make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True, fallback=True)
    failing = {"raise": "processing", "code": "low_quality"}
    outcome = job_dispatch(job_type="probe_fail", payload=failing, tenant=tenant, tier="basic")
    basic = AIJob.objects.get(job_id=outcome["job_id"])
    assert basic.status == JobStatus.FALLBACK_TO_GPU
    premium = AIJob.objects.get(fallback_from=basic)
    assert (premium.status, premium.needs_review) == (JobStatus.DONE, True)  # was FAILED
    assert premium.flags["from_exception"] is True  # nothing was read: a teacher looks
    assert premium.flags["premium_failed"]["code"] == "low_quality"
    assert "premium re-run failed" in premium.error_message
    kept = AIResult.objects.get(job=premium).payload
    assert isinstance(kept, dict)
    assert kept["error_code"] == "low_quality"


def test_a_premium_fallback_out_of_attempts_keeps_basics_result(make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True, fallback=True)
    basic = AIJob.objects.create(job_type="probe_record", tenant=tenant, tier="basic", status=JobStatus.FALLBACK_TO_GPU)
    AIResult.objects.create(job=basic, payload={"fallback_job_id": "x", "basic_result": {"rows": [1, 2]}})
    kept = {"status": JobStatus.DONE, "flags": {"confidence": 0.3, "review_candidate": True}}
    premium = AIJob.objects.create(job_type="probe_record", tenant=tenant, tier="premium", status=JobStatus.RETRYING,
                                   fallback_from=basic, attempt_count=5, max_attempts=5,
                                   flags={"basic_outcome": kept}, last_error="killed its worker")  # fmt: skip

    assert exhausted_finish(premium) == JobStatus.DONE  # was FAILED
    premium.refresh_from_db()
    assert (premium.needs_review, premium.flags["poison"]) == (True, True)
    assert premium.flags["premium_failed"]["code"] == "max_attempts"
    assert AIResult.objects.get(job=premium).payload == {"rows": [1, 2]}


def test_a_premium_job_that_fails_on_its_own_says_why(eager: None, make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True)
    outcome = job_dispatch(job_type="probe_record", payload={"confidence": 0.2}, tenant=tenant, tier="premium")
    job = AIJob.objects.get(job_id=outcome["job_id"])
    assert job.status == JobStatus.FAILED
    assert job.error_message or job.rejection_code
    assert job.flags["error_code"] == "low_confidence"


# --- races --------------------------------------------------------------------------------


def test_concurrent_fallbacks_cannot_pass_the_daily_cap(
    make_tenant: Any, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, _ = make_tenant(premium=True, fallback=True, daily_fallback_cap=2)
    ids = [
        job_dispatch(job_type="probe_record", payload={"confidence": 0.1}, tenant=tenant, tier="basic")["job_id"]
        for _ in range(6)
    ]
    read = selectors.fallbacks_today

    def slow_read(tenant_id: int) -> int:  # widens the gap between the check and the act
        count = read(tenant_id)
        time.sleep(0.3)
        return count

    monkeypatch.setattr(selectors, "fallbacks_today", slow_read)
    start = threading.Barrier(len(ids))
    decisions: dict[str, str] = {}

    def run(job_id: str) -> None:
        try:
            start.wait()
            decisions[job_id] = lifecycle.execute(job_id=job_id, tier="basic", worker="test")["decision"]
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job_id,)) for job_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(decisions.values()) == ["DONE"] * 4 + ["fallback"] * 2
    assert AIJob.objects.filter(tenant=tenant, fallback_from__isnull=False).count() == 2
    capped = AIJob.objects.filter(job_id__in=ids, status=JobStatus.DONE)
    assert all(job.flags["fallback_skipped"] == "daily_cap_reached" for job in capped)
    assert selectors.fallbacks_today(tenant.pk) == 2


def test_a_soft_limit_in_the_finishes_write_sends_the_job_it_released_back_out(
    make_tenant: Any, broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AI_HEARTBEAT_SECONDS = 0  # held finishes are written before every next job
    tenant, _ = make_tenant()
    ids = [
        job_dispatch(job_type="probe_record", payload={}, tenant=tenant, tier="basic", publish=False)["job_id"]
        for _ in range(3)
    ]
    write = FinishBatch.write
    calls = {"n": 0}

    def out_of_time_on_the_second_write(self: Any) -> set[str]:
        calls["n"] += 1
        if calls["n"] == 2:  # before the second job: the first one's finish is held
            raise SoftTimeLimitExceeded()
        return write(self)

    monkeypatch.setattr(FinishBatch, "write", out_of_time_on_the_second_write)
    with pytest.raises(SoftTimeLimitExceeded):
        lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    jobs = {job.job_id: job for job in AIJob.objects.filter(job_id__in=ids)}
    assert jobs[ids[1]].status == JobStatus.PENDING  # released, its attempt returned
    assert jobs[ids[1]].attempt_count == 0
    sent = [args for name, args in broker.sent if name == sending.RUN_TASK["basic"]]
    assert (ids[1],) in sent  # and sent back out, not left for the sweeper
    assert (ids[2],) in sent
    assert jobs[ids[0]].status == JobStatus.DONE  # its held finish was written at the end
