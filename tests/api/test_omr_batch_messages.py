"""An OMR batch's sheets share broker messages; each sheet keeps its own job.

The batch service publishes up to ``AI_OMR_SHEETS_PER_MESSAGE`` jobs per message, a worker
claims them in one statement and runs them one after another, each with its own token,
lease, attempt and result, and their
domain callbacks come back as one message, applied together and exactly once. Nothing
here uses a real worker: the broker is replaced by a recorder (tests/integration has a
batch through the real pools).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any, cast

import cv2
import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.storage import default_storage
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from academy.jobs import sending
from academy.jobs.claims import job_claim, jobs_claim
from academy.jobs.finish import Finish, FinishBatch, job_finish, job_reject
from academy.jobs.outcome import outcome_apply
from academy.models import AIJob, AIResult, AnswerKey, Exam, Grade, JobStatus, OmrBatch, Submission, SubmissionStatus
from academy.services import callbacks
from academy.services.callbacks import jobs_callback_apply
from academy.services.omr_batches import FIRST_MESSAGE_SHEETS, Upload, omr_batch_create
from ai_tasks import lifecycle, routing
from workers.omr.render import filled_sheet_jpeg
from workers.omr.template import default_template

pytestmark = pytest.mark.django_db(transaction=True)

SHEET = default_template()
KEY = {q.label: q.values[i % len(q.values)] for i, q in enumerate(SHEET.questions)}


@cache
def sheet_jpeg(student_id: str) -> bytes:
    return filled_sheet_jpeg(SHEET, student_id=student_id, answers=KEY)


class Broker:
    """Records what would have been sent: (task name, args)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.down = False

    def send(self, name: str, args: tuple[Any, ...], **options: Any) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.sent.append((name, args))


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    recorder = Broker()
    monkeypatch.setattr(sending, "_send", recorder.send)
    return recorder


@pytest.fixture
def exam(make_tenant: Any) -> Exam:
    tenant, _ = make_tenant()
    exam = Exam.objects.create(tenant=tenant, title="t", sheet_template=SHEET.to_dict())
    AnswerKey.objects.create(exam=exam, questions={q: {"correct": [a]} for q, a in KEY.items()})
    return exam


def batch_of(exam: Exam, sheets: int) -> OmrBatch:
    uploads = [Upload(f"s{i}.jpg", sheet_jpeg(f"2026{i:04d}")) for i in range(sheets)]
    batch, _ = omr_batch_create(tenant=exam.tenant, exam=exam, uploads=uploads)
    return batch


def job_ids_of(batch: OmrBatch) -> list[str]:
    return [str(j) for j in batch.submissions.order_by("pk").values_list("job__job_id", flat=True)]


def one_message_of(exam: Exam, sheets: int, *, broker: Broker, settings: Any) -> list[str]:
    """A batch of ``sheets`` sent as one message; its job ids, with nothing recorded yet."""
    settings.AI_OMR_SHEETS_PER_MESSAGE = sheets
    ids = job_ids_of(batch_of(exam, sheets))
    broker.sent.clear()
    return ids


def read_by_hand(job_ids: list[str]) -> None:
    """Each job run and finished as a worker would, with a clean reading."""
    for number, job_id in enumerate(job_ids):
        job, token = job_claim(job_id=job_id, worker="test")
        assert job is not None
        reading = {"student_id": f"2026{number:04d}", "answers": {q: [a] for q, a in KEY.items()}, "review": []}
        assert job_finish(job_id=job_id, token=token, finish=Finish(JobStatus.DONE, result=reading))


def test_a_batch_sends_its_sheets_a_few_jobs_per_message(
    exam: Exam, broker: Broker, settings: Any, make_tenant: Any
) -> None:
    settings.AI_OMR_SHEETS_PER_MESSAGE = 2
    batch = batch_of(exam, 5)
    ids = job_ids_of(batch)
    assert broker.sent == [
        (sending.RUN_MANY_TASK["basic"], (ids[0:2],)),
        (sending.RUN_MANY_TASK["basic"], (ids[2:4],)),
        (sending.RUN_TASK["basic"], (ids[4],)),  # the last one alone: a plain message
    ]
    rows = dict(AIJob.objects.filter(job_id__in=ids).values_list("job_id", "celery_task_id"))
    assert rows[ids[0]] == rows[ids[1]] != rows[ids[2]] == rows[ids[3]]
    assert set(AIJob.objects.filter(job_id__in=ids).values_list("status", "publish_count")) == {(JobStatus.PENDING, 1)}


def test_a_batchs_messages_start_at_two_sheets_and_double_up_to_the_setting(
    exam: Exam, broker: Broker, settings: Any
) -> None:
    settings.AI_OMR_SHEETS_PER_MESSAGE = 8
    ids = job_ids_of(batch_of(exam, 21))
    messages = [list(args[0]) for name, args in broker.sent if name == sending.RUN_MANY_TASK["basic"]]
    assert [len(jobs) for jobs in messages] == [2, 4, 8, 7]
    assert [job for jobs in messages for job in jobs] == ids  # in order, each sheet once


def test_sheets_whose_message_the_broker_refused_stay_pending_and_the_sweeper_sends_them(
    exam: Exam, broker: Broker
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from academy.jobs.sweep import sweep_once

    broker.down = True
    batch = batch_of(exam, 3)
    ids = job_ids_of(batch)
    # Nothing lost and nothing failed: the sheets wait, and the batch is sealed.
    assert set(AIJob.objects.filter(job_id__in=ids).values_list("status", "publish_count")) == {(JobStatus.PENDING, 0)}
    assert set(batch.submissions.values_list("status", flat=True)) == {SubmissionStatus.PROCESSING}
    assert OmrBatch.objects.get(pk=batch.pk).sealed_at is not None

    broker.down = False
    AIJob.objects.filter(job_id__in=ids).update(next_run_at=timezone.now() - timedelta(hours=1))
    assert sweep_once()["republished"] == 3
    assert sorted(args[0] for name, args in broker.sent if name == sending.RUN_TASK["basic"]) == sorted(ids)


def test_the_jobs_of_one_message_each_run_once_and_their_callbacks_go_back_in_one(
    exam: Exam, broker: Broker, settings: Any
) -> None:
    settings.AI_OMR_SHEETS_PER_MESSAGE = 3
    batch = batch_of(exam, 3)
    ids = job_ids_of(batch)
    broker.sent.clear()

    outcome = lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")
    assert outcome["decisions"] == dict.fromkeys(ids, JobStatus.DONE)
    assert broker.sent == [(sending.CALLBACKS_TASK, (ids,))]
    assert set(AIJob.objects.filter(job_id__in=ids).values_list("attempt_count", flat=True)) == {1}

    # A redelivered copy of the message runs nothing and sends nothing.
    broker.sent.clear()
    again = lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")
    assert set(again["decisions"].values()) == {"skipped:not_claimable"}
    assert broker.sent == []
    assert set(AIJob.objects.filter(job_id__in=ids).values_list("attempt_count", flat=True)) == {1}


def _claim_statements(queries: CaptureQueriesContext) -> int:
    return sum('UPDATE "academy_aijob" AS u SET' in q["sql"] for q in queries.captured_queries)


@pytest.mark.postgres_only(
    reason="counts PostgreSQL's one-statement claim (elsewhere each job is claimed through the ORM)"
)
def test_a_message_claims_its_jobs_in_one_statement_each_with_a_token_of_its_own(
    exam: Exam, broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = one_message_of(exam, 3, broker=broker, settings=settings)
    tokens: dict[str, str] = {}
    add = FinishBatch.add  # where the message holds each run's finish

    def seen(self: FinishBatch, **kwargs: Any) -> None:
        tokens[kwargs["job_id"]] = kwargs["token"]
        add(self, **kwargs)

    monkeypatch.setattr(FinishBatch, "add", seen)
    with CaptureQueriesContext(connection) as queries:
        outcome = lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    assert outcome["decisions"] == dict.fromkeys(ids, JobStatus.DONE)
    assert _claim_statements(queries) == 1
    assert sorted(tokens) == sorted(ids)
    assert len(set(tokens.values())) == 3
    assert set(AIJob.objects.filter(job_id__in=ids).values_list("attempt_count", flat=True)) == {1}


def test_the_running_jobs_heartbeat_renews_the_leases_of_the_jobs_waiting_behind_it(
    exam: Exam, broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = one_message_of(exam, 3, broker=broker, settings=settings)
    settings.AI_HEARTBEAT_SECONDS = 0.05
    run = lifecycle._run_processor
    leases: list[Any] = []

    def slow_first(job: AIJob, lease: Any) -> Any:
        if job.job_id == ids[0]:
            waiting = AIJob.objects.filter(job_id__in=ids[1:]).order_by("job_id")
            leases.append(list(waiting.values_list("lease_expires_at", flat=True)))
            deadline = time.monotonic() + 5
            # The heartbeat renews the waiting leases one statement each: wait for all of them.
            while time.monotonic() < deadline and any(
                now == then
                for now, then in zip(waiting.values_list("lease_expires_at", flat=True), leases[0], strict=True)
            ):
                time.sleep(0.02)
            leases.append(list(waiting.values_list("lease_expires_at", flat=True)))
        return run(job, lease)

    monkeypatch.setattr(lifecycle, "_run_processor", slow_first)
    outcome = lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    before, after = leases
    assert all(renewed > claimed for claimed, renewed in zip(before, after, strict=True))
    assert outcome["decisions"] == dict.fromkeys(ids, JobStatus.DONE)


def test_a_message_whose_worker_died_leaves_its_jobs_to_the_sweeper_one_message_each(
    exam: Exam, broker: Broker, settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from academy.jobs.sweep import sweep_once

    ids = one_message_of(exam, 3, broker=broker, settings=settings)
    claims = jobs_claim(job_ids=ids, worker="killed")  # then the child was killed
    assert sorted(claims.taken) == sorted(ids)

    # A redelivered copy finds every job under a live lease and runs none of them.
    again = lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")
    assert set(again["decisions"].values()) == {"skipped:not_claimable"}

    AIJob.objects.filter(job_id__in=ids).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert sweep_once()["requeued"] == 3
    assert sorted(args[0] for name, args in broker.sent if name == sending.RUN_TASK["basic"]) == sorted(ids)
    # The dead run cost each job one attempt, no more.
    assert set(AIJob.objects.filter(job_id__in=ids).values_list("attempt_count", flat=True)) == {1}


def test_a_redelivery_after_its_jobs_leases_ran_out_sends_each_back_alone_at_no_extra_attempt(
    exam: Exam, broker: Broker, settings: Any
) -> None:
    # The child running the message was killed (one of its jobs may kill every worker
    # it runs on), and Celery's redelivery came only after the leases had run out, so
    # its claim took every job over. Run together again, a job that kills its worker
    # would cost its siblings a second attempt; each goes out alone instead, as the
    # sweeper would have sent it, with the attempt this claim counted returned.
    from datetime import timedelta

    from django.utils import timezone

    ids = one_message_of(exam, 3, broker=broker, settings=settings)
    jobs_claim(job_ids=ids, worker="killed")  # then the child was killed
    AIJob.objects.filter(job_id__in=ids).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    sent_before = len(broker.sent)

    outcome = lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    assert outcome["decisions"] == dict.fromkeys(ids, "sent_back")
    assert broker.sent[sent_before:] == [(sending.RUN_TASK["basic"], (job_id,)) for job_id in ids]
    jobs = AIJob.objects.filter(job_id__in=ids)
    assert set(jobs.values_list("status", "attempt_count")) == {(JobStatus.RETRYING, 1)}
    assert all(error.startswith("lease expired on killed") for error in jobs.values_list("last_error", flat=True))


def test_a_message_past_a_quarter_of_its_time_sends_the_jobs_it_did_not_start_back_one_by_one(
    exam: Exam, broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = one_message_of(exam, 3, broker=broker, settings=settings)
    soft, _ = routing.time_limits("basic")
    clock = iter([0.0, 0.0, soft / 4])  # the message starts, its first job starts, then time is up
    monkeypatch.setattr(lifecycle, "_clock", lambda: next(clock))

    outcome = lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    assert outcome["decisions"] == {ids[0]: JobStatus.DONE, ids[1]: "sent_back", ids[2]: "sent_back"}
    assert [s for s in broker.sent if s[0] == sending.RUN_TASK["basic"]] == [
        (sending.RUN_TASK["basic"], (ids[1],)),
        (sending.RUN_TASK["basic"], (ids[2],)),
    ]
    statuses = dict(AIJob.objects.filter(job_id__in=ids).values_list("job_id", "status"))
    assert (statuses[ids[1]], statuses[ids[2]]) == (JobStatus.PENDING, JobStatus.PENDING)  # no attempt spent


def _callbacks_statements(exam: Exam, sheets: int) -> int:
    batch = batch_of(exam, sheets)
    ids = job_ids_of(batch)
    read_by_hand(ids)
    with CaptureQueriesContext(connection) as queries:
        assert jobs_callback_apply(job_ids=ids) == ids
    batch.refresh_from_db()
    assert batch.graded_at is not None
    assert (
        sorted(Grade.objects.filter(submission__batch=batch).values_list("times_graded", "score"))
        == [(1, float(len(KEY)))] * sheets
    )
    return len(queries.captured_queries)


@pytest.mark.postgres_only(
    reason="PostgreSQL's statement counts (elsewhere the ORM's bulk inserts split at the database's variable limit)"
)
def test_a_message_of_readings_is_applied_and_graded_in_the_same_statements_for_2_or_6_sheets(
    exam: Exam, broker: Broker, settings: Any
) -> None:
    settings.AI_OMR_SHEETS_PER_MESSAGE = 8
    assert _callbacks_statements(exam, 2) == _callbacks_statements(exam, 6)


def test_a_message_of_callbacks_applied_twice_changes_nothing_the_second_time(exam: Exam, broker: Broker) -> None:
    batch = batch_of(exam, 3)
    ids = job_ids_of(batch)
    read_by_hand(ids)
    assert jobs_callback_apply(job_ids=ids) == ids
    graded = OmrBatch.objects.get(pk=batch.pk).graded_at
    assert jobs_callback_apply(job_ids=ids) == []
    assert OmrBatch.objects.get(pk=batch.pk).graded_at == graded
    assert list(Grade.objects.filter(submission__batch=batch).values_list("times_graded", flat=True)) == [1, 1, 1]


def test_a_refused_sheet_and_readings_in_one_message_each_settle_their_way(exam: Exam, broker: Broker) -> None:
    batch = batch_of(exam, 3)
    ids = job_ids_of(batch)
    read_by_hand(ids[:2])
    job, token = job_claim(job_id=ids[2], worker="test")
    assert job is not None
    job_reject(job_id=ids[2], token=token, code="TEMPLATE_MISMATCH", detail="not this sheet")

    assert jobs_callback_apply(job_ids=ids) == ids
    by_job: dict[str, Submission] = {}
    for s in Submission.objects.filter(batch=batch).select_related("job"):
        assert s.job is not None
        by_job[str(s.job.job_id)] = s
    assert [by_job[i].status for i in ids] == [SubmissionStatus.GRADED, SubmissionStatus.GRADED, "REJECTED"]
    assert by_job[ids[2]].rejection_code == "TEMPLATE_MISMATCH"
    assert OmrBatch.objects.get(pk=batch.pk).graded_at is not None


def test_a_redelivered_message_settles_the_batch_its_first_delivery_applied_but_did_not_settle(
    exam: Exam, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = batch_of(exam, 2)
    ids = job_ids_of(batch)
    read_by_hand(ids)

    def crash(**kwargs: Any) -> bool:
        raise RuntimeError("the worker died after the callbacks committed")

    with monkeypatch.context() as patch:
        patch.setattr(callbacks, "omr_batch_settle", crash)
        with pytest.raises(RuntimeError):
            jobs_callback_apply(job_ids=ids)
    assert OmrBatch.objects.get(pk=batch.pk).graded_at is None
    assert AIJob.objects.filter(job_id__in=ids, callback_done_at__isnull=False).count() == 2

    assert jobs_callback_apply(job_ids=ids) == []  # nothing applied twice ...
    assert OmrBatch.objects.get(pk=batch.pk).graded_at is not None  # ... and the batch graded
    assert Grade.objects.filter(submission__batch=batch).count() == 2


def _finish_statements(queries: CaptureQueriesContext) -> int:
    """How many of ``queries`` wrote finishes (one or several jobs' alike)."""
    return sum(q["sql"].startswith("WITH d AS") for q in queries.captured_queries)


@pytest.mark.postgres_only(reason="a message's finishes are gathered into one statement on PostgreSQL only")
def test_a_message_writes_the_finishes_of_its_jobs_in_one_statement(exam: Exam, broker: Broker, settings: Any) -> None:
    ids = one_message_of(exam, 3, broker=broker, settings=settings)

    with CaptureQueriesContext(connection) as queries:
        outcome = lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    assert outcome["decisions"] == dict.fromkeys(ids, JobStatus.DONE)
    assert _finish_statements(queries) == 1
    for job in AIJob.objects.filter(job_id__in=ids).prefetch_related("artifacts"):
        assert (job.status, job.lease_token, job.finished_at is not None) == (JobStatus.DONE, "", True)
        assert job.result.payload is not None
        assert job.result.payload["student_id"]
        assert job.result.payload["artifacts"]["overlay.png"]
        [overlay] = job.artifacts.all()
        assert default_storage.exists(overlay.path)
    assert broker.sent == [(sending.CALLBACKS_TASK, (ids,))]  # after the write, as one message


@pytest.mark.postgres_only(
    reason="finishes are held for one statement on PostgreSQL only; elsewhere each is written, fenced, at once"
)
def test_a_held_finish_whose_lease_another_run_took_is_dropped_with_its_file(
    exam: Exam, broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = one_message_of(exam, 2, broker=broker, settings=settings)
    written = FinishBatch.write

    def taken_before_the_write(gathering: Any) -> None:
        # The first job's lease ran out and another run claimed it meanwhile.
        AIJob.objects.filter(job_id=ids[0]).update(lease_token="another-run")
        files.extend(path for row in gathering.rows for path in (f["path"] for f in row["files"]))
        written(gathering)

    files: list[str] = []
    monkeypatch.setattr(FinishBatch, "write", taken_before_the_write)
    lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    first, second = (AIJob.objects.get(job_id=job_id) for job_id in ids)
    assert (first.status, first.lease_token, AIResult.objects.filter(job=first).exists()) == (
        JobStatus.RUNNING,
        "another-run",
        False,
    )
    assert second.status == JobStatus.DONE
    assert AIResult.objects.filter(job=second).exists()
    assert [default_storage.exists(path) for path in files] == [False, True]  # the fenced run's file is gone
    assert broker.sent == [(sending.CALLBACK_TASK, (ids[1],))]


@pytest.mark.postgres_only(reason="finishes are held for one statement on PostgreSQL only")
def test_held_finishes_are_written_before_the_next_job_once_they_have_waited_a_while(
    exam: Exam, broker: Broker, settings: Any
) -> None:
    settings.AI_OMR_SHEETS_PER_MESSAGE = 3
    settings.AI_HEARTBEAT_SECONDS = 0  # every held finish is old enough at once
    ids = job_ids_of(batch_of(exam, 3))

    with CaptureQueriesContext(connection) as queries:
        lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    assert _finish_statements(queries) == 3  # before the 2nd job, before the 3rd, at the end
    assert set(AIJob.objects.filter(job_id__in=ids).values_list("status", flat=True)) == {JobStatus.DONE}


def test_held_finishes_are_written_when_the_message_runs_out_of_time_outside_a_processor(
    exam: Exam, broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = one_message_of(exam, 3, broker=broker, settings=settings)
    apply = outcome_apply

    def out_of_time_at_the_second(job: AIJob, token: str | None, outcome: Any, **options: Any) -> str:
        if job.job_id == ids[1]:
            raise SoftTimeLimitExceeded()
        return apply(job, token, outcome, **options)

    monkeypatch.setattr(lifecycle, "outcome_apply", out_of_time_at_the_second)
    with pytest.raises(SoftTimeLimitExceeded):
        lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    jobs = {job.job_id: job for job in AIJob.objects.filter(job_id__in=ids)}
    assert [jobs[job_id].status for job_id in ids] == [JobStatus.DONE, JobStatus.RUNNING, JobStatus.PENDING]
    # The interrupted run keeps its lease (the sweeper recovers it); the job it never
    # started is handed back with its attempt and goes out as a message of its own.
    assert [jobs[job_id].attempt_count for job_id in ids] == [1, 1, 0]
    assert (jobs[ids[2]].lease_token, jobs[ids[2]].started_at) == ("", None)
    assert (sending.RUN_TASK["basic"], (ids[2],)) in broker.sent
    assert (sending.CALLBACK_TASK, (ids[0],)) in broker.sent


def test_a_batch_saves_a_message_worth_of_sheets_in_one_statement_per_table(
    exam: Exam, broker: Broker, settings: Any
) -> None:
    settings.AI_OMR_SHEETS_PER_MESSAGE = 4
    gray = cv2.imdecode(np.frombuffer(sheet_jpeg("20260000"), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    dark = cv2.imencode(".jpg", (gray * 0.2).astype(np.uint8))[1].tobytes()
    uploads = [Upload(f"s{i}.jpg", sheet_jpeg(f"2026{i:04d}")) for i in range(5)]
    uploads.insert(3, Upload("dark.jpg", dark))  # refused by the gate, inside the second group

    with CaptureQueriesContext(connection) as queries:
        batch, _ = omr_batch_create(tenant=exam.tenant, exam=exam, uploads=uploads)

    inserts = [q["sql"].split(" (")[0] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    # 6 sheets: the batch's first group of 2 (reading starts early), then one of 4.
    assert inserts.count('INSERT INTO "academy_submission"') == 2
    assert inserts.count('INSERT INTO "academy_aijob"') == 2
    # django-stubs types job__tier as str; across the nullable job key a refused sheet's is None.
    sheets = cast(
        "list[tuple[str, str, str, str | None]]",
        list(batch.submissions.order_by("pk").values_list("sheet_name", "status", "rejection_code", "job__tier")),
    )
    assert sheets[3] == ("dark.jpg", SubmissionStatus.REJECTED, "TOO_DARK", None)
    assert [s[1] for s in sheets[:3] + sheets[4:]] == [SubmissionStatus.PROCESSING] * 5
    assert {s[3] for s in sheets[:3] + sheets[4:]} == {"basic"}
    jobs = [job_id for job_id in job_ids_of(batch) if job_id != "None"]
    assert (
        broker.sent
        == [  # the jobs still go out a message's worth at a time
            (sending.RUN_MANY_TASK["basic"], (jobs[:FIRST_MESSAGE_SHEETS],)),
            (sending.RUN_MANY_TASK["basic"], (jobs[FIRST_MESSAGE_SHEETS:],)),
        ]
    )


@pytest.mark.postgres_only(
    reason="counts health checks of a kept connection; the SQLite settings keep none (CONN_MAX_AGE 0)"
)
def test_a_message_checks_its_database_connection_once_not_once_per_job(
    exam: Exam, broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = one_message_of(exam, 3, broker=broker, settings=settings)
    wrapper = connections["default"]
    checks: list[bool] = []
    usable = wrapper.is_usable

    def counted_is_usable() -> bool:
        checks.append(True)
        return usable()

    monkeypatch.setattr(wrapper, "is_usable", counted_is_usable)
    monkeypatch.setattr(wrapper, "health_check_enabled", True)

    lifecycle.execute_many(job_ids=ids, tier="basic", worker="test")

    assert len(checks) == 1  # each check is a SELECT 1 round trip before the next statement
    assert set(AIJob.objects.filter(job_id__in=ids).values_list("status", flat=True)) == {JobStatus.DONE}
