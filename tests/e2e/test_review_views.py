"""The review pages through Django's test client: login, tenancy, CSRF, crops, corrections."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import Client
from PIL import Image

from academy.models import Grade, SubmissionAnswer, SubmissionStatus
from tests.e2e.conftest import KEY, LIGHT_QUESTION, PASSWORD, SHEET, Reviewed

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(reviewed: Reviewed, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    assert client.login(username=reviewed.user.username, password=PASSWORD)
    return client


def test_the_reader_flagged_the_light_mark_and_graded_the_sheet_for_review(reviewed: Reviewed) -> None:
    answer = SubmissionAnswer.objects.get(submission=reviewed.flagged, question=LIGHT_QUESTION)
    assert (answer.flagged, answer.detected, answer.corrected) == (True, [], None)
    assert reviewed.flagged.__class__.objects.get(pk=reviewed.flagged.pk).status == SubmissionStatus.NEEDS_REVIEW
    assert not SubmissionAnswer.objects.filter(submission=reviewed.clean, flagged=True).exists()


def test_pages_need_a_login(reviewed: Reviewed) -> None:
    client = Client()
    page = client.get(f"/review/exams/{reviewed.exam.pk}/")
    assert page.status_code == 302
    assert page["Location"].startswith("/review/login/?next=")
    assert client.get(f"/review/crops/{reviewed.flagged.pk}/{LIGHT_QUESTION}.png").status_code == 302
    assert client.get("/review/login/").status_code == 200


def test_login_form_leads_to_the_exam_list(reviewed: Reviewed) -> None:
    client = Client()
    response = client.post("/review/login/", {"username": reviewed.user.username, "password": PASSWORD})
    assert (response.status_code, response["Location"]) == (302, "/review/")
    listing = client.get("/review/")
    assert reviewed.exam.title in listing.content.decode()


def test_the_page_lists_only_flagged_uncorrected_answers(reviewed: Reviewed) -> None:
    page = logged_in(reviewed).get(f"/review/exams/{reviewed.exam.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="review-item"') == 1
    assert "lee.jpg" in html
    assert "kim.jpg" not in html
    assert "20260002" in html
    assert f"/review/crops/{reviewed.flagged.pk}/{LIGHT_QUESTION}.png" in html
    assert "빈칸" in html


def test_crop_is_the_question_row_of_the_overlay(reviewed: Reviewed) -> None:
    response = logged_in(reviewed).get(f"/review/crops/{reviewed.flagged.pk}/{LIGHT_QUESTION}.png")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    row = next(f for f in SHEET.questions if f.label == LIGHT_QUESTION)
    scale = 100 / SHEET.dpi
    span = (row.centres[-1][0] - row.centres[0][0]) * scale
    # The whole row and a margin, one row high: wider than the bubbles, far less than the page.
    assert span < image.width < SHEET.width * scale / 2
    assert 2 * SHEET.bubble_radius * scale < image.height < 6 * SHEET.bubble_radius * scale
    darkest, _lightest = image.convert("L").getextrema()
    assert isinstance(darkest, int)
    assert darkest < 128  # ink (the printed bubbles) is in it


def test_unknown_question_crop_is_404(reviewed: Reviewed) -> None:
    assert logged_in(reviewed).get(f"/review/crops/{reviewed.flagged.pk}/999.png").status_code == 404


def test_another_academy_sees_404(reviewed: Reviewed, make_tenant: Any) -> None:
    from django.contrib.auth.models import User

    other, _ = make_tenant()
    stranger = User.objects.get(membership__tenant=other)
    client = Client()
    client.force_login(stranger)
    assert client.get(f"/review/exams/{reviewed.exam.pk}/").status_code == 404
    assert client.get(f"/review/crops/{reviewed.flagged.pk}/{LIGHT_QUESTION}.png").status_code == 404
    post = {"submission_id": reviewed.flagged.pk, "question": LIGHT_QUESTION, "choice": KEY[LIGHT_QUESTION]}
    assert client.post(f"/review/exams/{reviewed.exam.pk}/correct/", post).status_code == 404
    assert Grade.objects.get(submission=reviewed.flagged).times_graded == 1


def test_a_post_without_csrf_token_is_refused(reviewed: Reviewed) -> None:
    client = logged_in(reviewed, enforce_csrf_checks=True)
    post = {"submission_id": reviewed.flagged.pk, "question": LIGHT_QUESTION, "choice": KEY[LIGHT_QUESTION]}
    assert client.post(f"/review/exams/{reviewed.exam.pk}/correct/", post).status_code == 403
    assert Grade.objects.get(submission=reviewed.flagged).times_graded == 1


def test_one_click_corrects_regrades_and_redirects(reviewed: Reviewed) -> None:
    client = logged_in(reviewed)
    before = Grade.objects.get(submission=reviewed.flagged)
    post = {"submission_id": reviewed.flagged.pk, "question": LIGHT_QUESTION, "choice": KEY[LIGHT_QUESTION]}
    response = client.post(f"/review/exams/{reviewed.exam.pk}/correct/", post)
    assert (response.status_code, response["Location"]) == (302, f"/review/exams/{reviewed.exam.pk}/")
    after = Grade.objects.get(submission=reviewed.flagged)
    assert (after.score, after.times_graded) == (before.score + 2, 2)
    answer = SubmissionAnswer.objects.get(submission=reviewed.flagged, question=LIGHT_QUESTION)
    assert answer.corrected == [KEY[LIGHT_QUESTION]]
    page = client.get(response["Location"]).content.decode()
    assert "검토할 답안이 없습니다" in page
    assert "다시 채점" in page  # the message of the correction


def test_blank_and_invalid_choices(reviewed: Reviewed) -> None:
    client = logged_in(reviewed)
    url = f"/review/exams/{reviewed.exam.pk}/correct/"
    base = {"submission_id": reviewed.flagged.pk, "question": LIGHT_QUESTION}
    client.post(url, {**base, "choice": "Z"})
    assert Grade.objects.get(submission=reviewed.flagged).times_graded == 1  # refused: not a choice
    client.post(url, {**base, "choice": "__blank__"})
    answer = SubmissionAnswer.objects.get(submission=reviewed.flagged, question=LIGHT_QUESTION)
    assert answer.corrected == []
    assert Grade.objects.get(submission=reviewed.flagged).times_graded == 2


def test_get_on_the_correct_url_is_not_allowed(reviewed: Reviewed) -> None:
    assert logged_in(reviewed).get(f"/review/exams/{reviewed.exam.pk}/correct/").status_code == 405
