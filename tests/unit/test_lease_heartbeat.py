"""A run's lease is renewed by its process's one heartbeat thread, not by a thread per run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from academy.jobs.dispatch import job_dispatch
from academy.models import AIJob, JobStatus
from ai_tasks import lifecycle

pytestmark = pytest.mark.django_db(transaction=True)


def _dispatch(tenant: Any, **payload: Any) -> str:
    outcome = job_dispatch(job_type="probe_record", payload=payload, tenant=tenant, tier="basic", publish=False)
    return str(outcome["job_id"])


@pytest.mark.postgres_only(reason="counts the database's sessions in pg_stat_activity")
def test_every_run_of_a_process_is_renewed_by_the_same_heartbeat_thread(make_tenant: Any, settings: Any) -> None:
    settings.AI_HEARTBEAT_SECONDS = 0.05
    tenant, _ = make_tenant()
    ids = [_dispatch(tenant, sleep=0.3) for _ in range(3)]
    sessions = _sessions()  # ours, and any other process's (a live pool's) on this database

    threads = []
    for job_id in ids:
        assert lifecycle.execute(job_id=job_id, tier="basic", worker="test")["decision"] == JobStatus.DONE
        threads.append({t for t in threading.enumerate() if t.name == "lease-heartbeat"})

    assert len(threads[0]) == 1
    assert threads[0] == threads[1] == threads[2]
    for job in AIJob.objects.filter(job_id__in=ids):
        assert job.locked_at is not None
        assert job.last_heartbeat_at is not None
        assert job.last_heartbeat_at > job.locked_at + timedelta(seconds=0.15)  # beaten during its run
    # With no run left, the thread gives its database connection back.
    assert _wait_for(lambda: _sessions() <= sessions)


def _sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def _wait_for(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_run_whose_lease_another_run_took_stops_at_the_next_heartbeat(
    make_tenant: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AI_HEARTBEAT_SECONDS = 0.05
    tenant, _ = make_tenant()
    job_id = _dispatch(tenant)
    run = lifecycle._run_processor

    def taken_over(job: AIJob, lease: Any) -> Any:
        AIJob.objects.filter(job_id=job_id).update(lease_token="another-run")
        _wait_for(lambda: lease.lost)
        return run(job, lease)

    monkeypatch.setattr(lifecycle, "_run_processor", taken_over)
    assert lifecycle.execute(job_id=job_id, tier="basic", worker="test")["decision"] == "lease_lost"
    job = AIJob.objects.get(job_id=job_id)
    assert (job.status, job.lease_token) == (JobStatus.RUNNING, "another-run")  # this run wrote nothing
