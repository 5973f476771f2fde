"""What the public API says to a client that got something wrong: a Korean message that
names the field and what is wrong, plain-text details, a JSON 404 for any unknown
address, strict booleans, a limit on forced reruns, and student ids as a sheet marks them."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from academy.models import AIJob, Submission
from academy.rejections import REJECTION_MESSAGES
from tests.badinput import corpus

GENERIC = REJECTION_MESSAGES["INVALID_PAYLOAD"]


@pytest.fixture
def media(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


@pytest.fixture
def api(make_tenant: Any, api_for: Any) -> Any:
    _, token = make_tenant()
    with mock.patch("academy.jobs.sending.job_send", return_value="task-x"):
        yield api_for(token)


def _no_reprs(body: dict[str, Any]) -> None:
    text = json.dumps(body, ensure_ascii=False)
    assert "ErrorDetail" not in text, text
    assert "string=" not in text, text


# --- field-specific messages, plain details -------------------------------------------------


@pytest.mark.parametrize(
    ("request_body", "field", "korean"),
    [
        ({"payload": {}}, "job_type", "값이 필요합니다"),
        ({"job_type": "x" * 65}, "job_type", "64자 이하"),
        ({"job_type": "ping", "tier": "gold"}, "tier", "lite, basic, premium"),
        ({"job_type": "ping", "force_rerun": "yes"}, "force_rerun", "형식"),
        ({"job_type": "ping", "idempotency_key": "k" * 201}, "idempotency_key", "200자 이하"),
    ],
    ids=["missing-job-type", "long-job-type", "unknown-tier", "yes-as-boolean", "long-key"],
)
def test_a_bad_field_gets_a_korean_message_that_names_it(
    api: Any, request_body: dict[str, Any], field: str, korean: str
) -> None:
    response = api.post("/api/v1/jobs/", request_body, format="json")
    body = response.json()
    assert (response.status_code, body["rejection_code"]) == (400, "INVALID_PAYLOAD"), body
    assert body["error"] != GENERIC
    assert f"({field})" in body["error"], body["error"]
    assert korean in body["error"], body["error"]
    assert isinstance(body["detail"], str)
    assert field in body["detail"]
    assert body["fields"][field]
    assert all(isinstance(m, str) for m in body["fields"][field])
    _no_reprs(body)


def test_two_bad_fields_are_both_named(api: Any) -> None:
    body = api.post("/api/v1/jobs/", {"tier": "gold"}, format="json").json()
    assert "(job_type)" in body["error"], body["error"]
    assert "(tier)" in body["error"], body["error"]
    assert set(body["fields"]) == {"job_type", "tier"}


def test_a_multipart_payload_that_is_not_json_names_the_payload(api: Any) -> None:
    request = {"job_type": "excel_parsing", "payload": "{not json", "file": SimpleUploadedFile("r.csv", b"a,b\n")}
    body = api.post("/api/v1/jobs/", request, format="multipart").json()
    assert body["rejection_code"] == "INVALID_PAYLOAD"
    assert "(payload)" in body["error"], body["error"]


def test_a_processor_parameter_refused_at_dispatch_is_named_in_korean(api: Any) -> None:
    body = api.post("/api/v1/jobs/", {"job_type": "ping", "payload": {"echo": 12}}, format="json").json()
    assert body["rejection_code"] == "INVALID_PAYLOAD", body
    assert "'echo'" in body["error"], body["error"]
    assert "문자열" in body["error"], body["error"]


def test_a_bad_exam_field_gets_a_named_message_and_plain_detail(api: Any) -> None:
    body = api.post("/api/v1/exams/", {"title": ""}, format="json").json()
    assert body["rejection_code"] == "INVALID_PAYLOAD"
    assert "시험 제목(title)" in body["error"], body["error"]
    _no_reprs(body)


def test_an_answer_key_question_that_is_wrong_is_named(api: Any) -> None:
    key = {"questions": {"1": {"correct": ["1"]}, "7": {"correct": []}}}
    body = api.post("/api/v1/exams/", {"title": "x", "answer_key": key}, format="json").json()
    assert body["rejection_code"] == "INVALID_PAYLOAD", body
    assert "정답(answer_key): 7번 문항" in body["error"], body["error"]


@pytest.mark.parametrize(
    ("answers", "korean"),
    [
        ({"999": ["1"]}, "999번 문항은 이 시험에 없습니다"),
        ({"1": 3}, "1번 문항의 답은 선택지 목록으로"),
        ({"1": ["9"]}, "1번 문항에 이 답안지에 없는 선택지"),
    ],
    ids=["unknown-question", "not-a-list", "not-a-choice"],
)
def test_a_correction_that_is_wrong_names_the_question(submission: Any, answers: Any, korean: str) -> None:
    api, sheet = submission
    body = api.patch(f"/api/v1/submissions/{sheet.pk}/", {"answers": answers}, format="json").json()
    assert body["rejection_code"] == "INVALID_PAYLOAD", body
    assert "답안(answers)" in body["error"], body["error"]
    assert korean in body["error"], body["error"]


# --- JSON 404 under /api/ ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/exams/abc/", "/api/v1/nothing-here/", "/api/v2/jobs/", "/api/", "/api/v1/jobs/x/y/z/"]
)
def test_an_unknown_address_under_api_is_a_json_404(api: Any, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    assert response.json()["rejection_code"] == "NOT_FOUND"
    assert response.json()["error"] == REJECTION_MESSAGES["NOT_FOUND"]


def test_an_unknown_api_address_is_a_json_404_with_debug_on_too(api: Any, settings: Any) -> None:
    settings.DEBUG = True  # the demo runs with DEBUG: its 404 page is HTML
    response = api.post("/api/v1/exams/abc/", {}, format="json")
    assert response.status_code == 404
    assert response.json()["rejection_code"] == "NOT_FOUND"


def test_an_unknown_api_address_without_its_slash_ends_at_a_json_404(api: Any) -> None:
    response = api.get("/api/v1/exams/abc", follow=True)
    assert response.status_code == 404
    assert response.json()["rejection_code"] == "NOT_FOUND"


# --- strict booleans -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "on", "t", "y", 1, 0, "true", "1", None])
def test_force_rerun_in_json_takes_only_a_boolean(api: Any, value: Any) -> None:
    response = api.post("/api/v1/jobs/", {"job_type": "ping", "force_rerun": value}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["rejection_code"] == "INVALID_PAYLOAD"
    assert not AIJob.objects.exists()


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False)])
def test_force_rerun_in_json_takes_true_and_false(api: Any, value: bool, expected: bool) -> None:
    response = api.post("/api/v1/jobs/", {"job_type": "ping", "force_rerun": value}, format="json")
    assert response.status_code == 202, response.json()
    assert AIJob.objects.get(job_id=response.json()["job_id"]).force_rerun is expected


def _form_dispatch(api: Any, force_rerun: str) -> Any:
    """A multipart dispatch, as a form sends it: every value a string, with its file."""
    request = {
        "job_type": "excel_parsing",
        "payload": "{}",
        "force_rerun": force_rerun,
        "file": SimpleUploadedFile("roster.csv", corpus.ROSTER_OK),
    }
    return api.post("/api/v1/jobs/", request, format="multipart")


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("True", True), ("1", True), ("false", False), ("0", False)]
)
def test_force_rerun_in_a_form_takes_the_usual_words(api: Any, value: str, expected: bool, media: Any) -> None:
    response = _form_dispatch(api, value)
    assert response.status_code == 202, response.json()
    assert AIJob.objects.get(job_id=response.json()["job_id"]).force_rerun is expected


@pytest.mark.parametrize("value", ["yes", "on", "y", "2", "truth"])
def test_force_rerun_in_a_form_refuses_anything_else(api: Any, value: str, media: Any) -> None:
    response = _form_dispatch(api, value)
    assert response.status_code == 400
    assert "(force_rerun)" in response.json()["error"]
    assert not AIJob.objects.exists()


# --- force_rerun throttle ------------------------------------------------------------------


@override_settings(AI_FORCE_RERUN_PER_HOUR=3)
def test_forced_reruns_are_limited_per_tenant_per_hour(make_tenant: Any, api_for: Any) -> None:
    _, token = make_tenant()
    _, other_token = make_tenant()
    rerun = {"job_type": "ping", "force_rerun": True, "idempotency_key": "same"}
    with mock.patch("academy.jobs.sending.job_send", return_value="task-x"):
        api = api_for(token)
        assert [api.post("/api/v1/jobs/", rerun, format="json").status_code for _ in range(3)] == [202] * 3

        refused = api.post("/api/v1/jobs/", rerun, format="json")
        assert refused.status_code == 429
        assert refused.json()["rejection_code"] == "RERUN_THROTTLED"
        assert refused.json()["error"] == REJECTION_MESSAGES["RERUN_THROTTLED"]
        assert 0 < int(refused["Retry-After"]) <= 3600
        assert AIJob.objects.filter(force_rerun=True).count() == 3

        # An ordinary dispatch is not limited, nor is another academy's rerun.
        assert api.post("/api/v1/jobs/", {"job_type": "ping"}, format="json").status_code == 202
        assert api_for(other_token).post("/api/v1/jobs/", rerun, format="json").status_code == 202


@pytest.mark.django_db(transaction=True)
@override_settings(AI_FORCE_RERUN_PER_HOUR=2)
def test_concurrent_forced_reruns_do_not_pass_the_limit_together(make_tenant: Any, api_for: Any) -> None:
    """Reruns sent at once count one another (the tenant row is locked while one counts)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    _, token = make_tenant()
    rerun = {"job_type": "ping", "force_rerun": True}

    def send(_: int) -> int:
        try:
            return int(api_for(token).post("/api/v1/jobs/", rerun, format="json").status_code)
        finally:
            connections.close_all()

    with mock.patch("academy.jobs.sending.job_send", return_value="task-x"), ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(send, range(6)))
    assert codes == [202, 202, 429, 429, 429, 429]
    assert AIJob.objects.filter(force_rerun=True).count() == 2


# --- student_id corrections ------------------------------------------------------------------


@pytest.fixture
def submission(make_tenant: Any, api_for: Any) -> tuple[Any, Submission]:
    from academy.models import Exam

    tenant, token = make_tenant()
    api = api_for(token)
    key = {"questions": {"1": {"correct": ["1"]}}}
    exam_id = api.post("/api/v1/exams/", {"title": "학번", "answer_key": key}, format="json").json()["exam_id"]
    exam = Exam.objects.get(pk=exam_id)
    assert exam.sheet_template["student_id"]["digits"] == 8
    return api, Submission.objects.create(exam=exam, tenant=tenant, student_id="20260001")


@pytest.mark.parametrize(
    "student_id",
    [
        "<script>",
        "2026000a",
        "2026-0001",
        "2026001",
        "202600011",
        "\uff12\uff10\uff12\uff16\uff10\uff10\uff10\uff11",
        "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
        "20260001\n<b>",
    ],
    ids=["script", "letter", "dash", "too-short", "too-long", "fullwidth", "arabic-digits", "newline-html"],
)
def test_a_student_id_correction_takes_only_the_sheets_digits(submission: Any, student_id: str) -> None:
    api, sheet = submission
    response = api.patch(f"/api/v1/submissions/{sheet.pk}/", {"student_id": student_id}, format="json")
    body = response.json()
    assert response.status_code == 400, body
    assert body["rejection_code"] == "INVALID_PAYLOAD"
    assert "학번(student_id)" in body["error"], body["error"]
    assert "8자리" in body["error"], body["error"]
    sheet.refresh_from_db()
    assert sheet.student_id == "20260001"


def test_a_student_id_correction_of_the_right_digits_is_kept(submission: Any) -> None:
    api, sheet = submission
    response = api.patch(f"/api/v1/submissions/{sheet.pk}/", {"student_id": " 20269999 "}, format="json")
    assert response.status_code == 200, response.json()
    sheet.refresh_from_db()
    assert sheet.student_id == "20269999"
