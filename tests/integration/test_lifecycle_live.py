"""The lifecycle against real worker pools, Redis and Postgres. Asserted through the DB."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from academy.jobs.dispatch import job_dispatch
from academy.jobs.sending import job_send, jobs_send
from academy.models import AIJob, AIResult, JobStatus, RuntimeFlag
from ai_tasks.sweeper import sweep
from tests.integration.conftest import pool_log, wait_for, wait_terminal

pytestmark = [pytest.mark.integration]


def dispatch(tenant: Any, job_type: str, tier: str, **payload: Any) -> str:
    outcome = job_dispatch(job_type=job_type, payload=payload, tenant=tenant, tier=tier)
    assert outcome["ok"], outcome
    assert outcome["tier"] == tier
    return str(outcome["job_id"])


def runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("tier", ["lite", "basic", "premium"])
def test_each_tier_is_consumed_only_by_its_own_pool(live: Any, make_tenant: Any, tier: str) -> None:
    tenant, _ = make_tenant(premium=True)
    job = wait_terminal(dispatch(tenant, "ping", tier, echo=tier))
    assert job.status == JobStatus.DONE
    assert job.locked_by.startswith(f"{tier}@")
    assert AIResult.objects.get(job=job).payload == {"pong": True, "echo": tier}


def test_basic_processor_bug_becomes_done_with_review_flags(live: Any, make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    job = wait_terminal(dispatch(tenant, "probe_fail", "basic", **{"raise": "bug"}))
    assert job.status == JobStatus.DONE
    assert job.flags["review_candidate"] is True
    assert job.flags["from_exception"] is True
    assert job.needs_review is True
    assert "ZeroDivisionError" in job.error_message


def test_premium_processor_bug_fails(live: Any, make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True)
    job = wait_terminal(dispatch(tenant, "probe_fail", "premium", **{"raise": "bug"}))
    assert job.status == JobStatus.FAILED
    assert job.flags["error_code"] == "library_error"


def test_premium_confidence_bands_follow_the_shadow_mode_flag(live: Any, make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True)
    low = wait_terminal(dispatch(tenant, "probe_record", "premium", confidence=0.3))
    middle_shadow = wait_terminal(dispatch(tenant, "probe_record", "premium", confidence=0.6))
    high = wait_terminal(dispatch(tenant, "probe_record", "premium", confidence=0.95))
    assert low.status == JobStatus.FAILED
    assert (middle_shadow.status, middle_shadow.flags.get("shadow")) == (JobStatus.DONE, True)
    assert middle_shadow.needs_review is True
    assert (high.status, high.needs_review) == (JobStatus.DONE, False)

    # Flip the flag as the admin would; the worker's cache lets it through within its TTL.
    RuntimeFlag.objects.update_or_create(key="ai_shadow_mode", defaults={"value": "false"})

    def review_required() -> bool:
        job = wait_terminal(dispatch(tenant, "probe_record", "premium", confidence=0.6))
        return job.status == JobStatus.REVIEW_REQUIRED

    wait_for(review_required, timeout=15, every=0.5)


def _sessions_opened() -> int:
    """Sessions PostgreSQL has opened on the test database so far (its statistics)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def test_a_pool_keeps_its_database_connection_from_task_to_task(live: Any, make_tenant: Any) -> None:
    # Celery's Django fix-up closes the connection around every task unless told not to;
    # that was a new PostgreSQL backend per task. A session ending is counted at once.
    tenant, _ = make_tenant()
    wait_terminal(dispatch(tenant, "ping", "basic", echo="warm"))
    before = _sessions_opened()
    for i in range(10):
        assert wait_terminal(dispatch(tenant, "ping", "basic", echo=str(i))).status == JobStatus.DONE
    time.sleep(1.5)  # let any closed session's statistics reach the shared counters
    assert _sessions_opened() - before <= 2


def test_retryable_errors_back_off_and_then_succeed(live: Any, make_tenant: Any, tmp_path: Path) -> None:
    tenant, _ = make_tenant()
    log = tmp_path / "runs.log"
    job = wait_terminal(dispatch(tenant, "probe_fail", "basic", log=str(log), ok_on=3, **{"raise": "retryable"}))
    assert job.status == JobStatus.DONE
    assert job.attempt_count == 3
    assert "transient failure on attempt 2" in job.last_error
    assert [line.split()[1] for line in runs(log)] == ["attempt=1", "attempt=2", "attempt=3"]
    assert AIResult.objects.get(job=job).payload == {"recovered_on": 3}


def test_weak_basic_result_falls_back_to_the_premium_pool(live: Any, make_tenant: Any, api_for: Any) -> None:
    tenant, token = make_tenant(premium=True, fallback=True, gpu_fallback_threshold=0.5)
    basic_id = dispatch(tenant, "probe_record", "basic", confidence=0.3)
    basic = wait_terminal(basic_id)
    assert basic.status == JobStatus.FALLBACK_TO_GPU
    premium = AIJob.objects.get(fallback_from=basic)
    premium = wait_terminal(premium.job_id)
    # The premium re-run judges the same confidence by premium bands: 0.3 < 0.5 fails,
    # and a failed fallback ends no worse than basic: its DONE-plus-review result stands.
    assert (premium.status, premium.needs_review) == (JobStatus.DONE, True)
    assert premium.flags["premium_failed"]["code"] == "low_confidence"
    assert AIResult.objects.get(job=premium).payload == {"ok": True}
    assert premium.tier == "premium"
    assert premium.locked_by.startswith("premium@")
    assert premium.fallback_from_tier == "basic"
    body = api_for(token).get(f"/api/v1/jobs/{basic_id}/").json()
    assert [(step["tier"], step["status"]) for step in body["lineage"]] == [
        ("basic", "FALLBACK_TO_GPU"),
        ("premium", premium.status),
    ]


def test_basic_failure_without_fallback_permission_gets_the_no_fail_policy(live: Any, make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True, fallback=False)
    job = wait_terminal(dispatch(tenant, "probe_fail", "basic", code="low_quality", **{"raise": "processing"}))
    assert job.status == JobStatus.DONE
    assert job.flags["review_candidate"] is True
    assert not AIJob.objects.filter(fallback_from=job).exists()


def test_bad_input_found_by_a_worker_is_rejected_with_its_code(live: Any, make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    job = wait_terminal(dispatch(tenant, "probe_fail", "basic", **{"raise": "bad_input"}))
    assert job.status == JobStatus.REJECTED_BAD_INPUT
    assert job.rejection_code == "FILE_UNREADABLE"
    assert job.error_message.startswith("파일을 읽을 수 없습니다")


def test_concurrent_identical_dispatches_make_one_job(live: Any, make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    outcomes: list[dict[str, Any]] = []
    barrier = threading.Barrier(20)

    def hit() -> None:
        try:
            barrier.wait()
            outcomes.append(
                job_dispatch(job_type="ping", payload={}, tenant=tenant, tier="lite", idempotency_key="sheet-42")
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 20
    assert all(o["ok"] for o in outcomes)
    assert len({o["job_id"] for o in outcomes}) == 1
    assert sum(o["created"] for o in outcomes) == 1
    assert AIJob.objects.filter(tenant=tenant).count() == 1
    wait_terminal(outcomes[0]["job_id"])

    rerun = job_dispatch(job_type="ping", payload={}, tenant=tenant, tier="lite", idempotency_key="sheet-42",
                         force_rerun=True, rerun_reason="teacher asked")  # fmt: skip
    assert rerun["created"]
    assert rerun["job_id"] != outcomes[0]["job_id"]
    # Let the worker finish it: a job still running when the test's tables are emptied
    # holds locks the emptying deadlocks against.
    wait_terminal(rerun["job_id"])


def test_a_duplicate_delivery_runs_the_processor_once(live: Any, make_tenant: Any, tmp_path: Path) -> None:
    tenant, _ = make_tenant()
    log = tmp_path / "runs.log"
    job_id = dispatch(tenant, "probe_record", "basic", log=str(log), sleep=1.5)
    wait_for(lambda: runs(log))
    # The same message again, twice, while the first run holds the lease; and once after.
    copies = [job_send(job_id=job_id, tier="basic") for _ in range(2)]
    wait_terminal(job_id)
    copies.append(job_send(job_id=job_id, tier="basic"))

    # run_job stores no result row (the job row is the result): the worker's log says what
    # became of each copy.
    skipped = f"ai_claim_skipped job_id={job_id} why=not_claimable"
    wait_for(lambda: pool_log("basic").count(skipped) == len(copies))
    assert pool_log("basic").count(f"job_id={job_id} why=") == len(copies)
    assert len(runs(log)) == 1
    assert AIJob.objects.get(job_id=job_id).attempt_count == 1


def test_sweeper_recovers_a_job_whose_worker_was_killed(live: Any, make_tenant: Any, tmp_path: Path) -> None:
    tenant, _ = make_tenant()
    log = tmp_path / "runs.log"
    job_id = dispatch(tenant, "probe_record", "basic", log=str(log), sleep=30, sleep_attempts=[1])
    wait_for(lambda: runs(log))
    child_pid = int(AIJob.objects.get(job_id=job_id).locked_by.rsplit(":", 1)[1])
    os.kill(child_pid, signal.SIGKILL)

    def finished() -> AIJob | None:
        sweep.delay()
        job = AIJob.objects.get(job_id=job_id)
        return job if job.is_terminal else None

    job = wait_for(finished, timeout=40, every=1.0)
    assert job.status == JobStatus.DONE
    assert job.attempt_count == 2
    assert "lease expired" in job.last_error
    assert job.lease_lost_attempt == 1  # the killed run's, by the sweeper or the redelivery
    assert len(runs(log)) == 2


@pytest.mark.parametrize(("tier", "final"), [("basic", JobStatus.DONE), ("premium", JobStatus.FAILED)])
def test_poison_job_stops_at_max_attempts(live: Any, make_tenant: Any, tmp_path: Path, tier: str, final: str) -> None:
    tenant, _ = make_tenant(premium=True)
    log = tmp_path / "runs.log"
    outcome = job_dispatch(job_type="probe_kill", payload={"log": str(log)}, tenant=tenant, tier=tier, max_attempts=2)
    job_id = outcome["job_id"]

    def finished() -> AIJob | None:
        sweep.delay()
        job = AIJob.objects.get(job_id=job_id)
        return job if job.is_terminal else None

    job = wait_for(finished, timeout=60, every=1.0)
    assert job.status == final
    assert job.flags["poison"] is True
    assert job.attempt_count == 2
    assert len(runs(log)) == 2
    # The pool kept consuming after its children were killed.
    assert wait_terminal(dispatch(tenant, "ping", tier)).status == JobStatus.DONE


def test_a_job_that_kills_its_worker_costs_the_other_jobs_of_its_message_one_attempt(
    live: Any, make_tenant: Any, tmp_path: Path
) -> None:
    tenant, _ = make_tenant()
    logs = {name: tmp_path / f"{name}.log" for name in ("first", "poison", "last")}

    def make(name: str, job_type: str, **options: Any) -> str:
        payload = {"log": str(logs[name])}
        outcome = job_dispatch(
            job_type=job_type, payload=payload, tenant=tenant, tier="basic", publish=False, **options
        )
        return str(outcome["job_id"])

    ids = [make("first", "probe_record"), make("poison", "probe_kill", max_attempts=2), make("last", "probe_record")]
    jobs_send(job_ids=ids, tier="basic")  # one message, claimed in one statement

    def finished() -> list[AIJob] | None:
        sweep.delay()
        jobs = [AIJob.objects.get(job_id=job_id) for job_id in ids]
        return jobs if all(job.is_terminal for job in jobs) else None

    first, poison, last = wait_for(finished, timeout=90, every=1.0)
    # The kill lost the first job's held finish and the last job's turn: each ran again on
    # a message of its own once its lease ran out, with an attempt spent.
    assert (first.status, first.attempt_count, len(runs(logs["first"]))) == (JobStatus.DONE, 2, 2)
    assert (last.status, last.attempt_count, len(runs(logs["last"]))) == (JobStatus.DONE, 2, 1)
    # The poison job went on failing alone and stopped at its attempts (basic: DONE, flagged).
    assert (poison.status, poison.attempt_count, poison.flags["poison"]) == (JobStatus.DONE, 2, True)
    assert len(runs(logs["poison"])) == 2


def test_excel_roster_import_runs_on_the_basic_pool(live: Any, make_tenant: Any) -> None:
    from academy.storage import upload_save

    tenant, _ = make_tenant()
    csv = "이름,학년,연락처\n김철수,3,01012345678\n이영희,2,010-9999\n".encode("cp949")
    path = upload_save(tenant=tenant, name="roster.csv", data=csv)
    job = wait_terminal(dispatch(tenant, "excel_parsing", "basic", file_path=path))
    assert job.status == JobStatus.DONE
    result = AIResult.objects.get(job=job).payload
    assert result is not None
    assert [row["phone"] for row in result["rows"]] == ["010-1234-5678"]
    assert result["errors"][0]["row"] == 3
    assert job.needs_review is True  # one row in two had an error: confidence 0.5


def test_omr_sheet_is_read_on_the_basic_pool_and_graded_exactly_once(live: Any, make_tenant: Any) -> None:
    from academy.jobs.sending import callbacks_send
    from academy.models import AnswerKey, Exam, Grade, Submission, SubmissionStatus
    from academy.storage import upload_save
    from workers.omr.render import filled_sheet_jpeg
    from workers.omr.template import default_template

    tenant, _ = make_tenant()
    sheet = default_template()
    key = {q.label: q.values[i % len(q.values)] for i, q in enumerate(sheet.questions)}
    marked = {**key, "1": "5" if key["1"] != "5" else "4"}  # one wrong answer
    del marked["2"]  # and one left blank
    exam = Exam.objects.create(tenant=tenant, title="mock", sheet_template=sheet.to_dict())
    AnswerKey.objects.create(exam=exam, questions={q: {"correct": [a], "points": 2} for q, a in key.items()})
    path = upload_save(
        tenant=tenant, name="s.jpg", data=filled_sheet_jpeg(sheet, student_id="12345678", answers=marked)
    )
    submission = Submission.objects.create(tenant=tenant, exam=exam, source_file=path)
    outcome = job_dispatch(
        job_type="omr_grading",
        payload={"image_path": path, "template": sheet.to_dict()},
        tenant=tenant,
        source_domain="submission",
        source_id=str(submission.pk),
    )
    job = wait_terminal(outcome["job_id"])
    assert (job.tier, job.status) == ("basic", JobStatus.DONE)
    assert job.artifacts.get(name="overlay.png").size > 1000

    grade = wait_for(lambda: Grade.objects.filter(submission=submission).first())
    assert (grade.score, grade.max_score) == (2 * (len(key) - 2), 2 * len(key))
    callbacks_send(job_ids=[job.job_id])  # a duplicate callback message
    callbacks_send(job_ids=[job.job_id])
    wait_for(lambda: TaskResult.objects.filter(task_name="ai_tasks.domain.job_callback").count() == 3)
    grade.refresh_from_db()
    assert grade.times_graded == 1
    assert Grade.objects.filter(submission=submission).count() == 1
    submission.refresh_from_db()
    assert (submission.student_id, submission.status) == ("12345678", SubmissionStatus.GRADED)
