"""A class's answer sheets through the HTTP API and the real basic and domain pools."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_celery_results.models import TaskResult

from academy.jobs.sending import callbacks_send
from academy.models import AIJob, Grade, OmrBatch
from tests.integration.conftest import wait_for
from workers.omr.render import filled_sheet_jpeg
from workers.omr.template import default_template

pytestmark = [pytest.mark.integration]


def test_a_batch_upload_is_read_by_the_basic_pool_and_each_sheet_graded_exactly_once(
    live: Any, make_tenant: Any, api_for: Any
) -> None:
    _, token = make_tenant()
    teacher = api_for(token)
    sheet = default_template()
    key = {q.label: q.values[(i * 3) % len(q.values)] for i, q in enumerate(sheet.questions)}
    exam = teacher.post(
        "/api/v1/exams/",
        {"title": "중간고사", "answer_key": {"questions": {q: [a] for q, a in key.items()}}},
        format="json",
    ).json()
    students = {f"2026{i:04d}": {**key, str(i + 1): ("1" if key[str(i + 1)] != "1" else "2")} for i in range(5)}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for number, (student, answers) in enumerate(students.items()):
            zf.writestr(f"scan-{number}.jpg", filled_sheet_jpeg(sheet, student_id=student, answers=answers))
    response = teacher.post(
        f"/api/v1/exams/{exam['exam_id']}/omr-batches/",
        {"files": [SimpleUploadedFile("class.zip", archive.getvalue())]},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    batch_id = response.json()["batch_id"]

    def graded() -> bool:
        connection.close_if_unusable_or_obsolete()
        return OmrBatch.objects.filter(batch_id=batch_id, graded_at__isnull=False).exists()

    wait_for(graded, timeout=60)
    body = teacher.get(f"/api/v1/exams/{exam['exam_id']}/omr-batches/{batch_id}/").json()
    assert (body["total_sheets"], body["percent"], body["by_status"]) == (5, 100, {"GRADED": 5})
    # Every student got exactly one question wrong, out of 40 worth 1 point each.
    assert sorted((s["student_id"], s["score"]) for s in body["sheets"]) == [(sid, 39.0) for sid in sorted(students)]

    # The five sheets went to the pool in two messages (the batch's first carries two, so
    # reading starts early), and each message's callbacks came back in one.
    jobs = [s["job_id"] for s in body["sheets"]]
    messages = AIJob.objects.filter(job_id__in=jobs).values_list("celery_task_id", flat=True)
    assert sorted(Counter(messages).values()) == [2, 3]
    assert TaskResult.objects.filter(task_name="ai_tasks.domain.job_callbacks").count() == 2
    # Redelivered callbacks for every sheet, one message each, change nothing.
    for job_id in jobs:
        callbacks_send(job_ids=[job_id])
    callbacks = TaskResult.objects.filter(task_name="ai_tasks.domain.job_callback")
    wait_for(lambda: callbacks.count() == len(jobs))
    grades = Grade.objects.filter(submission__batch__batch_id=batch_id)
    assert sorted(g.times_graded for g in grades) == [1] * 5


def test_a_scan_too_dark_for_basic_is_read_on_the_premium_pool_and_graded_once(
    live: Any, make_tenant: Any, api_for: Any
) -> None:
    import cv2
    import numpy as np

    _, token = make_tenant(premium=True, fallback=True)
    teacher = api_for(token)
    sheet = default_template()
    key = {q.label: q.values[0] for q in sheet.questions}
    exam = teacher.post("/api/v1/exams/", {"title": "t", "answer_key": {"questions": key}}, format="json").json()
    jpeg = filled_sheet_jpeg(sheet, student_id="20269001", answers=key)
    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    dark = cv2.imencode(".jpg", (gray * 0.22).astype(np.uint8))[1].tobytes()
    response = teacher.post(
        f"/api/v1/exams/{exam['exam_id']}/omr-batches/",
        {"files": [SimpleUploadedFile("dark.jpg", dark)]},
        format="multipart",
    )
    batch_id = response.json()["batch_id"]

    def graded() -> bool:
        connection.close_if_unusable_or_obsolete()
        return OmrBatch.objects.filter(batch_id=batch_id, graded_at__isnull=False).exists()

    wait_for(graded, timeout=60)
    [row] = teacher.get(f"/api/v1/exams/{exam['exam_id']}/omr-batches/{batch_id}/").json()["sheets"]
    assert (row["status"], row["score"]) == ("GRADED", 40.0)
    lineage = teacher.get(f"/api/v1/jobs/{row['job_id']}/").json()["lineage"]
    assert [(j["tier"], j["status"]) for j in lineage] == [("basic", "FALLBACK_TO_GPU"), ("premium", "DONE")]
    assert Grade.objects.get(submission_id=row["submission_id"]).times_graded == 1
