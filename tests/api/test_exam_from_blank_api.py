"""An exam created with its blank card: ``POST /api/v1/exams/`` with ``blank_sheet`` and the
card's three counts proposes the exam's template (an ``omr_template`` job) and the exam
waits for the teacher's confirmation before any batch is read. Jobs run eagerly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.models import AIJob, Exam, JobStatus
from tests.omr import cards as C

pytestmark = pytest.mark.django_db(transaction=True)

CARD = C.red_card()
COUNTS = {"questions": 45, "choices": 5, "id_digits": 8}


def _blank() -> bytes:
    return C.blank_scan(CARD, seed="exam-blank")


def _create(teacher: Any, **fields: Any) -> Any:
    return teacher.post(
        "/api/v1/exams/",
        {"title": "5월 월례평가", "blank_sheet": SimpleUploadedFile("blank.jpg", _blank()), **fields},
        format="multipart",
    )


def test_an_exam_created_with_its_blank_card_waits_for_the_confirmed_proposal(eager: None, teacher: Any) -> None:
    created = _create(teacher, **COUNTS)
    assert created.status_code == 201, created.json()
    body = created.json()
    exam_id = body["exam_id"]
    job_id = body["template_job"]["job_id"]
    assert body["template_job"]["proposal_url"] == f"/review/exams/{exam_id}/proposals/{job_id}/"
    job = AIJob.objects.get(job_id=job_id)
    assert (job.job_type, job.status, job.source_id) == ("omr_template", JobStatus.DONE, str(exam_id))
    # Not the shipped 40-question sheet: no template until the teacher confirms.
    assert body["template"] == {}
    sheet = next(iter(C.make_cards(CARD, 1, "wait", upside_down=[False])))
    url = f"/api/v1/exams/{exam_id}/omr-batches/"
    waiting = teacher.post(url, {"files": [SimpleUploadedFile(sheet.name, sheet.data)]}, format="multipart")
    assert waiting.status_code == 400
    assert waiting.json()["rejection_code"] == "TEMPLATE_INVALID"
    assert "양식 제안을 확정" in waiting.json()["error"]

    confirmed = teacher.post(f"/api/v1/exams/{exam_id}/template-proposal/", {"job_id": job_id}, format="json")
    assert confirmed.status_code == 200, confirmed.json()
    assert [b["count"] for b in confirmed.json()["template"]["question_blocks"]] == [15, 15, 15]
    batch = teacher.post(url, {"files": [SimpleUploadedFile(sheet.name, sheet.data)]}, format="multipart")
    assert batch.status_code == 201, batch.json()
    read = teacher.get(f"{url}{batch.json()['batch_id']}/").json()["sheets"][0]
    assert read["student_id"] == sheet.truth.student_id


def test_an_exam_given_a_template_and_a_blank_card_reads_with_the_given_one_meanwhile(
    teacher: Any, eager: None
) -> None:
    created = _create(teacher, template=json.dumps("default"), **COUNTS)  # form fields carry JSON
    assert created.status_code == 201, created.json()
    template = Exam.objects.get(pk=created.json()["exam_id"]).sheet_template
    assert template
    assert len(template["question_blocks"]) >= 1
    assert AIJob.objects.filter(job_id=created.json()["template_job"]["job_id"]).exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"choices": 5}, "questions"),
        ({**COUNTS, "questions": 0}, "questions"),
        ({**COUNTS, "questions": "many"}, "questions"),
        ({**COUNTS, "choices": 1}, "choices"),
        ({**COUNTS, "choices": 11}, "choices"),
        ({**COUNTS, "id_digits": 13}, "id_digits"),
        ({**COUNTS, "id_digits": -1}, "id_digits"),
    ],
)
def test_bad_counts_are_refused_naming_the_field_and_nothing_is_made(
    teacher: Any, fields: dict[str, Any], field: str
) -> None:
    response = _create(teacher, **fields)
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["rejection_code"] == "INVALID_PAYLOAD"
    assert list(body["fields"]) == [field]
    assert f"({field})" in body["error"]
    assert any("\uac00" <= ch <= "\ud7a3" for ch in body["error"])  # the Korean message
    assert not Exam.objects.exists()
    assert not AIJob.objects.exists()


def test_a_json_exam_without_a_blank_card_still_gets_the_shipped_sheet(teacher: Any) -> None:
    created = teacher.post("/api/v1/exams/", {"title": "x"}, format="json")
    assert created.status_code == 201
    assert "template_job" not in created.json()
    assert created.json()["template"]["question_blocks"]


def test_a_count_out_of_range_says_which_and_the_range_in_korean(teacher: Any) -> None:
    response = _create(teacher, **{**COUNTS, "questions": 0})
    assert response.json()["error"] == "문항 수(questions): 값이 너무 작습니다. 1 이상으로 보내 주세요."


def test_the_exam_links_its_open_proposal_until_the_teacher_confirms_it(eager: None, teacher: Any) -> None:
    created = _create(teacher, **COUNTS).json()
    exam_id, job_id = created["exam_id"], created["template_job"]["job_id"]
    shown = teacher.get(f"/api/v1/exams/{exam_id}/").json()["template_proposal"]
    assert shown == {
        "job_id": job_id,
        "status": "DONE",
        "proposal_url": f"/review/exams/{exam_id}/proposals/{job_id}/",
    }
    confirmed = teacher.post(f"/api/v1/exams/{exam_id}/template-proposal/", {"job_id": job_id}, format="json")
    assert confirmed.status_code == 200
    assert confirmed.json()["template_proposal"] is None
    assert teacher.get(f"/api/v1/exams/{exam_id}/").json()["template_proposal"] is None


def test_an_exam_without_a_blank_card_has_no_proposal_and_a_failed_one_is_not_linked(eager: None, teacher: Any) -> None:
    plain = teacher.post("/api/v1/exams/", {"title": "plain", "template": "default"}, format="json").json()
    assert plain["template_proposal"] is None
    # Counts the card does not have: the job refuses, and there is nothing to confirm.
    refused = _create(teacher, questions=44, choices=5, id_digits=8).json()
    job = AIJob.objects.get(job_id=refused["template_job"]["job_id"])
    assert job.status not in (JobStatus.DONE, JobStatus.PENDING, JobStatus.RUNNING)
    assert teacher.get(f"/api/v1/exams/{refused['exam_id']}/").json()["template_proposal"] is None
