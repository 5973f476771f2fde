"""A new answer card set up from one blank scan, through the HTTP API.

The teacher uploads the blank card with its three counts as an ``omr_template`` job; the
job's result is the proposed template and the picture of what was found (an artifact);
an exam created with that template grades the card's filled scans. Jobs run eagerly
(inline, on commit).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.models import AIJob, JobStatus
from tests.omr import cards as C

pytestmark = pytest.mark.django_db(transaction=True)

CARD = C.red_card()
COUNTS = {"questions": 45, "choices": 5, "id_digits": 8}


def _blank() -> bytes:
    return C.blank_scan(CARD, seed="api-blank")


@pytest.fixture
def no_broker() -> Any:
    from unittest import mock

    with mock.patch("academy.jobs.sending.job_send", return_value="task-x") as publish:
        yield publish


def _propose(teacher: Any, payload: dict[str, Any]) -> dict[str, Any]:
    import json

    response = teacher.post(
        "/api/v1/jobs/",
        {
            "job_type": "omr_template",
            "tier": "basic",
            "payload": json.dumps(payload),
            "file": SimpleUploadedFile("blank.jpg", _blank()),
        },
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    body: dict[str, Any] = teacher.get(f"/api/v1/jobs/{response.json()['job_id']}/").json()
    return body


def test_a_blank_card_upload_proposes_a_template_and_an_exam_grades_with_it(eager: None, teacher: Any) -> None:
    job = _propose(teacher, COUNTS)
    assert job["status"] == JobStatus.DONE, job
    template = job["result"]["template"]
    assert [b["count"] for b in template["question_blocks"]] == [15, 15, 15]
    assert template["student_id"]["digits"] == 8
    picture = teacher.get(f"/api/v1/jobs/{job['job_id']}/artifacts/proposal.png/")
    assert picture.status_code == 200
    assert b"".join(picture.streaming_content).startswith(b"\x89PNG")

    # The teacher confirms: the exam is created with the proposed template.
    sheets = list(C.make_cards(CARD, 2, "api", upside_down=[False, True]))
    truth = sheets[0].truth
    key = {q.removeprefix("q"): {"correct": list(v) or ["1"], "points": 1} for q, v in truth.answers.items()}
    created = teacher.post(
        "/api/v1/exams/",
        {"title": "4월 월례평가", "answer_key": {"questions": key}, "template": template},
        format="json",
    )
    assert created.status_code == 201, created.json()
    exam_id = created.json()["exam_id"]
    batch = teacher.post(
        f"/api/v1/exams/{exam_id}/omr-batches/",
        {"files": [SimpleUploadedFile(s.name, s.data) for s in sheets]},
        format="multipart",
    )
    assert batch.status_code == 201, batch.json()
    body = teacher.get(f"/api/v1/exams/{exam_id}/omr-batches/{batch.json()['batch_id']}/").json()
    read = {s["sheet"]: s for s in body["sheets"]}
    assert read[sheets[0].name]["student_id"] == truth.student_id
    assert read[sheets[1].name]["student_id"] == sheets[1].truth.student_id
    assert read[sheets[0].name]["status"] in ("GRADED", "REVIEW")


def test_counts_that_do_not_match_the_blank_are_refused_with_what_was_found(eager: None, teacher: Any) -> None:
    job = _propose(teacher, {**COUNTS, "questions": 44})
    assert job["status"] == JobStatus.REJECTED_BAD_INPUT
    assert job["rejection_code"] == "BLANK_COUNTS_MISMATCH"
    assert job["error_message"]  # the Korean message
    assert job["flags"]["rejection_detail"] == "found 45 question rows of 5, expected 44"
    assert job["result"] is None
    assert AIJob.objects.get(job_id=job["job_id"]).status == JobStatus.REJECTED_BAD_INPUT


def test_bad_counts_are_refused_before_a_job_runs(teacher: Any) -> None:
    import json

    response = teacher.post(
        "/api/v1/jobs/",
        {
            "job_type": "omr_template",
            "payload": json.dumps({"questions": 0, "choices": 5}),
            "file": SimpleUploadedFile("blank.jpg", _blank()),
        },
        format="multipart",
    )
    assert response.status_code == 400, response.json()
    assert response.json()["rejection_code"] == "INVALID_PAYLOAD"


def test_the_teacher_confirms_a_proposal_row_wise_and_the_exams_batches_read_with_it(
    eager: None, teacher: Any, make_tenant: Any, api_for: Any
) -> None:
    job = _propose(teacher, COUNTS)
    created = teacher.post("/api/v1/exams/", {"title": "4월 월례평가"}, format="json")
    exam_id = created.json()["exam_id"]
    url = f"/api/v1/exams/{exam_id}/template-proposal/"

    # Another academy can neither see the exam nor use the proposal.
    stranger = api_for(make_tenant()[1])
    assert stranger.post(url, {"job_id": job["job_id"]}, format="json").status_code == 404
    own = stranger.post("/api/v1/exams/", {"title": "x"}, format="json").json()["exam_id"]
    refused = stranger.post(f"/api/v1/exams/{own}/template-proposal/", {"job_id": job["job_id"]}, format="json")
    assert refused.status_code == 400
    assert refused.json()["rejection_code"] == "INVALID_SOURCE"

    confirmed = teacher.post(url, {"job_id": job["job_id"], "numbering": "rows"}, format="json")
    assert confirmed.status_code == 200, confirmed.json()
    blocks = confirmed.json()["template"]["question_blocks"]
    # Three blocks side by side, numbered across: 1, 2, 3 on the first row, 4 under 1.
    assert [(b["first"], b["step"]) for b in blocks] == [(1, 3), (2, 3), (3, 3)]

    sheet = next(iter(C.make_cards(CARD, 1, "rows", upside_down=[False])))
    # The card prints its questions down each column: its question 16 is row-wise 2.
    by_column = {int(q.removeprefix("q")): v for q, v in sheet.truth.answers.items()}
    row_wise = {1 + (n - 1) // 15 + 3 * ((n - 1) % 15): v for n, v in by_column.items()}
    key = {str(n): {"correct": list(v) or ["1"], "points": 1} for n, v in row_wise.items()}
    assert teacher.put(f"/api/v1/exams/{exam_id}/answer-key/", {"questions": key}, format="json").status_code == 200
    batch = teacher.post(
        f"/api/v1/exams/{exam_id}/omr-batches/",
        {"files": [SimpleUploadedFile(sheet.name, sheet.data)]},
        format="multipart",
    )
    assert batch.status_code == 201, batch.json()
    body = teacher.get(f"/api/v1/exams/{exam_id}/omr-batches/{batch.json()['batch_id']}/").json()
    read = body["sheets"][0]
    assert read["student_id"] == sheet.truth.student_id
    submission = teacher.get(f"/api/v1/submissions/{read['submission_id']}/").json()
    answers = {a["question"]: a for a in submission["answers"]}
    assert len(answers) == 45
    for number, truth in row_wise.items():
        answer = answers[str(number)]
        assert answer["flagged"] or sorted(answer["detected"]) == sorted(truth), (number, answer, truth)
    assert sum(a["flagged"] for a in answers.values()) <= 2

    # Once sheets are read with it, the exam keeps its template.
    again = teacher.post(url, {"job_id": job["job_id"]}, format="json")
    assert again.status_code == 400
    assert again.json()["rejection_code"] == "INVALID_PAYLOAD"


def test_a_job_that_is_not_a_template_proposal_cannot_be_confirmed(teacher: Any, no_broker: Any) -> None:
    ping = teacher.post("/api/v1/jobs/", {"job_type": "ping"}, format="json").json()["job_id"]
    exam_id = teacher.post("/api/v1/exams/", {"title": "x"}, format="json").json()["exam_id"]
    response = teacher.post(f"/api/v1/exams/{exam_id}/template-proposal/", {"job_id": ping}, format="json")
    assert response.status_code == 400
    assert response.json()["rejection_code"] == "INVALID_SOURCE"
