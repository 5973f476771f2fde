"""Applying a reading to a submission, and grading it. Both are idempotent."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from academy.models import AnswerKey, Grade, Submission, SubmissionAnswer, SubmissionStatus


def _choices(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


@transaction.atomic
def submission_apply_result(*, submission: Submission, result: dict[str, Any]) -> Submission:
    """Store the reader's answers on the submission (replacing an earlier reading)."""
    answers = result.get("answers") or {}
    confidence = result.get("confidence") or {}
    review = {str(q) for q in (result.get("review") or [])}
    for question, detected in answers.items():
        SubmissionAnswer.objects.update_or_create(
            submission=submission,
            question=str(question),
            defaults={
                "detected": _choices(detected),
                "confidence": float(confidence.get(question, 1.0)),
                "flagged": str(question) in review,
            },
        )
    if result.get("student_id"):
        submission.student_id = str(result["student_id"])[:32]
    submission.save(update_fields=["student_id", "updated_at"])
    return submission


def score_answer(*, marked: list[str], correct: list[str], points: float, scheme: dict[str, Any]) -> tuple[float, str]:
    """One question's score and verdict: one mark among the accepted ones is right."""
    if not marked:
        return float(scheme.get("unmarked", 0)), "unmarked"
    if len(marked) == 1 and marked[0] in correct:
        return float(points), "correct"
    return float(scheme.get("incorrect", 0)), "incorrect"


@transaction.atomic
def submission_grade(*, submission: Submission) -> Grade:
    """Grade against the exam's key. Running it twice leaves one grade row."""
    submission = Submission.objects.select_for_update().get(pk=submission.pk)
    key = AnswerKey.objects.filter(exam_id=submission.exam_id).first()
    questions: dict[str, Any] = key.questions if key else {}
    scheme: dict[str, Any] = key.scheme if key else {}
    answers = {a.question: a for a in submission.answers.all()}
    score = 0.0
    max_score = 0.0
    details: dict[str, Any] = {}
    for question, spec in questions.items():
        points = float(spec.get("points", 1))
        answer = answers.get(question)
        marked = answer.final if answer else []
        earned, verdict = score_answer(
            marked=marked, correct=_choices(spec.get("correct")), points=points, scheme=scheme
        )
        score += earned
        max_score += points
        details[question] = {"marked": marked, "verdict": verdict, "points": earned}
    grade, created = Grade.objects.get_or_create(
        submission=submission, defaults={"score": score, "max_score": max_score, "details": details}
    )
    if not created:
        Grade.objects.filter(pk=grade.pk).update(
            score=score, max_score=max_score, details=details, times_graded=F("times_graded") + 1
        )
        grade.refresh_from_db()
    flagged = any(a.flagged and a.corrected is None for a in answers.values())
    submission.status = SubmissionStatus.NEEDS_REVIEW if flagged else SubmissionStatus.GRADED
    submission.save(update_fields=["status", "updated_at"])
    return grade


@transaction.atomic
def submission_answer_correct(*, submission: Submission, question: str, choices: list[str]) -> Grade:
    """A teacher's correction of one answer, then a regrade."""
    SubmissionAnswer.objects.update_or_create(
        submission=submission, question=question, defaults={"corrected": _choices(choices), "flagged": False}
    )
    return submission_grade(submission=submission)
