"""Fixtures for the bad-input corpus: two academies, an exam, files on disk, a private MEDIA_ROOT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core import signals
from django.db import close_old_connections
from rest_framework.test import APIClient

from academy.models import Exam, Tenant
from tests.badinput import corpus


@dataclass
class World:
    tenant: Tenant
    other: Tenant
    api: APIClient
    exam_id: int
    template: dict[str, Any]
    media: Path

    def fill(self, value: Any) -> Any:
        """A corpus payload with ``{slug}``, ``{other}`` and the template filled in."""
        if value == corpus.TEMPLATE:
            return self.template
        if isinstance(value, str):
            return value.replace("{slug}", self.tenant.slug).replace("{other}", self.other.slug)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value

    def dispatch(self, case: corpus.Case, *, data: bytes | None = None) -> Any:
        """POST /api/v1/jobs/ as a client would: multipart with the file, or JSON."""
        payload = self.fill(case.payload)
        body = case.data if data is None else data
        if body is None:
            request = {"job_type": case.job_type, "payload": payload, "tier": case.tier}
            return self.api.post("/api/v1/jobs/", request, format="json")
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile(case.filename, body)
        request = {"job_type": case.job_type, "payload": json.dumps(payload), "tier": case.tier, "file": upload}
        return self.api.post("/api/v1/jobs/", request, format="multipart")


@pytest.fixture
def world(make_tenant: Any, api_for: Any, settings: Any, tmp_path: Path) -> World:
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = str(media)  # default_storage follows the setting_changed signal
    tenant, token = make_tenant()
    other, _ = make_tenant()
    api = api_for(token)
    response = api.post("/api/v1/exams/", {"title": "불량 입력"}, format="json")
    assert response.status_code == 201, response.json()
    exam_id = int(response.json()["exam_id"])
    template = Exam.objects.get(pk=exam_id).sheet_template

    # A real scan in the other academy's files, and one outside the storage root that a
    # symlink inside this academy's folder points at.
    other_file = media / "tenants" / other.slug / "uploads" / "sheet.jpg"
    other_file.parent.mkdir(parents=True)
    other_file.write_bytes(corpus.noise_image(".jpg"))
    outside = tmp_path / "outside" / "secret.jpg"
    outside.parent.mkdir()
    outside.write_bytes(corpus.noise_image(".jpg"))
    link = media / "tenants" / tenant.slug / "uploads" / "link.jpg"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    return World(tenant, other, api, exam_id, template, media)


@pytest.fixture
def keep_the_test_connection() -> Iterator[None]:
    """For tests that call the WSGI app directly (the schemathesis fuzz tests): as Django's
    test client does, keep the handler from closing the test's database connection after
    each request."""
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_finished.connect(close_old_connections)
