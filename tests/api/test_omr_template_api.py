"""A new answer card set up from one blank scan, through the HTTP API.

The teacher uploads the blank card with its three counts as an ``omr_template`` job; the
job's result is the proposed template and the picture of what was found (an artifact);
an exam created with that template grades the card's filled scans. Jobs run eagerly
(inline, on commit).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.models import AIJob, JobStatus
from tests.omr import cards as C
from tests.omr.corpus import degrade

pytestmark = pytest.mark.django_db(transaction=True)

CARD = C.red_card()
COUNTS = {"questions": 45, "choices": 5, "id_digits": 8}


def _blank() -> bytes:
    rng = random.Random("api-blank")
    data, _ = degrade(C.fill_card(CARD, rng, blank=True).page, rng, upside_down=False)
    return data


@pytest.fixture
def teacher(make_tenant: Any, api_for: Any) -> Any:
    _tenant, token = make_tenant()
    return api_for(token)


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
