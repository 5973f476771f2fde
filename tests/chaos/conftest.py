"""The chaos suite's machinery: a private Redis, real worker pools on it, a sweeper.

Package-scoped: the Redis server and the workers start once for tests/chaos and stop
after its last test, so the rest of a whole-suite run never sees them. The shared Redis
on 6379 is not touched: the workers get the private broker in ``CELERY_BROKER_URL`` and
this process publishes there only inside a chaos test (:func:`use_broker`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

import tests.chaos.probes  # noqa: F401  (registers chaos_record in this process too)
from tests.chaos.scenarios import Chaos, Cluster, Figures, RedisServer, Sweeper, free_port, use_broker

VAR_DIR = Path(os.environ.get("ACADEMY_VAR_DIR", "/tmp")) / "chaos"
FIGURES: list[Figures] = []


@pytest.fixture(scope="package")
def chaos_redis() -> Iterator[RedisServer]:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    server = RedisServer(free_port(), VAR_DIR / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def chaos_cluster(chaos_redis: RedisServer, django_db_setup: Any) -> Iterator[Cluster]:
    db = settings.DATABASES["default"]  # the test database, once pytest-django made it
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    cluster = Cluster(broker_url=chaos_redis.url, database_url=database_url, log_dir=VAR_DIR / "worker-logs")
    cluster.start_all()
    try:
        with use_broker(chaos_redis.url):
            cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture
def chaos(chaos_cluster: Cluster, chaos_redis: RedisServer, transactional_db: Any, tmp_path: Path) -> Iterator[Chaos]:
    """Workers up (a killed one restarted), this process on the private broker, the sweeper running."""
    from academy.services.tenants import tenant_create

    if chaos_redis.proc is None or chaos_redis.proc.poll() is not None:
        chaos_redis.start()
    with use_broker(chaos_redis.url):
        chaos_cluster.ensure_running()
        chaos_cluster.wait_ready()
        slug = f"chaos-{uuid.uuid4().hex[:8]}"
        tenant, _ = tenant_create(slug=slug, username=slug, premium=True)
        runs = tmp_path / "runs"
        runs.mkdir()
        sweeper = Sweeper(every=1.0)
        sweeper.start()
        try:
            yield Chaos(cluster=chaos_cluster, redis=chaos_redis, runs_dir=runs, tenant=tenant)
        finally:
            sweeper.stop()


@pytest.fixture
def record() -> Any:
    def keep(figures: Figures) -> Figures:
        FIGURES.append(figures)
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        (VAR_DIR / "figures.json").write_text(json.dumps([f.as_dict() for f in FIGURES], indent=2, default=str))
        return figures

    return keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("chaos figures")
        for figures in FIGURES:
            terminalreporter.write_line(figures.line())
