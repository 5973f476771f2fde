"""The GPU wake-up check without workers: when it starts the pool, and the cool-down."""

from __future__ import annotations

import sys
import time
import types
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from academy.models import AIJob, JobStatus, RuntimeFlag
from ai_tasks import gpu_wakeup

pytestmark = pytest.mark.django_db


@pytest.fixture
def wakeup(settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A starter that records its calls, no premium worker, and one premium job due 2 min ago."""
    settings.AI_GPU_STARTER = "command:/bin/true"
    settings.AI_GPU_WAKEUP_AFTER_SECONDS = 60
    settings.AI_GPU_WAKEUP_COOLDOWN_SECONDS = 600
    started: list[Any] = []
    monkeypatch.setattr(gpu_wakeup, "premium_workers", lambda timeout=1.0: [])

    def start_pool(starter: gpu_wakeup.Starter) -> dict[str, Any]:
        started.append(starter)
        return {"pid": 1}

    monkeypatch.setattr(gpu_wakeup, "start_pool", start_pool)
    AIJob.objects.create(
        job_type="ping", tier="premium", status=JobStatus.PENDING, next_run_at=timezone.now() - timedelta(minutes=2)
    )
    return started


def test_two_checks_in_a_row_start_the_pool_once(wakeup: list[Any]) -> None:
    first = gpu_wakeup.check_once()
    second = gpu_wakeup.check_once()
    assert first["action"] == "started"
    assert second["action"] == "cooldown"
    assert wakeup == [gpu_wakeup.Starter("command", "/bin/true")]
    assert RuntimeFlag.objects.get(key=gpu_wakeup.STARTED_FLAG).value


def test_the_cool_down_ends(wakeup: list[Any]) -> None:
    now = timezone.now()
    assert gpu_wakeup.check_once(now=now)["action"] == "started"
    assert gpu_wakeup.check_once(now=now + timedelta(seconds=599))["action"] == "cooldown"
    assert gpu_wakeup.check_once(now=now + timedelta(seconds=601))["action"] == "started"
    assert len(wakeup) == 2


def test_a_claim_on_a_stale_read_loses(wakeup: list[Any]) -> None:
    # Two processes read the same (empty) row; only the first conditional UPDATE wins.
    now = timezone.now()
    row = RuntimeFlag.objects.create(key=gpu_wakeup.STARTED_FLAG, value="")
    assert gpu_wakeup.claim_start(now, 600) is True
    won = RuntimeFlag.objects.filter(pk=row.pk, value="").update(value=now.isoformat())
    assert won == 0


def test_no_start_while_a_premium_worker_answers(wakeup: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_wakeup, "premium_workers", lambda timeout=1.0: ["premium@gpu-1"])
    assert gpu_wakeup.check_once()["action"] == "worker_up"
    assert wakeup == []


def test_no_start_when_the_broker_cannot_be_asked(wakeup: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_wakeup, "premium_workers", lambda timeout=1.0: None)
    assert gpu_wakeup.check_once()["action"] == "broker_unreachable"
    assert wakeup == []


def test_no_start_before_the_work_has_waited_long_enough(wakeup: list[Any], settings: Any) -> None:
    settings.AI_GPU_WAKEUP_AFTER_SECONDS = 300
    assert gpu_wakeup.check_once()["action"] == "waiting"
    assert wakeup == []


def test_no_start_without_premium_work(wakeup: list[Any]) -> None:
    AIJob.objects.update(status=JobStatus.DONE)
    assert gpu_wakeup.check_once()["action"] == "idle"
    AIJob.objects.update(status=JobStatus.RETRYING, next_run_at=timezone.now() + timedelta(minutes=5))
    assert gpu_wakeup.check_once()["action"] == "idle"  # backing off: not due yet
    AIJob.objects.update(tier="basic", status=JobStatus.PENDING, next_run_at=timezone.now() - timedelta(hours=1))
    assert gpu_wakeup.check_once()["action"] == "idle"
    assert wakeup == []


def test_disabled_without_a_starter(wakeup: list[Any], settings: Any) -> None:
    settings.AI_GPU_STARTER = ""
    assert gpu_wakeup.check_once()["action"] == "disabled"
    assert wakeup == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("command:", None),
        ("command:'unclosed", None),
        ("ec2:not-an-instance", None),
        ("ssh:gpu-1", None),
        ("ec2:i-0f52f9d89481385a8", gpu_wakeup.Starter("ec2", "i-0f52f9d89481385a8")),
        ("command: bin/start-gpu --zone a", gpu_wakeup.Starter("command", "bin/start-gpu --zone a")),
    ],
)
def test_parse_starter(raw: str, expected: gpu_wakeup.Starter | None) -> None:
    assert gpu_wakeup.parse_starter(raw) == expected


def test_a_command_starter_runs_without_a_shell(tmp_path: Path) -> None:
    # A shell would run two touches; without one, "a;touch" is a file name.
    outcome = gpu_wakeup.start_command(f"touch {tmp_path}/a;touch {tmp_path}/b")
    assert outcome["pid"] > 0
    deadline = time.monotonic() + 5
    while not (tmp_path / "b").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a;touch", "b"]


def test_a_missing_program_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    outcome = gpu_wakeup.start_command("/nonexistent/start-gpu")
    assert "FileNotFoundError" in outcome["error"]
    assert "cannot run /nonexistent/start-gpu" in caplog.text


def test_ec2_without_boto3_logs_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    assert gpu_wakeup.start_ec2("i-0123456789abcdef0") == {"error": "boto3 is not installed"}
    assert "pip install boto3" in caplog.text


def test_ec2_starts_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    class Client:
        def start_instances(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return {"StartingInstances": [{"InstanceId": "i-0123456789abcdef0", "CurrentState": {"Name": "pending"}}]}

    fake = types.ModuleType("boto3")
    fake.client = lambda service: Client() if service == "ec2" else None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boto3", fake)
    outcome = gpu_wakeup.start_ec2("i-0123456789abcdef0")
    assert outcome == {"instance": "i-0123456789abcdef0", "state": "pending"}
    assert calls == [{"InstanceIds": ["i-0123456789abcdef0"]}]
