"""An exam with a batch read by eager jobs, in which one answer is flagged for review.

The second sheet's question 3 carries only a light pencil touch on the right bubble
(about a third of a full mark): the reader reads it as blank with low confidence and
flags it, so the sheet is graded NEEDS_REVIEW and question 3 scores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from django.contrib.auth.models import User

from academy.models import Exam, Submission, Tenant
from academy.services.exams import exam_create
from academy.services.omr_batches import Upload, omr_batch_create
from workers.omr.render import filled_sheet_jpeg
from workers.omr.template import default_template

SHEET = default_template()
KEY = {q.label: q.values[i % len(q.values)] for i, q in enumerate(SHEET.questions)}
LIGHT_QUESTION = "3"
PASSWORD = "review-pass-1234"


def light_mark_sheet(student_id: str, question: str) -> bytes:
    """A full sheet, except ``question``: its right bubble and the next one only lightly
    touched, so that the reader cannot tell which (if either) is the answer."""
    answers = {q: a for q, a in KEY.items() if q != question}
    page = cv2.imdecode(np.frombuffer(filled_sheet_jpeg(SHEET, student_id=student_id, answers=answers), np.uint8), 0)
    assert page is not None
    row = next(f for f in SHEET.questions if f.label == question)
    right = row.values.index(KEY[question])
    for choice in (right, (right + 1) % len(row.values)):
        x, y = row.centres[choice]
        cv2.circle(page, (round(x), round(y)), round(SHEET.bubble_radius * 0.8), 170, thickness=-1)
    ok, jpeg = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(jpeg)


@dataclass
class Reviewed:
    tenant: Tenant
    user: User
    exam: Exam
    flagged: Submission
    clean: Submission


@pytest.fixture
def reviewed(eager: None, make_tenant: Any) -> Reviewed:
    tenant, _token = make_tenant()
    user = User.objects.get(membership__tenant=tenant)
    user.set_password(PASSWORD)
    user.save()
    answer_key = {"questions": {q: {"correct": [a], "points": 2} for q, a in KEY.items()}}
    exam = exam_create(tenant=tenant, title="6월 모의고사", template=None, answer_key=answer_key)
    clean = filled_sheet_jpeg(SHEET, student_id="20260001", answers=KEY)
    batch, _ = omr_batch_create(
        tenant=tenant,
        exam=exam,
        uploads=[Upload("kim.jpg", clean), Upload("lee.jpg", light_mark_sheet("20260002", LIGHT_QUESTION))],
    )
    sheets = {s.sheet_name: s for s in Submission.objects.filter(batch=batch)}
    return Reviewed(tenant, user, exam, flagged=sheets["lee.jpg"], clean=sheets["kim.jpg"])
