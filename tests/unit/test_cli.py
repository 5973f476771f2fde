"""The ops CLI: ai_dispatch, ai_jobs, ai_queues, ai_sweep and omr_batch, through call_command."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from academy.jobs.sending import job_send
from academy.models import AIJob, AIResult, JobStatus, OmrBatch
from academy.services.exams import exam_create
from tests.broker_isolation import isolated_broker


def run(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.fixture
def tenant(make_tenant: Any) -> Any:
    return make_tenant()[0]


# --- ai_dispatch -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_ai_dispatch_creates_the_job_and_prints_the_outcome(tenant: Any) -> None:
    out = run("ai_dispatch", "ping", "--tier", "lite", "--payload", '{"echo": "hi"}', "--tenant", tenant.slug)
    outcome = json.loads(out)
    assert (outcome["ok"], outcome["tier"], outcome["created"]) == (True, "lite", True)
    job = AIJob.objects.get(job_id=outcome["job_id"])
    assert (job.payload, job.tenant_id) == ({"echo": "hi"}, tenant.pk)


@pytest.mark.django_db
def test_ai_dispatch_reads_the_payload_from_a_file_and_uploads_the_input_file(tenant: Any, tmp_path: Path) -> None:
    (tmp_path / "payload.json").write_text('{"sheet": "roster"}', encoding="utf-8")
    roster = tmp_path / "roster.csv"
    roster.write_text("이름,학년\n김,1\n", encoding="utf-8")
    out = run(
        "ai_dispatch", "excel_parsing", "--payload", f"@{tmp_path / 'payload.json'}", "--file", str(roster),
        "--tenant", tenant.slug,
    )  # fmt: skip
    job = AIJob.objects.get(job_id=json.loads(out)["job_id"])
    assert job.payload["sheet"] == "roster"
    assert job.payload["file_path"].startswith(f"tenants/{tenant.slug}/uploads/")
    assert job.payload["file_path"].endswith("/roster.csv")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["teleport"], "UNKNOWN_JOB_TYPE"),
        (["ping", "--payload", "{not json"], "not valid JSON"),
        (["ping", "--tenant", "nobody"], "no tenant"),
        (["excel_parsing", "--file", "/etc/hostname"], "needs --tenant"),
    ],
)
def test_ai_dispatch_refuses_bad_input_with_an_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("ai_dispatch", *args)
    assert not AIJob.objects.exists()


# --- ai_jobs -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ai_jobs_lists_with_filters(make_tenant: Any) -> None:
    one, _ = make_tenant()
    two, _ = make_tenant()
    AIJob.objects.create(job_id="a" * 32, job_type="ping", tier="lite", status=JobStatus.DONE, tenant=one)
    AIJob.objects.create(job_id="b" * 32, job_type="ocr", tier="basic", status=JobStatus.FAILED, tenant=one)
    AIJob.objects.create(
        job_id="c" * 32, job_type="ocr", tier="basic", status=JobStatus.DONE, tenant=two, needs_review=True
    )
    everything = run("ai_jobs")
    assert all(c * 32 in everything for c in "abc")
    assert "(3 jobs)" in everything
    assert run("ai_jobs", "--status", "failed").count("ocr") == 1
    assert "b" * 32 in run("ai_jobs", "--status", "failed")
    by_tier_and_tenant = run("ai_jobs", "--tier", "basic", "--tenant", one.slug)
    assert ("b" * 32 in by_tier_and_tenant, "c" * 32 in by_tier_and_tenant) == (True, False)
    review = run("ai_jobs", "--review")
    assert ("c" * 32 in review, "a" * 32 in review, "(1 jobs)" in review) == (True, False, True)


@pytest.mark.django_db
def test_ai_jobs_inspects_one_job_with_its_lineage_and_result(tenant: Any) -> None:
    basic = AIJob.objects.create(job_type="omr_grading", tier="basic", status=JobStatus.FALLBACK_TO_GPU, tenant=tenant)
    premium = AIJob.objects.create(
        job_type="omr_grading", tier="premium", status=JobStatus.DONE, tenant=tenant, fallback_from=basic
    )
    AIResult.objects.create(job=premium, payload={"student_id": "20260001", "점수": 10})
    out = run("ai_jobs", premium.job_id)
    assert "status:         DONE" in out
    assert f"{basic.job_id}(basic:FALLBACK_TO_GPU) -> *{premium.job_id}(premium:DONE)" in out
    assert '"점수": 10' in out
    with pytest.raises(CommandError, match="no job"):
        run("ai_jobs", "does-not-exist")


# --- ai_queues and ai_sweep ------------------------------------------------------------------


def table(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()}


@pytest.mark.django_db
def test_ai_queues_prints_depth_and_oldest_waiting_age_per_tier() -> None:
    AIJob.objects.create(job_type="ping", tier="premium", created_at=timezone.now() - timedelta(seconds=90))
    with isolated_broker():
        for _ in range(2):
            job_send(job_id="no-such-job", tier="premium")
        rows = table(run("ai_queues"))
    assert rows["premium"][0] == "2"
    assert float(rows["premium"][1]) >= 90
    assert rows["lite"] == ["0", "0.0", "s"]
    assert rows["basic"][0] == "0"
    assert rows["domain"][0] == "0"


@pytest.mark.django_db
def test_ai_queues_still_prints_the_ages_when_the_broker_is_down(monkeypatch: Any) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    out = io.StringIO()
    with pytest.raises(CommandError, match="broker unreachable"):
        call_command("ai_queues", stdout=out)
    assert table(out.getvalue())["lite"] == ["?", "0.0", "s"]


@pytest.mark.django_db
def test_ai_sweep_republishes_a_lost_job_and_prints_the_counts() -> None:
    lost = AIJob.objects.create(job_type="ping", tier="lite", next_run_at=timezone.now() - timedelta(hours=1))
    with isolated_broker():
        out = run("ai_sweep")
    assert out.strip() == "republished=1 requeued=0 exhausted=0 callbacks=0 batches_interrupted=0"
    lost.refresh_from_db()
    assert lost.publish_count == 1


# --- omr_batch -------------------------------------------------------------------------------


@pytest.fixture
def exam(tenant: Any) -> Any:
    from workers.omr.template import default_template

    key = {q.label: q.values[0] for q in default_template().questions}
    answer_key = {"questions": {label: {"correct": [value], "points": 1} for label, value in key.items()}}
    return exam_create(tenant=tenant, title="mock", template=None, answer_key=answer_key), key


@pytest.mark.django_db(transaction=True)
def test_omr_batch_uploads_a_folder_follows_it_and_prints_each_sheet(eager: None, exam: Any, tmp_path: Path) -> None:
    from workers.omr.render import filled_sheet_jpeg
    from workers.omr.template import default_template

    exam_row, key = exam
    (tmp_path / "kim.jpg").write_bytes(filled_sheet_jpeg(default_template(), student_id="20260001", answers=key))
    (tmp_path / "notes.txt").write_text("not a sheet")
    out = run("omr_batch", str(exam_row.pk), str(tmp_path), "--interval", "0.05", "--timeout", "30")
    batch = OmrBatch.objects.get()
    assert batch.graded_at is not None
    assert f"batch {batch.batch_id} (created): 1 sheets, 1 skipped" in out
    assert "skipped notes.txt" in out
    assert "1/1 sheets (100%) graded" in out
    [sheet_line] = [line for line in out.splitlines() if line.startswith("kim.jpg")]
    total = len(key)
    assert sheet_line.split("\t")[1:] == ["GRADED", "student=20260001", f"score={total}/{total}"]


@pytest.mark.django_db(transaction=True)
def test_omr_batch_gives_up_after_the_timeout_with_no_worker(exam: Any, tmp_path: Path) -> None:
    from workers.omr.render import filled_sheet_jpeg
    from workers.omr.template import default_template

    exam_row, key = exam
    sheet = tmp_path / "lee.jpg"
    sheet.write_bytes(filled_sheet_jpeg(default_template(), student_id="20260002", answers=key))
    out = io.StringIO()
    with isolated_broker(), pytest.raises(CommandError, match=r"not graded after 0\.2 s"):
        call_command("omr_batch", str(exam_row.pk), str(sheet), "--interval", "0.05", "--timeout", "0.2", stdout=out)
    assert "\r[" in out.getvalue()
    assert "0/1 sheets (0%) reading" in out.getvalue()
    assert "lee.jpg\tPROCESSING" in out.getvalue()


@pytest.mark.django_db
def test_omr_batch_refuses_a_missing_exam_or_path(exam: Any, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no exam"):
        run("omr_batch", "999999", str(tmp_path))
    with pytest.raises(CommandError, match="no such file"):
        run("omr_batch", str(exam[0].pk), str(tmp_path / "missing.pdf"))
