"""The bad-input corpus through the real dispatch path: the right code, the Korean message, no harm.

See tests/badinput/corpus.py for the cases and what each ``stage`` means.
"""

from __future__ import annotations

import io
import json
from typing import Any, cast

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse

from academy.models import AIJob, JobStatus, OmrBatch, Submission
from academy.rejections import REJECTION_MESSAGES
from tests.badinput import corpus
from tests.badinput.conftest import World

CASES = corpus.cases()


def by_stage(*stages: str) -> list[Any]:
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
        for c in CASES
        if c.stage in stages
    ]


def assert_refused(response: Any, code: str, http: int = 400) -> None:
    body = response.json()
    assert response.status_code == http, body
    assert body["ok"] is False
    assert body["rejection_code"] == code, body
    if code == "INVALID_PAYLOAD":  # a message of its own, naming the field or part that is wrong
        assert body["error"], body
        assert body["error"] != REJECTION_MESSAGES[code], body
        assert "ErrorDetail" not in json.dumps(body, ensure_ascii=False)
    else:
        assert body["error"] == REJECTION_MESSAGES[code]


def job_of(response: Any) -> AIJob:
    assert response.status_code == 202, response.json()
    return AIJob.objects.get(job_id=response.json()["job_id"])


def assert_worker_still_runs(world: World) -> None:
    """After a refusal the pool goes on: a good roster import completes."""
    good = corpus.Case("good", corpus.ROSTER_OK, "excel_parsing", {}, None, "done", "roster.csv")
    job = job_of(world.dispatch(good))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, (job.status, job.error_message)


# --------------------------------------------------------------------------- pre-validation


@pytest.mark.parametrize("case", by_stage("pre"))
def test_refused_before_any_job_exists(world: World, case: corpus.Case) -> None:
    assert_refused(world.dispatch(case), case.expected_code or "")
    assert not AIJob.objects.exists()


# --------------------------------------------------------------------------- worker


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", by_stage("worker"))
def test_refused_by_the_worker_which_keeps_running(eager: None, world: World, case: corpus.Case) -> None:
    job = job_of(world.dispatch(case))
    job.refresh_from_db()
    assert (job.status, job.rejection_code) == (JobStatus.REJECTED_BAD_INPUT, case.expected_code), job.flags
    body = world.api.get(f"/api/v1/jobs/{job.job_id}/").json()
    assert (body["status"], body["rejection_code"]) == ("REJECTED_BAD_INPUT", case.expected_code)
    assert body["error_message"] == REJECTION_MESSAGES[case.expected_code or ""]
    assert_worker_still_runs(world)


@pytest.mark.django_db(transaction=True)
def test_a_video_that_is_really_an_image_is_refused(eager: None, world: World) -> None:
    from workers import registry

    if "homework_video_analysis" not in registry.BUILTIN or registry.get("homework_video_analysis") is None:
        pytest.skip("homework_video_analysis is not registered in workers/registry.py yet")
    case = corpus.Case(
        "video-is-png",
        corpus.noise_image(".png"),
        "homework_video_analysis",
        {},
        "INVALID_FORMAT",
        "worker",
        "clip.mp4",
    )
    response = world.dispatch(case)
    if response.status_code == 400:  # a build that sniffs videos at dispatch refuses it there
        assert_refused(response, "INVALID_FORMAT")
        return
    job = job_of(response)
    job.refresh_from_db()
    assert (job.status, job.rejection_code) == (JobStatus.REJECTED_BAD_INPUT, "INVALID_FORMAT")
    assert_worker_still_runs(world)


# --------------------------------------------------------------------------- accepted, defused


def _case(name: str) -> corpus.Case:
    return next(c for c in CASES if c.name == name)


@pytest.mark.django_db(transaction=True)
def test_formulas_in_a_roster_stay_inert_text(eager: None, world: World) -> None:
    job = job_of(world.dispatch(_case("csv-formula-injection")))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error_message
    result = world.api.get(f"/api/v1/jobs/{job.job_id}/").json()["result"]
    rows = result["rows"]
    assert len(rows) == len(corpus.FORMULAS)
    # The import returns exactly the text that was sent: nothing evaluated ("+1+1" is not 2),
    # nothing fetched; the export (below) is where a spreadsheet could run it, and neutralises it.
    assert [r["name"] for r in rows] == list(corpus.FORMULAS)
    assert [r["memo"] for r in rows] == list(corpus.FORMULAS)


@pytest.mark.django_db(transaction=True)
def test_formulas_in_an_xlsx_roster_are_not_evaluated_or_imported(eager: None, world: World) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["이름", "연락처"])
    sheet.append(["=1+1", "010-1234-5678"])
    sheet.append(['=HYPERLINK("http://evil.example","x")', "010-1234-5679"])
    buffer = io.BytesIO()
    book.save(buffer)
    case = corpus.Case("xlsx-formula", buffer.getvalue(), "excel_parsing", {}, None, "done", "roster.xlsx")
    job = job_of(world.dispatch(case))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error_message
    result = world.api.get(f"/api/v1/jobs/{job.job_id}/").json()["result"]
    # Read with cached values only: a formula cell nobody calculated is empty, never "2"
    # and never the formula text; both rows are refused for their empty name.
    assert result["rows"] == []
    assert {e["field"] for e in result["errors"]} == {"name"}


@pytest.mark.django_db(transaction=True)
def test_formulas_in_an_export_are_neutralised(eager: None, world: World) -> None:
    import openpyxl

    job = job_of(world.dispatch(_case("export-formula-injection")))
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error_message
    result = world.api.get(f"/api/v1/jobs/{job.job_id}/").json()["result"]
    download = world.api.get(result["download_url"])
    assert download.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(download.getvalue()))
    sheet = book.active
    assert sheet is not None
    cells = [c for row in sheet.iter_rows(min_row=2) for c in row if isinstance(c.value, str)]
    assert len(cells) == 2 * len(corpus.FORMULAS)
    for cell in cells:
        assert cell.data_type != "f", cell.value  # stored as text, not as a formula
        value = cell.value
        assert isinstance(value, str)  # as the list above already chose
        assert value.startswith("'"), value
        assert value[1:] in corpus.FORMULAS


@pytest.mark.django_db(transaction=True)
def test_a_jpeg_with_a_zip_appended_is_read_as_the_jpeg(eager: None, world: World) -> None:
    from workers.omr.render import filled_sheet_jpeg
    from workers.omr.template import default_template

    sheet = filled_sheet_jpeg(default_template(), student_id="20261234", answers={})
    job = job_of(world.dispatch(_case("jpeg-plus-zip-sheet"), data=corpus.jpeg_with_zip_appended(sheet)))
    job.refresh_from_db()
    assert job.status in (JobStatus.DONE, JobStatus.REVIEW_REQUIRED), (job.status, job.error_message)
    body = world.api.get(f"/api/v1/jobs/{job.job_id}/").json()
    assert body["result"]["student_id"] == "20261234"
    # The appended archive was stored as part of the one upload and never unpacked.
    stored = list((world.media / "tenants" / world.tenant.slug / "uploads").rglob("*"))
    assert not [p for p in stored if p.name == "payload.sh"]


# --------------------------------------------------------------------------- OMR batches


def batch_post(world: World, case: corpus.Case) -> Any:
    upload = SimpleUploadedFile(case.filename, case.data or b"")
    return world.api.post(f"/api/v1/exams/{world.exam_id}/omr-batches/", {"files": [upload]}, format="multipart")


@pytest.mark.parametrize("case", by_stage("batch"))
def test_a_batch_with_no_usable_sheet_is_refused(world: World, case: corpus.Case) -> None:
    assert_refused(batch_post(world, case), case.expected_code or "")
    assert not OmrBatch.objects.exists()
    assert not AIJob.objects.exists()


@pytest.mark.parametrize("case", by_stage("sheet"))
def test_a_bad_sheet_is_refused_in_its_batch(world: World, case: corpus.Case) -> None:
    response = batch_post(world, case)
    assert response.status_code == 201, response.json()
    sheets = response.json()["sheets"]
    assert sheets
    for sheet in sheets:
        assert sheet["rejection_code"] == case.expected_code, sheet
        if case.expected_code:
            assert (sheet["status"], sheet["job_id"]) == ("REJECTED", None)
            assert sheet["message"] == REJECTION_MESSAGES[case.expected_code]
    # Whatever the names inside an archive say, every file lands in this academy's uploads.
    prefix = f"tenants/{world.tenant.slug}/uploads/"
    for path in Submission.objects.values_list("source_file", flat=True):
        assert path.startswith(prefix), path
        assert ".." not in path, path
    root = world.media.resolve()
    for written in world.media.parent.rglob("*"):
        if written.is_file() and not written.is_symlink() and "outside" not in written.parts:
            assert root in written.resolve().parents, written
    assert not any(p.name in ("evil.jpg", "x.jpg", "win.jpg") for p in world.media.parent.parent.glob("*"))


# --------------------------------------------------------------------------- the web layer


def test_a_body_over_data_upload_max_memory_size_is_413(world: World, settings: Any) -> None:
    body = json.dumps({"job_type": "ping", "payload": {"echo": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}})
    response = world.api.generic("POST", "/api/v1/jobs/", body, content_type="application/json")
    assert_refused(response, "PAYLOAD_TOO_LARGE", 413)
    assert not AIJob.objects.exists()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/xml", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><job><job_type>ping</job_type></job>'),
        ("application/x-yaml", "job_type: ping\n"),
        ("application/octet-stream", "\x00\x01"),
    ],
)
def test_a_wrong_content_type_is_415_with_a_code(world: World, content_type: str, body: str) -> None:
    response = world.api.generic("POST", "/api/v1/jobs/", body, content_type=content_type)
    assert_refused(response, "INVALID_FORMAT", 415)


@pytest.mark.parametrize(
    "body",
    [
        b'{"job_type": "ping", "payload": {"echo": "\xff\xfe"}}',  # not UTF-8
        b'{"job_type": "ping", "payload": NaN}',
        b'{"job_type": "ping", "job_type": ["ping"]}',
    ],
    ids=["invalid-utf8", "nan", "duplicate-key-list"],
)
def test_malformed_json_is_400_with_a_code(world: World, body: bytes) -> None:
    # DRF's stubs type generic()'s data as str; Django sends bytes as they are, and these must not be UTF-8.
    response = world.api.generic("POST", "/api/v1/jobs/", body, content_type="application/json")  # type: ignore[arg-type]
    assert response.status_code == 400, response.content
    assert response.json()["rejection_code"] == "INVALID_PAYLOAD"
    assert not AIJob.objects.exists()


@pytest.mark.parametrize("how", ["json-body", "multipart-payload"])
def test_deeply_nested_json_is_refused_not_a_crash(world: World, how: str) -> None:
    depth = 50_000
    nested = "[" * depth + "]" * depth
    if how == "json-body":
        body = '{"job_type": "ping", "payload": {"x": ' + nested + "}}"
        # APIClient inherits generic()'s stub from APIRequestFactory, which says it returns a Request.
        response = cast(HttpResponse, world.api.generic("POST", "/api/v1/jobs/", body, content_type="application/json"))
    else:
        upload = SimpleUploadedFile("roster.csv", corpus.ROSTER_OK)
        request = {"job_type": "excel_parsing", "payload": '{"x": ' + nested + "}", "file": upload}
        response = world.api.post("/api/v1/jobs/", request, format="multipart")
    assert_refused(response, "INVALID_PAYLOAD")
    assert not AIJob.objects.exists()


def test_a_multipart_payload_that_is_not_json_is_400(world: World) -> None:
    upload = SimpleUploadedFile("roster.csv", corpus.ROSTER_OK)
    request = {"job_type": "excel_parsing", "payload": "{not json", "file": upload}
    assert_refused(world.api.post("/api/v1/jobs/", request, format="multipart"), "INVALID_PAYLOAD")


def test_a_file_for_a_job_type_that_takes_none_is_400(world: World) -> None:
    upload = SimpleUploadedFile("x.csv", corpus.ROSTER_OK)
    request = {"job_type": "ping", "payload": "{}", "file": upload}
    assert_refused(world.api.post("/api/v1/jobs/", request, format="multipart"), "INVALID_PAYLOAD")
    assert not AIJob.objects.exists()


def test_the_corpus_is_large_enough_and_every_code_is_known() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    for case in CASES:
        assert case.expected_code is None or case.expected_code in REJECTION_MESSAGES, case.name
