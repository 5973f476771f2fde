"""Tenant isolation, endpoint by endpoint: academy A reaching academy B's objects gets a 404.

Each row of ``ENDPOINTS`` is one way in. A's request must be a 404 (never 403: ids reveal
nothing), and the same request from B must not be (so the 404 is isolation, not a typo).
Adding an endpoint is one line.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from academy import selectors, storage
from academy.jobs.dispatch import job_dispatch
from academy.models import Exam, JobArtifact, Submission
from academy.services.omr_batches import Upload, omr_batch_create


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, format="PNG")
    return out.getvalue()


def _jpeg() -> bytes:
    from tests.badinput.corpus import noise_image

    return noise_image(".jpg")


@dataclass
class Academy:
    api: APIClient
    web: Client  # a logged-in session for the review pages
    ids: dict[str, Any]


def _academy(make_tenant: Any, api_for: Any) -> Academy:
    """An academy with one of everything: a job with an artifact, an exam, a batch, a sheet."""
    tenant, token = make_tenant()
    job_id = job_dispatch(job_type="ping", payload={}, tenant=tenant, tier="basic")["job_id"]
    exam = Exam.objects.get(
        pk=api_for(token).post("/api/v1/exams/", {"title": "시험"}, format="json").json()["exam_id"]
    )
    batch, _ = omr_batch_create(tenant=tenant, exam=exam, uploads=[Upload("a.jpg", _jpeg())])
    submission = Submission.objects.get(batch=batch)
    assert submission.job is not None, submission.rejection_code
    overlay = storage.artifact_save(
        tenant=tenant, job_id=submission.job.job_id, name="overlay.png", data=_png(1240, 1754)
    )
    JobArtifact.objects.create(
        job=submission.job, name=selectors.OVERLAY, path=overlay, content_type="image/png", size=1
    )
    path = storage.artifact_save(tenant=tenant, job_id=job_id, name="export.xlsx", data=b"PK")
    job = selectors.job_get(job_id)
    assert job is not None
    artifact = JobArtifact.objects.create(
        job=job,
        name="export.xlsx",
        path=path,
        content_type="application/octet-stream",
        size=2,
    )
    web = Client()
    web.force_login(_user_of(token))
    return Academy(
        api=api_for(token),
        web=web,
        ids={
            "job_id": job_id,
            "artifact": artifact.name,
            "artifact_pk": artifact.pk,
            "exam_id": exam.pk,
            "exam_title": exam.title,
            "batch_id": batch.batch_id,
            "submission_id": submission.pk,
        },
    )


def _user_of(token: str) -> Any:
    from rest_framework.authtoken.models import Token

    return Token.objects.get(key=token).user


KEY = {"questions": {"1": {"correct": ["1"], "points": 1}}}

# (name, client, method, url, body): the url's {fields} are the *target* academy's ids.
ENDPOINTS: list[tuple[str, str, str, str, Any]] = [
    ("job-status", "api", "get", "/api/v1/jobs/{job_id}/", None),
    ("job-artifact", "api", "get", "/api/v1/jobs/{job_id}/artifacts/{artifact}/", None),
    ("exam-detail", "api", "get", "/api/v1/exams/{exam_id}/", None),
    ("answer-key-put", "api", "put", "/api/v1/exams/{exam_id}/answer-key/", KEY),
    ("omr-batches-list", "api", "get", "/api/v1/exams/{exam_id}/omr-batches/", None),
    ("omr-batches-create", "api", "multipart", "/api/v1/exams/{exam_id}/omr-batches/", "files"),
    ("omr-batch-detail", "api", "get", "/api/v1/exams/{exam_id}/omr-batches/{batch_id}/", None),
    ("submission-get", "api", "get", "/api/v1/submissions/{submission_id}/", None),
    ("submission-patch", "api", "patch", "/api/v1/submissions/{submission_id}/", {"student_id": "20260001"}),
    ("review-exam", "web", "get", "/review/exams/{exam_id}/", None),
    ("review-correct", "web", "post", "/review/exams/{exam_id}/correct/", "correct"),
    ("review-crop", "web", "get", "/review/crops/{submission_id}/1.png", None),
]


def _request(academy: Academy, client: str, method: str, url: str, body: Any, target: dict[str, Any]) -> Any:
    url = url.format(**target)
    if client == "web":
        if body == "correct":
            return academy.web.post(url, {"submission_id": target["submission_id"], "question": "1", "choice": "1"})
        return academy.web.get(url)
    if method == "multipart":
        files = [SimpleUploadedFile("b.jpg", _jpeg())]
        return academy.api.post(url, {"files": files}, format="multipart")
    if body is None:
        return getattr(academy.api, method)(url)
    return getattr(academy.api, method)(url, body, format="json")


@pytest.fixture
def academies(make_tenant: Any, api_for: Any, settings: Any, tmp_path: Any) -> tuple[Academy, Academy]:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return _academy(make_tenant, api_for), _academy(make_tenant, api_for)


@pytest.mark.parametrize(("name", "client", "method", "url", "body"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_another_academys_object_is_a_404(
    academies: tuple[Academy, Academy], name: str, client: str, method: str, url: str, body: Any
) -> None:
    a, b = academies
    foreign = _request(a, client, method, url, body, b.ids)
    assert foreign.status_code == 404, (name, foreign.status_code)
    own = _request(b, client, method, url, body, b.ids)
    assert own.status_code != 404, (name, own.status_code)
    assert own.status_code < 500, (name, own.status_code)


def test_a_batch_of_another_academy_under_ones_own_exam_is_a_404(academies: tuple[Academy, Academy]) -> None:
    a, b = academies
    url = f"/api/v1/exams/{a.ids['exam_id']}/omr-batches/{b.ids['batch_id']}/"
    assert a.api.get(url).status_code == 404


def test_review_correction_of_another_academys_sheet_under_ones_own_exam_is_a_404(
    academies: tuple[Academy, Academy],
) -> None:
    a, b = academies
    response = a.web.post(
        f"/review/exams/{a.ids['exam_id']}/correct/",
        {"submission_id": b.ids["submission_id"], "question": "1", "choice": "1"},
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("url", "key", "field"),
    [
        ("/api/v1/jobs/", "job_id", "job_id"),
        ("/api/v1/exams/", "exam_id", "id"),
    ],
)
def test_lists_show_none_of_another_academys_rows(
    academies: tuple[Academy, Academy], url: str, key: str, field: str
) -> None:
    a, b = academies
    mine = {row[field] for row in a.api.get(url).json()["results"]}
    theirs = {row[field] for row in b.api.get(url).json()["results"]}
    assert a.ids[key] in mine
    assert b.ids[key] in theirs
    assert b.ids[key] not in mine


def test_the_review_index_lists_none_of_another_academys_exams(academies: tuple[Academy, Academy]) -> None:
    a, b = academies
    page = a.web.get("/review/").content.decode()
    assert f"/review/exams/{a.ids['exam_id']}/" in page
    assert f"/review/exams/{b.ids['exam_id']}/" not in page


def test_a_signed_download_link_works_for_anyone_but_a_forged_one_is_a_404(
    academies: tuple[Academy, Academy],
) -> None:
    _a, b = academies
    token = storage.download_token(artifact_id=b.ids["artifact_pk"])
    assert Client().get(f"/api/v1/files/{token}/").status_code == 200  # the link is the credential
    forged = [
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        token.replace(token.split(":")[0], "eyJhIjoxfQ"),  # another artifact id, old signature
        json.dumps({"a": b.ids["artifact_pk"]}),
        "x",
    ]
    for bad in forged:
        assert Client().get(f"/api/v1/files/{bad}/").status_code == 404, bad
    assert default_storage.exists(JobArtifact.objects.get(pk=b.ids["artifact_pk"]).path)
