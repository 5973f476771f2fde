"""The page where a teacher checks a template proposed from a blank card (Django's test
client): the picture and counts, confirming with either numbering, rejecting, tenancy."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from academy.jobs.dispatch import job_dispatch
from academy.models import AIJob, Exam, JobStatus
from academy.services.exams import exam_create
from tests.omr import cards as C
from tests.omr.corpus import degrade

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "blank-card-42"


def _teacher(make_tenant: Any) -> tuple[Any, Client]:
    tenant, _ = make_tenant()
    user = User.objects.get(membership__tenant=tenant)
    user.set_password(PASSWORD)
    user.save()
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return tenant, client


def _proposal_job(tenant: Any) -> str:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    rng = random.Random("page-blank")
    data, _ = degrade(C.fill_card(C.red_card(), rng, blank=True).page, rng, upside_down=False)
    path = default_storage.save(f"tenants/{tenant.slug}/uploads/blank.jpg", ContentFile(data))
    job = job_dispatch(
        job_type="omr_template",
        payload={"image_path": path, "questions": 45, "choices": 5, "id_digits": 8},
        tenant=tenant,
        tier="basic",
    )
    job_id: str = job["job_id"]
    assert AIJob.objects.get(job_id=job_id).status == JobStatus.DONE
    return job_id


def test_the_teacher_sees_the_proposal_and_confirms_it_numbered_across(eager: None, make_tenant: Any) -> None:
    tenant, client = _teacher(make_tenant)
    exam = exam_create(tenant=tenant, title="4월 월례평가")
    job_id = _proposal_job(tenant)
    page = client.get(f"/review/exams/{exam.pk}/proposals/{job_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "문항 <b>45</b>개 (보기 5개), 수험번호 <b>8</b>자리" in html
    picture = client.get(f"/review/proposals/{job_id}/picture.png")
    assert picture.status_code == 200
    assert picture.getvalue().startswith(b"\x89PNG")

    done = client.post(f"/review/exams/{exam.pk}/proposals/{job_id}/decide/", {"decision": "rows"})
    assert (done.status_code, done["Location"]) == (302, f"/review/exams/{exam.pk}/")
    blocks = Exam.objects.get(pk=exam.pk).sheet_template["question_blocks"]
    assert [(b["first"], b["step"]) for b in blocks] == [(1, 3), (2, 3), (3, 3)]


def test_rejecting_leaves_the_exams_template_as_it_was(eager: None, make_tenant: Any) -> None:
    tenant, client = _teacher(make_tenant)
    exam = exam_create(tenant=tenant, title="4월 월례평가")
    before = Exam.objects.get(pk=exam.pk).sheet_template
    job_id = _proposal_job(tenant)
    done = client.post(f"/review/exams/{exam.pk}/proposals/{job_id}/decide/", {"decision": "reject"})
    assert (done.status_code, done["Location"]) == (302, "/review/")
    assert Exam.objects.get(pk=exam.pk).sheet_template == before


def test_another_academys_proposal_is_not_found(eager: None, make_tenant: Any) -> None:
    tenant, _ = _teacher(make_tenant)
    job_id = _proposal_job(tenant)
    other, stranger = _teacher(make_tenant)
    exam = exam_create(tenant=other, title="x")
    assert stranger.get(f"/review/exams/{exam.pk}/proposals/{job_id}/").status_code == 404
    assert stranger.get(f"/review/proposals/{job_id}/picture.png").status_code == 404
    decided = stranger.post(f"/review/exams/{exam.pk}/proposals/{job_id}/decide/", {"decision": "columns"})
    assert decided.status_code == 404
    assert Client().get(f"/review/exams/{exam.pk}/proposals/{job_id}/").status_code == 302  # the login page


def test_the_exam_page_and_the_exam_list_link_the_open_proposal_until_it_is_rejected(
    eager: None, make_tenant: Any
) -> None:
    from academy.services.omr_templates import exam_create_from_blank

    tenant, client = _teacher(make_tenant)
    rng = random.Random("page-blank")
    blank, _ = degrade(C.fill_card(C.red_card(), rng, blank=True).page, rng, upside_down=False)
    exam, job = exam_create_from_blank(
        tenant=tenant, title="6월 월례평가", blank_name="blank.jpg", blank=blank, questions=45, choices=5, id_digits=8
    )
    link = f'href="/review/exams/{exam.pk}/proposals/{job["job_id"]}/"'
    assert link in client.get(f"/review/exams/{exam.pk}/").content.decode()
    assert link in client.get("/review/").content.decode()  # the exam list links it too
    client.post(f"/review/exams/{exam.pk}/proposals/{job['job_id']}/decide/", {"decision": "reject"})
    assert link not in client.get(f"/review/exams/{exam.pk}/").content.decode()
    assert link not in client.get("/review/").content.decode()
