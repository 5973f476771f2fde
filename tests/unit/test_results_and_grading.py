"""Write-once results, exactly-once callbacks, idempotent grading, runtime flags."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from academy import flags
from academy.jobs.claims import job_claim, lease_lost
from academy.jobs.finish import Finish, job_finish
from academy.jobs.sweep import sweep_once
from academy.models import (
    AIJob,
    AIResult,
    AnswerKey,
    Exam,
    Grade,
    JobStatus,
    RuntimeFlag,
    Submission,
    SubmissionStatus,
    WriteOnceError,
)
from academy.services.callbacks import job_callback_apply
from academy.services.grading import submission_correct, submission_grade, submissions_grade


@pytest.fixture
def exam(make_tenant: Any) -> Exam:
    tenant, _ = make_tenant()
    exam = Exam.objects.create(tenant=tenant, title="중간고사")
    AnswerKey.objects.create(
        exam=exam,
        questions={
            "1": {"correct": ["A"], "points": 2},
            "2": {"correct": ["B", "C"], "points": 3},
            "3": {"correct": ["D"]},
        },
        scheme={"incorrect": -1, "unmarked": 0},
    )
    return exam


def running_job(exam: Exam, submission: Submission) -> tuple[AIJob, str]:
    job = AIJob.objects.create(
        job_type="omr_grading", tenant=exam.tenant, source_domain="submission", source_id=str(submission.pk)
    )
    claimed, token = job_claim(job_id=job.job_id, worker="test")
    assert claimed is not None
    return claimed, token


def test_result_rows_are_write_once(exam: Exam) -> None:
    job = AIJob.objects.create(job_type="ping", tenant=exam.tenant)
    result = AIResult.objects.create(job=job, payload={"a": 1})
    result.payload = {"a": 2}
    with pytest.raises(WriteOnceError):
        result.save()


def test_a_run_that_lost_its_lease_cannot_finish(exam: Exam) -> None:
    submission = Submission.objects.create(tenant=exam.tenant, exam=exam)
    job, token = running_job(exam, submission)
    finish = Finish(status=JobStatus.DONE, result={"answers": {}})
    assert job_finish(job_id=job.job_id, token="someone-else", finish=finish) is False
    assert job_finish(job_id=job.job_id, token=token, finish=finish) is True
    assert job_finish(job_id=job.job_id, token=token, finish=finish) is False  # already closed
    assert AIResult.objects.filter(job=job).count() == 1


def test_a_claim_that_takes_over_an_expired_lease_records_the_dead_run(exam: Exam) -> None:
    # A redelivered message can reach a job whose worker died before the sweeper does:
    # its claim (one statement on PostgreSQL, the ORM's on SQLite) says why it ran again.
    job = AIJob.objects.create(job_type="ping", tenant=exam.tenant, last_error="an older error")
    first, _ = job_claim(job_id=job.job_id, worker="host-a:41")
    assert first is not None
    assert first.last_error == "an older error"  # a first claim takes over nothing
    assert job_claim(job_id=job.job_id, worker="host-b:7") == (None, "not_claimable")  # still leased
    AIJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    second, _ = job_claim(job_id=job.job_id, worker="host-b:7")
    assert second is not None
    assert (second.attempt_count, second.locked_by) == (2, "host-b:7")
    # The same words the sweeper writes when it hands such a job back itself.
    assert second.last_error == "lease expired on host-a:41 (attempt 1)"
    # ... and the attempt it lost, which is what a run checks, not those words.
    assert (first.lease_lost_attempt, second.lease_lost_attempt) == (None, 1)
    assert (lease_lost(first), lease_lost(second)) == (False, True)
    AIJob.objects.filter(pk=job.pk).update(last_error="a processor error", lease_expires_at=timezone.now())
    third, _ = job_claim(job_id=job.job_id, worker="host-c:9")
    assert third is not None
    assert third.lease_lost_attempt == 2
    third.last_error = "a processor error"
    assert lease_lost(third)  # whatever last_error says now
    third.lease_lost_attempt = 1
    assert not lease_lost(third)  # an earlier run's lost lease is not this claim's


def test_the_sweeper_records_the_attempt_whose_lease_ran_out(exam: Exam) -> None:
    job = AIJob.objects.create(job_type="ping", tenant=exam.tenant)
    first, _ = job_claim(job_id=job.job_id, worker="host-a:41")
    assert first is not None
    AIJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert sweep_once()["requeued"] == 1
    job.refresh_from_db()
    assert (job.status, job.lease_lost_attempt, job.last_error) == (
        JobStatus.RETRYING,
        1,
        "lease expired on host-a:41 (attempt 1)",
    )
    second, _ = job_claim(job_id=job.job_id, worker="host-b:7")
    assert second is not None
    assert lease_lost(second)


def test_callback_applies_answers_and_grades_exactly_once(exam: Exam, django_capture_on_commit_callbacks: Any) -> None:
    submission = Submission.objects.create(tenant=exam.tenant, exam=exam)
    job, token = running_job(exam, submission)
    reading = {"student_id": "20260001", "answers": {"1": ["A"], "2": ["C"], "3": []}, "review": []}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_finish(job_id=job.job_id, token=token, finish=Finish(JobStatus.DONE, result=reading))
    assert len(callbacks) == 1  # the domain callback is published after commit

    assert job_callback_apply(job_id=job.job_id) is True
    assert job_callback_apply(job_id=job.job_id) is False  # a redelivered callback
    grade = Grade.objects.get(submission=submission)
    assert (grade.score, grade.max_score, grade.times_graded) == (5.0, 6.0, 1)
    assert grade.details["3"]["verdict"] == "unmarked"
    submission.refresh_from_db()
    assert (submission.student_id, submission.status) == ("20260001", SubmissionStatus.GRADED)


def test_grading_twice_keeps_one_grade_and_a_correction_regrades(exam: Exam) -> None:
    submission = Submission.objects.create(tenant=exam.tenant, exam=exam)
    submission.answers.create(question="1", detected=["A", "B"], flagged=True)
    submission.answers.create(question="2", detected=["B"])
    first = submission_grade(submission=submission)
    again = submission_grade(submission=submission)
    assert Grade.objects.filter(submission=submission).count() == 1
    assert first.score == again.score == 3 - 1 + 0  # double mark is incorrect (-1), q3 unmarked
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.NEEDS_REVIEW

    corrected = submission_correct(submission=submission, answers={"1": ["A"]})
    assert corrected.score == 5.0
    assert corrected.times_graded == 3
    submission.refresh_from_db()
    assert submission.status == SubmissionStatus.GRADED


def test_grading_on_its_own_runs_in_its_own_transaction(transactional_db: Any, exam: Exam) -> None:
    # Autocommit, as a shell or a management command calls it: the row lock needs the
    # service's own transaction.
    submission = Submission.objects.create(tenant=exam.tenant, exam=exam)
    submission.answers.create(question="1", detected=["A"])
    assert submission_grade(submission=submission).score == 2 + 0 + 0


def test_bulk_grading_matches_one_by_one_and_counts_a_regrade(exam: Exam, django_assert_max_num_queries: Any) -> None:
    sheets = [
        ({"1": ["A"], "2": ["C"]}, set(), "20260001"),  # 2 + 3 + unmarked 0
        ({"1": ["B"], "2": ["B", "C"], "3": ["D"]}, set(), "20260002"),  # -1, double mark -1, +1
        ({"1": ["A"], "3": ["C"]}, {"3"}, "20260003"),  # flagged: needs review
        ({"1": ["A"], "2": ["B"], "3": ["D"]}, set(), "2026?004"),  # unsure id digit
    ]
    bulk: list[Submission] = []
    single: list[Submission] = []
    for answers, flagged, student in sheets:
        for group in (bulk, single):
            submission = Submission.objects.create(
                tenant=exam.tenant, exam=exam, student_id=student, status=SubmissionStatus.READ
            )
            for question, marked in answers.items():
                submission.answers.create(question=question, detected=marked, flagged=question in flagged)
            group.append(submission)
    submission_grade(submission=bulk[1])  # graded once before, say by an earlier run
    key = AnswerKey.objects.get(exam=exam)

    with django_assert_max_num_queries(12):  # bounded whatever the number of sheets
        assert submissions_grade(submission_ids=[s.pk for s in bulk if s.pk != bulk[1].pk], key=key) == 3
    assert submissions_grade(submission_ids=[bulk[1].pk], key=key) == 1
    expected = []
    for submission in single:
        grade = submission_grade(submission=submission)
        submission.refresh_from_db()
        expected.append((grade.score, grade.max_score, grade.details, submission.status))
    got = []
    for submission in bulk:
        grade = Grade.objects.get(submission=submission)
        submission.refresh_from_db()
        got.append((grade.score, grade.max_score, grade.details, submission.status))
    assert got == expected
    assert [e[0] for e in expected] == [5.0, -1.0, 1.0, 6.0]
    assert [e[3] for e in expected] == [
        SubmissionStatus.GRADED, SubmissionStatus.GRADED, SubmissionStatus.NEEDS_REVIEW, SubmissionStatus.NEEDS_REVIEW
    ]  # fmt: skip
    assert [Grade.objects.get(submission=s).times_graded for s in bulk] == [1, 2, 1, 1]


def test_runtime_flag_flip_is_seen_after_the_cache_ttl(db: Any, settings: Any) -> None:
    settings.AI_FLAG_TTL_SECONDS = 0.2
    assert flags.flag_enabled(flags.SHADOW_MODE, default=True) is True
    RuntimeFlag.objects.create(key=flags.SHADOW_MODE, value="off")
    assert flags.flag_enabled(flags.SHADOW_MODE, default=True) is True  # still cached
    time.sleep(0.25)
    assert flags.flag_enabled(flags.SHADOW_MODE, default=True) is False


OMRCHECKER_EVALUATION = {
    "source_type": "custom",
    "options": {
        "questions_in_order": ["q1..4"],
        "answers_in_order": ["A", ["B", "C"], [["B", 2], ["C", "3/2"]], "D"],
    },
    "marking_schemes": {
        "DEFAULT": {"correct": "1", "incorrect": "-1/4", "unmarked": "0"},
        "HARD": {"questions": ["q4"], "marking": {"correct": 3, "incorrect": "-2/3", "unmarked": "1/2"}},
    },
}


@pytest.mark.parametrize(
    ("question", "marked", "expected"),
    [
        ("q1", ["A"], (1.0, 1.0, "correct")),
        ("q1", ["A", "B"], (-0.25, 1.0, "incorrect")),  # a double mark is not the answer
        ("q2", ["C"], (1.0, 1.0, "correct")),  # either of two accepted answers
        ("q3", ["B"], (2.0, 2.0, "correct")),
        ("q3", ["C"], (1.5, 2.0, "partial")),  # the weighted second-best answer
        ("q3", ["A"], (-0.25, 2.0, "incorrect")),
        ("q4", [], (0.5, 3.0, "unmarked")),  # the section's own scheme
        ("q4", ["A"], (-2 / 3, 3.0, "incorrect")),
    ],
)
def test_an_imported_omrchecker_key_scores_multi_correct_weighted_and_sectioned_answers(
    question: str, marked: list[str], expected: tuple[float, float, str]
) -> None:
    from academy.services.exams import answer_key_clean
    from academy.services.grading import score_answer

    questions, scheme = answer_key_clean({"omrchecker_evaluation": OMRCHECKER_EVALUATION})
    assert score_answer(marked=marked, spec=questions[question], scheme=scheme) == pytest.approx(expected)


def test_an_omrchecker_key_that_names_a_csv_file_is_refused() -> None:
    from academy.rejections import Rejection
    from academy.services.exams import answer_key_clean

    with pytest.raises(Rejection) as caught:
        answer_key_clean({"omrchecker_evaluation": {"source_type": "csv", "options": {}}})
    assert caught.value.code == "INVALID_PAYLOAD"
