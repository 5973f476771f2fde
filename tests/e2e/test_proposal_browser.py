"""The page where a teacher confirms a template proposed from a blank card, in a real
browser: headless Chromium driven by Selenium, as the review page is tested. Skips
without chromium, chromedriver or selenium (see tests/e2e/test_review_page.py)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from academy.models import AIJob, AIResult, Exam, JobStatus
from academy.services.omr_templates import exam_create_from_blank
from tests.e2e.test_review_page import CHROMEDRIVER, CHROMIUM, HAVE_SELENIUM, browser
from tests.omr import cards as C
from tests.omr.corpus import degrade

pytestmark = [
    pytest.mark.skipif(not HAVE_SELENIUM, reason="selenium is not installed (pip install selenium)"),
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason="headless browser test needs chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
    pytest.mark.django_db(transaction=True),
]

__all__ = ["browser"]  # the fixture, shared with the review page's test

PASSWORD = "blank-card-browser-7"


def test_a_teacher_confirms_a_proposed_card_numbered_across_in_the_browser(
    eager: None, make_tenant: Any, live_server: Any, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from workers.omr.blank import template_renumber

    tenant, _ = make_tenant()
    user = User.objects.get(membership__tenant=tenant)
    user.set_password(PASSWORD)
    user.save()
    rng = random.Random("browser-blank")
    blank, _ = degrade(C.fill_card(C.red_card(), rng, blank=True).page, rng, upside_down=False)
    exam, job = exam_create_from_blank(
        tenant=tenant, title="5월 월례평가", blank_name="blank.jpg", blank=blank, questions=45, choices=5, id_digits=8
    )
    job_id = job["job_id"]
    assert AIJob.objects.get(job_id=job_id).status == JobStatus.DONE
    assert Exam.objects.get(pk=exam.pk).sheet_template == {}  # waits for the teacher

    wait = WebDriverWait(browser, 15)
    page_url = f"{live_server.url}/review/exams/{exam.pk}/proposals/{job_id}/"
    browser.get(page_url)
    # Not logged in: the login page, which leads back to the proposal afterwards.
    wait.until(ec.presence_of_element_located((By.ID, "id_username")))
    browser.find_element(By.ID, "id_username").send_keys(user.username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()

    summary = wait.until(ec.presence_of_element_located((By.ID, "summary")))
    assert browser.current_url == page_url
    assert "문항 45개 (보기 5개), 수험번호 8자리" in summary.text
    # The picture of what was found loaded (a broken image has no natural width).
    picture = browser.find_element(By.ID, "proposal")
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture))
    assert browser.execute_script("return arguments[0].naturalWidth", picture) > 500
    assert picture.is_displayed()
    # The screenshot shows the card: much of the viewport is its print (the review page's
    # check expects mostly white, a page of text; this one is mostly picture).
    from PIL import Image

    shot = tmp_path / "proposal.png"
    assert browser.save_screenshot(str(shot))
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("L")
    assert 0.05 < sum(image.histogram()[:235]) / (image.width * image.height) < 0.98

    browser.find_element(By.ID, "confirm-rows").click()
    message = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".messages")))
    assert browser.current_url == f"{live_server.url}/review/exams/{exam.pk}/"
    assert "양식을 확정했습니다" in message.text
    assert "가로" in message.text

    payload = AIResult.objects.get(job__job_id=job_id).payload
    assert isinstance(payload, dict)
    proposal = payload["template"]
    template = Exam.objects.get(pk=exam.pk).sheet_template
    assert template["question_blocks"] == template_renumber(proposal, "rows")["question_blocks"]
    # Three blocks side by side, numbered across: 1, 2, 3 on the first row, 4 under 1.
    assert [(b["first"], b["step"]) for b in template["question_blocks"]] == [(1, 3), (2, 3), (3, 3)]
    assert template["student_id"]["digits"] == 8
