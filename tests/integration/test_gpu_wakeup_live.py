"""The GPU wake-up against real workers: a premium job waits, the check starts the pool.

The shared premium pool (tests/integration/conftest.py) is stopped for this test, so
no one serves the premium queue; the configured starter is a command that launches a
real premium worker, as a GPU machine's boot would. The job then completes on it.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from academy.jobs.dispatch import job_dispatch
from academy.models import JobStatus
from ai_tasks import gpu_wakeup
from tests.integration.conftest import LOG_DIR, Pools, _worker_env, wait_for, wait_terminal

pytestmark = [pytest.mark.integration]

WOKEN = "gpuwake"


def _stop_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def premium_pool_down(pools: Pools, transactional_db: Any) -> Iterator[list[int]]:
    """The shared premium pool stopped; yields a list for the pids of woken workers."""
    pools.stop("premium")
    wait_for(lambda: gpu_wakeup.premium_workers() == [], timeout=20)
    woken: list[int] = []
    try:
        yield woken
    finally:
        for pid in woken:
            _stop_group(pid)
        pools.start("premium")
        pools.wait_ready(("premium",))


def test_a_waiting_premium_job_wakes_the_gpu_pool_once(
    premium_pool_down: list[int], make_tenant: Any, settings: Any
) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    worker = [
        "env", "DJANGO_SETTINGS_MODULE=tests.settings", f"DATABASE_URL={_worker_env()['DATABASE_URL']}",
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "premium", "-n", f"{WOKEN}@%h",
        "-c", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        "--logfile", str(LOG_DIR / f"{WOKEN}.log"),
    ]  # fmt: skip
    settings.AI_GPU_STARTER = "command:" + shlex.join(worker)
    settings.AI_GPU_WAKEUP_AFTER_SECONDS = 0
    settings.AI_GPU_WAKEUP_COOLDOWN_SECONDS = 300

    tenant, _ = make_tenant(premium=True)
    outcome = job_dispatch(job_type="ping", payload={"echo": "gpu"}, tenant=tenant, tier="premium")
    assert outcome["ok"], outcome
    job_id = str(outcome["job_id"])

    first = gpu_wakeup.check_once()
    assert first["action"] == "started", first
    premium_pool_down.append(first["pid"])
    second = gpu_wakeup.check_once()
    assert second["action"] in {"cooldown", "worker_up"}, second  # never a second start

    job = wait_terminal(job_id, timeout=60)
    assert job.status == JobStatus.DONE
    assert job.locked_by.startswith(f"{WOKEN}@")
    # The pool is up now: the check sees it and starts nothing, whatever the cool-down.
    settings.AI_GPU_WAKEUP_COOLDOWN_SECONDS = 0
    assert gpu_wakeup.check_once()["action"] == "idle"
