"""The review page in a real browser: headless Chromium driven by Selenium.

Debian's ``chromium`` and ``chromium-driver`` packages provide /usr/bin/chromium and
/usr/bin/chromedriver; without them (or without the selenium package) the module skips.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from academy.models import Grade, SubmissionAnswer
from tests.e2e.conftest import KEY, LIGHT_QUESTION, PASSWORD, Reviewed

CHROMIUM = os.environ.get("CHROMIUM_BINARY") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"

try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:  # pragma: no cover - depends on the machine
    HAVE_SELENIUM = False

pytestmark = [
    pytest.mark.skipif(not HAVE_SELENIUM, reason="selenium is not installed (pip install selenium)"),
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason="headless browser test needs chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
    pytest.mark.django_db(transaction=True),
]

WIDTH, HEIGHT = 1280, 900


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        f"--window-size={WIDTH},{HEIGHT}",
        "--lang=ko-KR",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_checked(driver: Any, path: Path) -> None:
    """A screenshot of the page: a PNG the size of the viewport, with something drawn on it."""
    from PIL import Image

    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, ratio = driver.execute_script("return [window.innerWidth, window.innerHeight, devicePixelRatio]")
    image = Image.open(io.BytesIO(data)).convert("L")
    assert image.size == (round(width * ratio), round(height * ratio))
    histogram = image.histogram()
    non_white = sum(histogram[:235])
    # Text, table rules and the crop pictures: far from a blank page, far from all ink.
    assert 0.002 < non_white / (image.width * image.height) < 0.6, non_white


def test_a_teacher_corrects_a_flagged_answer_with_one_click(
    reviewed: Reviewed, live_server: Any, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 10)
    exam_url = f"{live_server.url}/review/exams/{reviewed.exam.pk}/"
    browser.get(exam_url)
    # Not logged in: the login page, which leads back to the exam afterwards.
    wait.until(ec.presence_of_element_located((By.ID, "id_username")))
    browser.find_element(By.ID, "id_username").send_keys(reviewed.user.username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()

    rows = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, "tr.review-item")))
    assert len(rows) == 1
    row = rows[0]
    assert row.get_attribute("data-question") == LIGHT_QUESTION
    assert row.get_attribute("data-submission") == str(reviewed.flagged.pk)
    assert "lee.jpg" in row.text
    assert "20260002" in row.text
    # The crop of the question's row loaded (a broken image has no natural width).
    crop = row.find_element(By.CSS_SELECTOR, "img.crop")
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", crop))
    screenshot_checked(browser, tmp_path / "review-before.png")

    before = Grade.objects.get(submission=reviewed.flagged)
    right = KEY[LIGHT_QUESTION]
    row.find_element(By.CSS_SELECTOR, f'button[name="choice"][value="{right}"]').click()

    wait.until(ec.presence_of_element_located((By.ID, "nothing-to-review")))
    assert browser.current_url == exam_url  # redirected back after the POST
    assert not browser.find_elements(By.CSS_SELECTOR, "tr.review-item")
    assert "다시 채점" in browser.find_element(By.CSS_SELECTOR, ".messages").text
    screenshot_checked(browser, tmp_path / "review-after.png")

    after = Grade.objects.get(submission=reviewed.flagged)
    assert after.times_graded == 2
    assert after.score == before.score + 2
    answer = SubmissionAnswer.objects.get(submission=reviewed.flagged, question=LIGHT_QUESTION)
    assert (answer.corrected, answer.flagged) == ([right], False)
