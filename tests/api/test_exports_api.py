"""Excel exports through the API: the status result carries a signed, expiring download link."""

from __future__ import annotations

import io
import time
from typing import Any

import openpyxl
import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = [
    {"date": "2026-11-02", "name": "김민준", "grade": "3", "status": "출석"},
    {"date": "2026-11-02", "name": '=HYPERLINK("http://evil")', "grade": "2", "status": "결석"},
]


def export(teacher: Any) -> dict[str, Any]:
    response = teacher.post(
        "/api/v1/jobs/",
        {"job_type": "attendance_excel_export", "payload": {"rows": ROWS, "title": "11월 출결"}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    status = teacher.get(f"/api/v1/jobs/{response.json()['job_id']}/").json()
    assert status["status"] == "DONE", status
    return dict(status["result"])


def test_an_export_is_downloadable_by_its_signed_link_without_a_login(
    eager: None, make_tenant: Any, api_for: Any
) -> None:
    result = export(api_for(make_tenant()[1]))
    assert result["filename"].endswith(".xlsx")
    response = APIClient().get(result["download_url"])  # no credentials: the link is the credential
    assert response.status_code == 200
    assert result["filename"] in response["Content-Disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(response.getvalue())).active
    assert sheet is not None
    values = [cell for row in sheet.iter_rows(values_only=True) for cell in row if cell is not None]
    assert "김민준" in values
    assert not any(isinstance(v, str) and v.startswith("=") for v in values)  # no live formula


def test_a_tampered_or_expired_link_is_refused(eager: None, make_tenant: Any, api_for: Any, settings: Any) -> None:
    url = export(api_for(make_tenant()[1]))["download_url"]
    assert APIClient().get(url[:-3] + "xyz/").status_code == 404
    settings.AI_DOWNLOAD_URL_TTL_SECONDS = 1
    time.sleep(2.1)
    assert APIClient().get(url).status_code == 404


def test_a_large_export_fits_its_own_payload_cap(eager: None, make_tenant: Any, api_for: Any) -> None:
    teacher = api_for(make_tenant()[1])
    rows = [{"date": "2026-11-02", "name": f"학생{i}", "status": "출석", "note": "x" * 60} for i in range(4000)]
    response = teacher.post(
        "/api/v1/jobs/", {"job_type": "attendance_excel_export", "payload": {"rows": rows}}, format="json"
    )
    assert response.status_code == 202, response.json()  # ~400 KB: over the default 256 KiB cap
