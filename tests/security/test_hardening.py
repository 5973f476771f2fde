"""The platform's other locks: worker token, Flower, JSON-only queues, upload caps, secrets, deploy check."""

from __future__ import annotations

import inspect
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from academy.models import AIJob, OmrBatch
from academy.rejections import REJECTION_MESSAGES

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A bare environment: none of the test run's settings, only what the case names."""
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ACADEMY_VAR_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(ROOT),
    }
    env.update(extra)
    return env


# --------------------------------------------------------------------------- (b) the internal worker token


INTERNAL_URLS = [
    ("get", "/api/v1/internal/ai/job/next/"),
    ("post", "/api/v1/internal/ai/job/heartbeat/"),
    ("post", "/api/v1/internal/ai/job/result/"),
]


@override_settings(INTERNAL_WORKER_TOKEN="")
@pytest.mark.parametrize(("method", "url"), INTERNAL_URLS)
@pytest.mark.parametrize("given", ["", "anything"])
def test_the_internal_api_is_503_without_a_configured_token(db: Any, client: Any, method: str, url: str, given: str):
    headers = {"HTTP_X_WORKER_TOKEN": given} if given else {}
    assert getattr(client, method)(url, **headers).status_code == 503


@override_settings(INTERNAL_WORKER_TOKEN="correct-horse-battery-staple")
@pytest.mark.parametrize(("method", "url"), INTERNAL_URLS)
@pytest.mark.parametrize(
    "given",
    [
        "correct-horse-battery-stapleX",  # the right token plus one byte
        "correct-horse-battery-stapl",  # a prefix
        "correct-horse-battery-staplf",  # same length, last byte off
        "CORRECT-HORSE-BATTERY-STAPLE",
        " correct-horse-battery-staple",
        "토큰",  # non-ASCII must not crash the comparison
    ],
)
def test_a_wrong_worker_token_is_401(db: Any, client: Any, method: str, url: str, given: str) -> None:
    response = getattr(client, method)(url, HTTP_X_WORKER_TOKEN=given, content_type="application/json")
    assert response.status_code == 401


@override_settings(INTERNAL_WORKER_TOKEN="correct-horse-battery-staple")
def test_the_worker_token_is_compared_in_constant_time(db: Any, client: Any) -> None:
    import hmac

    from academy.api import internal

    source = inspect.getsource(internal._worker_auth)
    assert "compare_digest" in source
    assert "== expected" not in source
    assert "expected ==" not in source
    # internal.py calls hmac.compare_digest through the hmac module, so patching it there counts its calls.
    with mock.patch.object(hmac, "compare_digest", wraps=hmac.compare_digest) as compare:
        denied = client.get("/api/v1/internal/ai/job/next/", HTTP_X_WORKER_TOKEN="wrong")
        allowed = client.get("/api/v1/internal/ai/job/next/", HTTP_X_WORKER_TOKEN="correct-horse-battery-staple")
    assert (denied.status_code, allowed.status_code) == (401, 200)
    assert compare.call_count == 2
    assert compare.call_args_list[0].args == (b"wrong", b"correct-horse-battery-staple")


def test_metrics_basic_auth_is_compared_in_constant_time() -> None:
    from academy import views_metrics

    assert "compare_digest" in inspect.getsource(views_metrics._matches)


# --------------------------------------------------------------------------- (c) Flower


@pytest.mark.parametrize("debug", ["0", "false", ""])
def test_flower_refuses_to_start_without_basic_auth_outside_debug(tmp_path: Path, debug: str) -> None:
    env = _clean_env(tmp_path, SECRET_KEY=secrets.token_urlsafe(50), DEBUG=debug)
    done = subprocess.run(
        [str(ROOT / "bin" / "flower")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "FLOWER_BASIC_AUTH is required outside debug; refusing to start" in done.stderr


def test_flower_without_a_secret_key_and_debug_off_does_not_come_up_open(tmp_path: Path) -> None:
    # bin/flower takes "no SECRET_KEY" for debug, but the settings refuse DEBUG=0 without
    # one, so Celery cannot load its app and Flower never listens.
    env = _clean_env(tmp_path, DEBUG="0", FLOWER_PORT="0")
    done = subprocess.run(
        [str(ROOT / "bin" / "flower")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in done.stderr


# --------------------------------------------------------------------------- (d) JSON-only queues


def test_celery_accepts_json_only() -> None:
    from config.celery import app

    assert app.conf.accept_content == ["json"]
    assert app.conf.result_accept_content == ["json"]
    assert (app.conf.task_serializer, app.conf.result_serializer) == ("json", "json")


def test_a_pickle_message_is_refused_by_the_workers_accept_list() -> None:
    from kombu.exceptions import ContentDisallowed
    from kombu.serialization import dumps, loads

    from config.celery import app

    class Boom:
        def __reduce__(self) -> Any:
            return (os.system, ("echo pwned > /tmp/badinput-pwned",))

    content_type, encoding, body = dumps(Boom(), serializer="pickle")
    with pytest.raises(ContentDisallowed):
        loads(body, content_type, encoding, accept=app.conf.accept_content)
    assert not Path("/tmp/badinput-pwned").exists()


@pytest.mark.parametrize("tier", ["lite", "basic", "premium"])
def test_a_pickle_message_on_a_tier_queue_is_not_delivered(tier: str) -> None:
    """Publish with serializer="pickle" to the tier's queue; a consumer with the workers'
    accept list gets a decode error, never the body. A JSON message on the same queue passes."""
    from kombu import Connection, Exchange, Queue
    from kombu.exceptions import ContentDisallowed

    from config.celery import app

    assert tier in {q.name for q in app.conf.task_queues}
    # kombu's memory transport is process-wide: a queue of this test's own, so nothing
    # another test left on a queue of the same name is drained here.
    name = f"{tier}-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    delivered: list[Any] = []
    refused: list[Exception] = []

    def on_decode_error(message: Any, exc: Exception) -> None:
        refused.append(exc)
        message.ack()

    def on_message(body: Any, message: Any) -> None:
        delivered.append(body)
        message.ack()

    with Connection("memory://") as conn:
        with conn.Producer() as producer:
            for serializer in ("pickle", "json"):
                producer.publish(
                    {"job_id": "x", "via": serializer},
                    exchange=queue.exchange,
                    routing_key=name,
                    declare=[queue],
                    serializer=serializer,
                )
        consumer = conn.Consumer(
            queue,
            accept=app.conf.accept_content,
            callbacks=[on_message],
            on_decode_error=on_decode_error,
        )
        with consumer:
            for _ in range(2):
                conn.drain_events(timeout=2)
    assert [type(e) for e in refused] == [ContentDisallowed]
    assert delivered == [{"job_id": "x", "via": "json"}]


# --------------------------------------------------------------------------- (e) upload size at the web layer


def test_a_job_upload_over_max_upload_bytes_is_413(make_tenant: Any, api_for: Any, settings: Any, tmp_path: Path):
    # One settings override only: override_settings around pytest-django's ``settings``
    # would leak the lower cap into later tests when both unwind.
    settings.MAX_UPLOAD_BYTES = 1000
    settings.MEDIA_ROOT = str(tmp_path / "media")
    _, token = make_tenant()
    upload = SimpleUploadedFile("roster.csv", b"name\n" + b"x" * 2000)
    response = api_for(token).post(
        "/api/v1/jobs/", {"job_type": "excel_parsing", "payload": "{}", "file": upload}, format="multipart"
    )
    assert response.status_code == 413
    assert response.json()["rejection_code"] == "FILE_TOO_LARGE"
    assert response.json()["error"] == REJECTION_MESSAGES["FILE_TOO_LARGE"]
    assert not AIJob.objects.exists()
    assert not list((tmp_path / "media").rglob("roster.csv"))  # refused before it was stored


@override_settings(MAX_UPLOAD_BYTES=1000)
def test_a_batch_upload_over_max_upload_bytes_is_413(make_tenant: Any, api_for: Any) -> None:
    _, token = make_tenant()
    api = api_for(token)
    exam_id = api.post("/api/v1/exams/", {"title": "t"}, format="json").json()["exam_id"]
    files = [SimpleUploadedFile("a.jpg", b"\xff" * 600), SimpleUploadedFile("b.jpg", b"\xff" * 600)]
    response = api.post(f"/api/v1/exams/{exam_id}/omr-batches/", {"files": files}, format="multipart")
    assert response.status_code == 413
    assert response.json()["rejection_code"] == "FILE_TOO_LARGE"
    assert not OmrBatch.objects.exists()


# --------------------------------------------------------------------------- (f) secrets only from the environment


@pytest.mark.parametrize(
    "env",
    [{"DEBUG": "0"}, {"DEBUG": "false"}, {"SECRET_KEY": ""}, {"DEBUG": "0", "SECRET_KEY": ""}],
    ids=["debug-0", "debug-false", "empty-secret-key", "debug-0-empty-secret-key"],
)
def test_settings_refuse_to_load_without_a_secret_key_outside_debug(tmp_path: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env=_clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "RuntimeError: SECRET_KEY must be set when DEBUG is off" in done.stderr


def test_no_secret_has_a_production_default() -> None:
    source = (ROOT / "config" / "settings.py").read_text()
    # The only literal key is the debug one, and it is used only while DEBUG is on.
    assert source.count("insecure-dev-key-only-for-debug") == 1
    assert 'os.environ.get("SECRET_KEY") or ("insecure-dev-key-only-for-debug" if DEBUG else "")' in source
    for name in ("INTERNAL_WORKER_TOKEN", "METRICS_USERNAME", "METRICS_PASSWORD"):
        assert f'os.environ.get("{name}", "")' in source, name


# --------------------------------------------------------------------------- (g) manage.py check --deploy


@pytest.fixture(scope="module")
def deploy_check(tmp_path_factory: Any) -> subprocess.CompletedProcess[str]:
    tmp = tmp_path_factory.mktemp("deploy")
    env = _clean_env(
        tmp,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="academy.example",
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11"),
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_check_deploy_finds_no_security_issue(deploy_check: subprocess.CompletedProcess[str]) -> None:
    output = deploy_check.stdout + deploy_check.stderr
    assert deploy_check.returncode == 0, output
    assert "(security." not in output, output
    assert "ERRORS:" not in output, output


def test_check_deploy_is_clean(deploy_check: subprocess.CompletedProcess[str]) -> None:
    output = deploy_check.stdout + deploy_check.stderr
    assert "System check identified no issues" in output, output
