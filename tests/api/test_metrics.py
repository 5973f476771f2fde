"""GET /metrics: who may read it, and what it reports (real Redis broker, real Postgres)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any, TypedDict

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from kombu import Connection
from kombu.transport import memory
from prometheus_client.parser import text_string_to_metric_families

from academy import metrics
from academy.jobs.dispatch import job_dispatch
from academy.models import AIJob, JobStatus
from tests.broker_isolation import isolated_broker

Labels = frozenset[tuple[str, str]]


def parse(text: str) -> dict[tuple[str, Labels], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, Labels], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


class BasicAuth(TypedDict):
    HTTP_AUTHORIZATION: str


def basic(username: str, password: str) -> BasicAuth:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def credentials(settings: Any) -> tuple[str, str]:
    settings.METRICS_USERNAME, settings.METRICS_PASSWORD = "prom", "s3cret"
    return "prom", "s3cret"


@pytest.fixture
def staff_client(db: Any) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("ops", password="x", is_staff=True))
    return client


# --- who may read ------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_configured_credentials_only_staff_get_in_and_others_get_503(settings: Any) -> None:
    settings.METRICS_USERNAME = settings.METRICS_PASSWORD = ""
    assert Client().get("/metrics").status_code == 503
    assert Client().get("/metrics", **basic("", "")).status_code == 503


@pytest.mark.django_db
def test_no_credentials_get_401_with_a_basic_challenge(credentials: tuple[str, str]) -> None:
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.django_db
@pytest.mark.parametrize(("username", "password"), [("prom", "wrong"), ("other", "s3cret"), ("", "")])
def test_wrong_basic_credentials_get_401(credentials: tuple[str, str], username: str, password: str) -> None:
    assert Client().get("/metrics", **basic(username, password)).status_code == 401


@pytest.mark.django_db
def test_a_garbled_authorization_header_gets_401(credentials: tuple[str, str]) -> None:
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Basic !!notbase64").status_code == 401


@pytest.mark.django_db
def test_a_logged_in_user_who_is_not_staff_gets_403(credentials: tuple[str, str]) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_user("teacher", password="x"))
    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_the_configured_basic_credentials_read_the_metrics(credentials: tuple[str, str]) -> None:
    response = Client().get("/metrics", **basic(*credentials))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "academy_ai_jobs" in response.content.decode()


def test_a_staff_session_reads_the_metrics_without_configured_credentials(settings: Any, staff_client: Client) -> None:
    settings.METRICS_USERNAME = settings.METRICS_PASSWORD = ""
    assert staff_client.get("/metrics").status_code == 200
    assert staff_client.post("/metrics").status_code == 405


# --- what it reports -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_queue_depth_of_every_tier_is_read_from_redis_with_no_worker_online(
    make_tenant: Any, staff_client: Client
) -> None:
    tenant, _ = make_tenant(premium=True)
    with isolated_broker():
        for tier in ("lite", "lite", "premium"):
            assert job_dispatch(job_type="ping", payload={}, tenant=tenant, tier=tier)["ok"]
        samples = parse(staff_client.get("/metrics").content.decode())
    assert value(samples, "academy_ai_queue_depth", queue="lite") == 2
    assert value(samples, "academy_ai_queue_depth", queue="basic") == 0
    assert value(samples, "academy_ai_queue_depth", queue="premium") == 1
    assert value(samples, "academy_ai_queue_depth", queue="domain") == 0
    assert value(samples, "academy_ai_scrape_error", source="broker") == 0
    assert value(samples, "academy_ai_jobs", status="PENDING", tier="lite", job_type="ping") == 2
    assert value(samples, "academy_ai_jobs", status="PENDING", tier="premium", job_type="ping") == 1
    assert value(samples, "academy_ai_oldest_pending_age_seconds", tier="basic") == 0
    assert (value(samples, "academy_ai_oldest_pending_age_seconds", tier="lite") or -1) >= 0


@pytest.mark.django_db
def test_oldest_pending_age_is_the_oldest_waiting_job_per_tier() -> None:
    now = timezone.now()
    AIJob.objects.create(job_type="ping", tier="basic", status=JobStatus.PENDING, created_at=now - timedelta(minutes=5))
    AIJob.objects.create(
        job_type="ping", tier="basic", status=JobStatus.RETRYING, created_at=now - timedelta(minutes=9)
    )
    AIJob.objects.create(job_type="ping", tier="basic", status=JobStatus.DONE, created_at=now - timedelta(hours=3))
    ages = metrics.oldest_pending_ages(now=now)
    assert ages == {"lite": 0.0, "basic": 540.0, "premium": 0.0}


@pytest.mark.django_db
def test_a_broker_error_is_a_scrape_error_metric_not_a_500(monkeypatch: Any, staff_client: Client) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    AIJob.objects.create(job_type="ping", tier="basic", status=JobStatus.DONE)
    response = staff_client.get("/metrics")
    assert response.status_code == 200
    samples = parse(response.content.decode())
    assert value(samples, "academy_ai_scrape_error", source="broker") == 1
    assert value(samples, "academy_ai_scrape_error", source="database") == 0
    assert not any(name == "academy_ai_queue_depth" for name, _ in samples)
    assert value(samples, "academy_ai_jobs", status="DONE", tier="basic", job_type="ping") == 1


@pytest.mark.django_db
def test_fallbacks_reviews_and_rejections_are_counted(staff_client: Client) -> None:
    basic_job = AIJob.objects.create(job_type="omr_grading", tier="basic", status=JobStatus.FALLBACK_TO_GPU)
    AIJob.objects.create(
        job_type="omr_grading",
        tier="premium",
        status=JobStatus.REVIEW_REQUIRED,
        needs_review=True,
        fallback_from=basic_job,
        fallback_from_tier="basic",
    )
    AIJob.objects.create(job_type="ocr", tier="lite", status=JobStatus.DONE, needs_review=True)
    for _ in range(2):
        AIJob.objects.create(
            job_type="ocr", tier="lite", status=JobStatus.REJECTED_BAD_INPUT, rejection_code="BLUR_OR_SHAKE"
        )
    samples = parse(staff_client.get("/metrics").content.decode())
    assert value(samples, "academy_ai_fallback_jobs", tier="premium", from_tier="basic") == 1
    assert value(samples, "academy_ai_review_jobs", job_type="omr_grading") == 1
    assert value(samples, "academy_ai_review_jobs", job_type="ocr") == 1
    assert value(samples, "academy_ai_rejections", rejection_code="BLUR_OR_SHAKE") == 2


@pytest.mark.django_db
def test_processing_histogram_buckets_the_jobs_finished_in_the_last_hour(staff_client: Client) -> None:
    now = timezone.now()
    for seconds, finished_ago in ((0.3, 60), (4, 120), (100, 600), (50, 7200)):  # the last one is too old
        finished = now - timedelta(seconds=finished_ago)
        AIJob.objects.create(
            job_type="ping",
            tier="basic",
            status=JobStatus.DONE,
            started_at=finished - timedelta(seconds=seconds),
            finished_at=finished,
        )
    samples = parse(staff_client.get("/metrics").content.decode())
    labels = {"tier": "basic", "job_type": "ping"}
    assert value(samples, "academy_ai_processing_seconds_bucket", le="0.5", **labels) == 1
    assert value(samples, "academy_ai_processing_seconds_bucket", le="5.0", **labels) == 2
    assert value(samples, "academy_ai_processing_seconds_bucket", le="60.0", **labels) == 2
    assert value(samples, "academy_ai_processing_seconds_bucket", le="120.0", **labels) == 3
    assert value(samples, "academy_ai_processing_seconds_bucket", le="+Inf", **labels) == 3
    assert value(samples, "academy_ai_processing_seconds_count", **labels) == 3
    assert value(samples, "academy_ai_processing_seconds_sum", **labels) == pytest.approx(104.3)


def test_other_transports_are_read_with_a_passive_declare_and_an_undeclared_queue_is_empty() -> None:
    with Connection(f"memory://metrics-{id(object())}") as connection:
        channel = connection.channel()
        assert isinstance(channel, memory.Channel)
        channel.queue_declare(queue="lite")
        for _ in range(3):
            channel.basic_publish(channel.prepare_message("{}"), exchange="", routing_key="lite")
        assert metrics._declared_depths(connection, ["lite", "never-declared"]) == {"lite": 3, "never-declared": 0}
