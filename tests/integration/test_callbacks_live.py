"""A domain callback that cannot succeed, through the real domain pool and Redis: tried
once, recorded on the job, not retried by Celery and not re-sent by the sweeper."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from academy.jobs.sending import callbacks_send
from academy.jobs.sweep import sweep_once
from academy.models import AIJob, JobStatus
from tests.integration.conftest import pool_log, wait_for

pytestmark = [pytest.mark.integration]


def test_a_callback_that_cannot_succeed_runs_once_on_the_domain_pool_and_is_given_up(
    live: Any, make_tenant: Any
) -> None:
    tenant, _ = make_tenant()
    old = timezone.now() - timedelta(hours=1)
    job = AIJob.objects.create(job_type="ping", tenant=tenant, status=JobStatus.DONE, source_domain="submission",
                               source_id="abc", finished_at=old)  # fmt: skip

    callbacks_send(job_ids=[job.job_id])

    def given_up() -> AIJob | None:
        connection.close_if_unusable_or_obsolete()
        fresh = AIJob.objects.get(pk=job.pk)
        return fresh if fresh.callback_failed_at is not None else None

    failed: AIJob = wait_for(given_up, timeout=30)
    assert failed.callback_attempts == 1
    assert "not a submission id" in failed.callback_error
    # Celery's autoretry would have sent it again within a second or two (backoff 1 s, jitter).
    time.sleep(4)
    runs = TaskResult.objects.filter(task_name="ai_tasks.domain.job_callback", task_args__contains=job.job_id)
    assert [(r.status, r.result) for r in runs] == [("SUCCESS", f'{{"job_id": "{job.job_id}", "applied": false}}')]
    assert sweep_once()["callbacks"] == 0
    failed.refresh_from_db()
    assert failed.callback_attempts == 1
    assert "Retry in" not in "".join(line for line in pool_log("domain").splitlines() if job.job_id in line)
