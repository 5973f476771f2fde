"""Real worker processes: one `celery worker` per tier plus the domain pool.

They run against the test database (pytest-django's ``test_<name>``) and a Redis
database of their own, with the probe processors loaded. Tests use
``transaction=True`` so the workers see committed rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection

from academy.models import AIJob
from config.celery import app

POOLS = ("lite", "basic", "premium", "domain")
LOG_DIR = Path(os.environ.get("ACADEMY_VAR_DIR", "/tmp")) / "worker-logs"


def _worker_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        PYTHONUNBUFFERED="1",
    )
    return env


class Pools:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, pool: str) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = (LOG_DIR / f"{pool}.log").open("ab")
        self.procs[pool] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", pool, "-n", f"{pool}@%h",
             "-c", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            env=_worker_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def stop(self, pool: str) -> None:
        proc = self.procs.pop(pool, None)
        if proc is None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def wait_ready(self, pools: tuple[str, ...] = POOLS, timeout: float = 60) -> None:
        wanted = {f"{p}@" for p in pools}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            names = {name.split("@")[0] + "@" for reply in replies for name in reply}
            if wanted <= names:
                return
        raise TimeoutError(f"workers {sorted(wanted)} did not answer a ping; see {LOG_DIR}")


@pytest.fixture(scope="session")
def pools(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Pools]:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    running = Pools()
    for pool in POOLS:
        running.start(pool)
    try:
        running.wait_ready()
        yield running
    finally:
        for pool in list(running.procs):
            running.stop(pool)


@pytest.fixture
def live(pools: Pools, transactional_db: Any) -> Pools:
    """Workers up, and a database whose commits they can see."""
    return pools


def pool_log(pool: str) -> str:
    """What a pool's workers have logged so far (every test run appends to the same file)."""
    try:
        return (LOG_DIR / f"{pool}.log").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_terminal(job_id: str, *, timeout: float = 30) -> AIJob:
    def done() -> AIJob | None:
        connection.close_if_unusable_or_obsolete()
        job = AIJob.objects.get(job_id=job_id)
        return job if job.is_terminal else None

    job: AIJob = wait_for(done, timeout=timeout)
    return job
