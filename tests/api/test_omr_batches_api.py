"""OMR batches through the HTTP API: upload, one job per sheet, progress, grading, correction.

Jobs run eagerly here (inline, on commit); tests/integration runs a batch through the
real basic pool.
"""

from __future__ import annotations

import io
import zipfile
from functools import cache
from typing import Any

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.jobs.claims import job_claim
from academy.jobs.finish import Finish, job_finish
from academy.models import AIJob, Exam, Grade, JobStatus, OmrBatch, Submission, SubmissionStatus
from academy.services.callbacks import job_callback_apply
from academy.services.omr_batches import Upload, omr_batch_create
from workers.omr.render import filled_sheet_jpeg
from workers.omr.template import default_template

pytestmark = pytest.mark.django_db(transaction=True)

SHEET = default_template()
KEY = {q.label: q.values[i % len(q.values)] for i, q in enumerate(SHEET.questions)}


def wrong(label: str) -> str:
    return "5" if KEY[label] != "5" else "4"


@cache
def sheet_jpeg(student_id: str, wrong_questions: tuple[str, ...] = ()) -> bytes:
    answers = {q: (wrong(q) if q in wrong_questions else a) for q, a in KEY.items()}
    return filled_sheet_jpeg(SHEET, student_id=student_id, answers=answers)


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


@pytest.fixture
def exam_id(teacher: Any) -> int:
    answer_key = {"questions": {q: {"correct": [a], "points": 2} for q, a in KEY.items()}}
    response = teacher.post("/api/v1/exams/", {"title": "모의고사", "answer_key": answer_key}, format="json")
    assert response.status_code == 201, response.json()
    return int(response.json()["exam_id"])


def batch_post(teacher: Any, exam_id: int, *files: SimpleUploadedFile, **fields: str) -> Any:
    return teacher.post(f"/api/v1/exams/{exam_id}/omr-batches/", {"files": list(files), **fields}, format="multipart")


def test_a_batch_is_read_sheet_by_sheet_and_graded_once_when_the_last_sheet_settles(
    eager: None, teacher: Any, exam_id: int
) -> None:
    response = batch_post(
        teacher,
        exam_id,
        upload("kim.jpg", sheet_jpeg("20260001")),
        upload("lee.jpg", sheet_jpeg("20260002", ("3", "7"))),
        upload("broken.jpg", sheet_jpeg("20260003")[:5000]),
    )
    assert response.status_code == 201, response.json()
    batch_id = response.json()["batch_id"]

    body = teacher.get(f"/api/v1/exams/{exam_id}/omr-batches/{batch_id}/").json()
    assert (body["total_sheets"], body["settled"], body["percent"], body["graded"]) == (3, 3, 100, True)
    sheets = {s["sheet"]: s for s in body["sheets"]}
    assert (sheets["kim.jpg"]["status"], sheets["kim.jpg"]["score"], sheets["kim.jpg"]["max_score"]) == (
        "GRADED",
        80.0,
        80.0,
    )
    assert (sheets["lee.jpg"]["student_id"], sheets["lee.jpg"]["score"]) == ("20260002", 76.0)
    # The truncated scan was refused before a job existed; the batch went on without it.
    assert (sheets["broken.jpg"]["status"], sheets["broken.jpg"]["rejection_code"]) == ("REJECTED", "FILE_UNREADABLE")
    assert sheets["broken.jpg"]["job_id"] is None
    assert sheets["broken.jpg"]["message"]
    assert sheets["kim.jpg"]["overlay"].endswith("/artifacts/overlay.png/")
    assert [g.times_graded for g in Grade.objects.filter(submission__batch__batch_id=batch_id)] == [1, 1]


def test_grading_waits_for_the_last_sheet_of_the_batch(exam_id: int) -> None:
    # Not eager: nothing runs by itself; each sheet's job is finished by hand below.
    exam = Exam.objects.get(pk=exam_id)
    batch, created = omr_batch_create(
        tenant=exam.tenant,
        exam=exam,
        uploads=[Upload("a.jpg", sheet_jpeg("11111111")), Upload("b.jpg", sheet_jpeg("22222222"))],
    )
    assert created
    assert batch.total_sheets == 2
    submission_ids = list(batch.submissions.order_by("pk").values_list("pk", flat=True))
    reading = {"student_id": "11111111", "answers": {key: [] for key in KEY}, "review": []}
    for number, submission_id in enumerate(submission_ids):
        job = AIJob.objects.get(source_id=str(submission_id))
        claimed, token = job_claim(job_id=job.job_id, worker="test")
        assert claimed is not None
        job_finish(job_id=job.job_id, token=token, finish=Finish(JobStatus.DONE, result=reading))
        assert job_callback_apply(job_id=job.job_id) is True
        batch.refresh_from_db()
        if number == 0:
            # One sheet read, one still waiting: nothing is graded yet.
            assert batch.graded_at is None
            assert not Grade.objects.filter(submission__batch=batch).exists()
            assert Submission.objects.get(pk=submission_id).status == SubmissionStatus.READ
    assert batch.graded_at is not None
    assert Grade.objects.filter(submission__batch=batch).count() == 2


def test_a_zip_becomes_one_job_per_image_and_lists_what_it_skipped(eager: None, teacher: Any, exam_id: int) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("class-a/sheet10.jpg", sheet_jpeg("20260010"))
        zf.writestr("class-a/sheet2.jpg", sheet_jpeg("20260002"))
        zf.writestr("class-a/notes.txt", "not a sheet")
        zf.writestr("__MACOSX/class-a/._sheet2.jpg", b"resource fork")
        zf.writestr("inner.zip", b"PK\x05\x06" + bytes(18))
    response = batch_post(teacher, exam_id, upload("scans.zip", buffer.getvalue()))
    assert response.status_code == 201, response.json()
    body = response.json()
    # Natural order: sheet2 before sheet10, as the teacher numbered them.
    assert [s["sheet"] for s in body["sheets"]] == ["scans.zip/class-a/sheet2.jpg", "scans.zip/class-a/sheet10.jpg"]
    assert {s["student_id"] for s in body["sheets"]} == {"20260002", "20260010"}
    assert sorted((s["name"], s["code"]) for s in body["skipped"]) == [
        ("scans.zip/__MACOSX/class-a/._sheet2.jpg", "INVALID_FORMAT"),
        ("scans.zip/class-a/notes.txt", "INVALID_FORMAT"),
        ("scans.zip/inner.zip", "INVALID_FORMAT"),
    ]


def test_blurred_and_dark_scans_are_refused_with_the_original_codes(eager: None, teacher: Any, exam_id: int) -> None:
    gray = cv2.imdecode(np.frombuffer(sheet_jpeg("20260001"), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    blurred = cv2.imencode(".jpg", cv2.GaussianBlur(gray, (0, 0), 9))[1].tobytes()
    dark = cv2.imencode(".jpg", (gray * 0.2).astype(np.uint8))[1].tobytes()
    small = cv2.imencode(".png", cv2.resize(gray, (420, 594)))[1].tobytes()
    response = batch_post(
        teacher,
        exam_id,
        upload("blurred.jpg", blurred),
        upload("dark.jpg", dark),
        upload("small.png", small),
        upload("fine.jpg", sheet_jpeg("20260001")),
    )
    codes = {s["sheet"]: s["rejection_code"] for s in response.json()["sheets"]}
    assert codes == {
        "blurred.jpg": "BLUR_OR_SHAKE",
        "dark.jpg": "TOO_DARK",
        "small.png": "RESOLUTION_TOO_LOW",
        "fine.jpg": None,
    }
    messages = {s["sheet"]: s["message"] for s in response.json()["sheets"]}
    assert messages["dark.jpg"] == "너무 어둡습니다. 밝은 곳에서 촬영해 주세요."


def test_photos_are_refused_on_basic(eager: None, teacher: Any, exam_id: int) -> None:
    response = batch_post(teacher, exam_id, upload("phone.jpg", sheet_jpeg("20260001")), mode="photo")
    [sheet] = response.json()["sheets"]
    assert (sheet["status"], sheet["rejection_code"]) == ("REJECTED", "OMR_PHOTO_NOT_ALLOWED")


def test_an_upload_without_any_sheet_is_refused_with_a_code(teacher: Any, exam_id: int) -> None:
    response = batch_post(teacher, exam_id, upload("readme.txt", b"hello"))
    assert response.status_code == 400
    assert response.json()["rejection_code"] == "INVALID_FORMAT"
    assert not OmrBatch.objects.exists()

    empty = teacher.post(f"/api/v1/exams/{exam_id}/omr-batches/", {}, format="multipart")
    assert (empty.status_code, empty.json()["rejection_code"]) == (400, "FILE_REQUIRED")


def test_the_same_idempotency_key_returns_the_first_batch(eager: None, teacher: Any, exam_id: int) -> None:
    first = batch_post(teacher, exam_id, upload("a.jpg", sheet_jpeg("20260001")), idempotency_key="upload-7")
    again = batch_post(teacher, exam_id, upload("a.jpg", sheet_jpeg("20260001")), idempotency_key="upload-7")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["batch_id"] == again.json()["batch_id"]
    assert Submission.objects.count() == 1


def test_a_teachers_correction_of_a_flagged_answer_regrades(eager: None, teacher: Any, exam_id: int) -> None:
    batch = batch_post(teacher, exam_id, upload("a.jpg", sheet_jpeg("20260001", ("5",)))).json()
    submission_id = batch["sheets"][0]["submission_id"]
    before = teacher.get(f"/api/v1/submissions/{submission_id}/").json()
    assert before["score"] == 78.0
    assert next(a for a in before["answers"] if a["question"] == "5")["verdict"] == "incorrect"

    response = teacher.patch(
        f"/api/v1/submissions/{submission_id}/", {"answers": {"5": [KEY["5"]]}, "student_id": "20269999"}, format="json"
    )
    assert response.status_code == 200, response.json()
    after = response.json()
    assert (after["score"], after["student_id"], after["status"]) == (80.0, "20269999", "GRADED")
    answer = next(a for a in after["answers"] if a["question"] == "5")
    assert (answer["detected"], answer["corrected"], answer["verdict"]) == ([wrong("5")], [KEY["5"]], "correct")
    grade = Grade.objects.get(submission_id=submission_id)
    assert (grade.times_graded, Grade.objects.filter(submission_id=submission_id).count()) == (2, 1)


@pytest.mark.parametrize(
    "correction",
    [{"answers": {"999": ["1"]}}, {"answers": {"1": ["9"]}}, {"answers": {"1": 3}}, {"student_id": "12?4"}, {}],
)
def test_a_correction_that_does_not_fit_the_sheet_is_refused(
    eager: None, teacher: Any, exam_id: int, correction: dict[str, Any]
) -> None:
    batch = batch_post(teacher, exam_id, upload("a.jpg", sheet_jpeg("20260001"))).json()
    submission_id = batch["sheets"][0]["submission_id"]
    response = teacher.patch(f"/api/v1/submissions/{submission_id}/", correction, format="json")
    assert (response.status_code, response.json()["rejection_code"]) == (400, "INVALID_PAYLOAD")
    assert Grade.objects.get(submission_id=submission_id).times_graded == 1


def test_the_overlay_image_is_served_to_its_academy_only(
    eager: None, teacher: Any, exam_id: int, make_tenant: Any, api_for: Any
) -> None:
    batch = batch_post(teacher, exam_id, upload("a.jpg", sheet_jpeg("20260001"))).json()
    overlay_url = batch["sheets"][0]["overlay"]
    response = teacher.get(overlay_url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")

    stranger = api_for(make_tenant()[1])
    submission_id = batch["sheets"][0]["submission_id"]
    for url in (
        overlay_url,
        f"/api/v1/exams/{exam_id}/",
        f"/api/v1/exams/{exam_id}/omr-batches/",
        f"/api/v1/exams/{exam_id}/omr-batches/{batch['batch_id']}/",
        f"/api/v1/submissions/{submission_id}/",
    ):
        assert stranger.get(url).status_code == 404, url
    patched = stranger.patch(f"/api/v1/submissions/{submission_id}/", {"student_id": "1"}, format="json")
    assert patched.status_code == 404
    assert batch_post(stranger, exam_id, upload("a.jpg", sheet_jpeg("00000001"))).status_code == 404


def test_an_exam_with_a_malformed_template_or_key_is_refused(teacher: Any) -> None:
    bad_template = teacher.post("/api/v1/exams/", {"title": "x", "template": {"format": "nope"}}, format="json")
    assert (bad_template.status_code, bad_template.json()["rejection_code"]) == (400, "TEMPLATE_INVALID")
    bad_key = teacher.post(
        "/api/v1/exams/", {"title": "x", "answer_key": {"questions": {"1": {"points": "lots"}}}}, format="json"
    )
    assert (bad_key.status_code, bad_key.json()["rejection_code"]) == (400, "INVALID_PAYLOAD")


def test_a_scan_basic_refuses_goes_to_the_gpu_pool_for_a_paying_tenant_and_is_graded_once(
    eager: None, make_tenant: Any, api_for: Any
) -> None:
    _, token = make_tenant(premium=True, fallback=True)
    teacher = api_for(token)
    answer_key = {"questions": {q: {"correct": [a], "points": 2} for q, a in KEY.items()}}
    exam = teacher.post("/api/v1/exams/", {"title": "t", "answer_key": answer_key}, format="json").json()
    gray = cv2.imdecode(np.frombuffer(sheet_jpeg("20260077"), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    dark = cv2.imencode(".jpg", (gray * 0.22).astype(np.uint8))[1].tobytes()
    body = batch_post(teacher, exam["exam_id"], upload("dark.jpg", dark)).json()
    [sheet] = body["sheets"]
    assert (sheet["status"], sheet["score"], sheet["student_id"]) == ("GRADED", 80.0, "20260077")

    status = teacher.get(f"/api/v1/jobs/{sheet['job_id']}/").json()
    assert [(j["tier"], j["status"]) for j in status["lineage"]] == [("basic", "FALLBACK_TO_GPU"), ("premium", "DONE")]
    assert status["flags"]["fallback_reason"] == "validation_failed:TOO_DARK"
    assert Grade.objects.get(submission_id=sheet["submission_id"]).times_graded == 1


def test_without_the_gpu_fallback_the_same_scan_is_refused(eager: None, teacher: Any, exam_id: int) -> None:
    gray = cv2.imdecode(np.frombuffer(sheet_jpeg("20260077"), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    dark = cv2.imencode(".jpg", (gray * 0.22).astype(np.uint8))[1].tobytes()
    [sheet] = batch_post(teacher, exam_id, upload("dark.jpg", dark)).json()["sheets"]
    assert (sheet["status"], sheet["rejection_code"], sheet["job_id"]) == ("REJECTED", "TOO_DARK", None)
    assert not AIJob.objects.exists()


def test_a_batch_whose_upload_died_is_marked_interrupted_by_the_sweeper_and_never_graded(exam_id: int) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from academy.jobs.sweep import sweep_once
    from academy.services.omr_batches import omr_batch_settle, omr_batches_close_abandoned

    exam = Exam.objects.get(pk=exam_id)
    batch = OmrBatch.objects.create(tenant=exam.tenant, exam=exam)  # never sealed: the request died
    read = Submission.objects.create(tenant=exam.tenant, exam=exam, batch=batch, status=SubmissionStatus.READ)
    read.answers.create(question="1", detected=[KEY["1"]])
    empty = OmrBatch.objects.create(tenant=exam.tenant, exam=exam)
    assert omr_batches_close_abandoned(older_than=timezone.now() - timedelta(minutes=10)) == 0  # too recent

    OmrBatch.objects.filter(pk__in=[batch.pk, empty.pk]).update(created_at=timezone.now() - timedelta(hours=1))
    assert sweep_once()["batches_interrupted"] == 1
    batch.refresh_from_db()
    assert (batch.total_sheets, batch.sealed_at, batch.graded_at) == (1, None, None)
    assert batch.interrupted_at is not None
    assert batch.skipped[-1]["code"] == "UPLOAD_INTERRUPTED"
    # Part of an upload is never graded, however often its sheets settle.
    assert omr_batch_settle(batch_id=batch.pk) is False
    assert not Grade.objects.filter(submission=read).exists()
    assert not OmrBatch.objects.filter(pk=empty.pk).exists()  # nothing in it: removed
