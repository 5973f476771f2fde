"""A run's claim and finish on PostgreSQL: one statement each, and the same rules as the ORM.

The claim is an ``UPDATE ... RETURNING`` joined to the tenant and its config; a finish
is one data-modifying ``WITH`` (the fenced close, the write-once result and the rows of
the run's files). These pin the statement counts and what the ORM path guaranteed: the
relations arrive loaded, JSON arrives parsed, flags and progress merge into the row's,
the lease token fences, an earlier result is kept, and a fenced-out run leaves no file.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from academy.jobs.claims import job_claim, jobs_claim
from academy.jobs.dispatch import job_dispatch
from academy.jobs.finish import Finish, job_finish
from academy.models import AIJob, AIResult, JobArtifact, JobStatus
from workers.base import Artifact

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement paths are PostgreSQL's")


def _finish(status: str, **fields: Any) -> Finish:
    return Finish(status=status, **fields)


def test_a_claim_is_one_statement_and_brings_the_tenant_and_its_config(make_tenant: Any) -> None:
    tenant, _ = make_tenant(premium=True, gpu_fallback_threshold=0.42)
    created = AIJob.objects.create(job_type="ping", tenant=tenant, payload={"echo": "한글", "n": [1, 2]})
    with CaptureQueriesContext(connection) as queries:
        job, token = job_claim(job_id=created.job_id, worker="w")
        assert job is not None
        assert job.tenant is not None
        # Everything the lifecycle reads from the claimed job is already there.
        assert (job.tenant.slug, job.tenant.config.gpu_fallback_threshold) == (tenant.slug, 0.42)
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
    assert job.payload == {"echo": "한글", "n": [1, 2]}  # parsed, as the ORM gives it
    assert (job.status, job.attempt_count, job.lease_token, job.locked_by) == (JobStatus.RUNNING, 1, token, "w")
    assert job.progress == {"stage": "started", "percent": 0}
    assert job.started_at is not None
    assert job.lease_expires_at is not None


def test_a_claim_without_a_tenant_or_a_config_loads_none(db: Any, make_tenant: Any) -> None:
    loose = AIJob.objects.create(job_type="ping")
    job, _ = job_claim(job_id=loose.job_id, worker="w")
    assert job is not None
    assert job.tenant is None
    tenant, _ = make_tenant()
    tenant.config.delete()
    bare = AIJob.objects.create(job_type="ping", tenant=tenant)
    job, _ = job_claim(job_id=bare.job_id, worker="w")
    assert job is not None
    with CaptureQueriesContext(connection) as queries:
        assert not hasattr(job.tenant, "config")  # known to be missing: no query to find out
    assert queries.captured_queries == []


def test_a_job_that_is_not_claimable_says_why(make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    job = AIJob.objects.create(job_type="ping", tenant=tenant)
    assert job_claim(job_id=job.job_id, worker="a")[0] is not None
    assert job_claim(job_id=job.job_id, worker="b") == (None, "not_claimable")  # leased
    assert job_claim(job_id="nope", worker="b") == (None, "missing")
    spent = AIJob.objects.create(job_type="ping", tenant=tenant, attempt_count=5, max_attempts=5)
    assert job_claim(job_id=spent.job_id, worker="b") == (None, "exhausted")


def test_a_finish_is_one_statement_and_merges_into_the_row(make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    created = AIJob.objects.create(job_type="ping", tenant=tenant, flags={"tier_warning": "kept"})
    job, token = job_claim(job_id=created.job_id, worker="w")
    assert job is not None
    finish = _finish(JobStatus.DONE, flags={"review_candidate": True}, result={"pong": True})
    with CaptureQueriesContext(connection) as queries:
        assert job_finish(job_id=job.job_id, token=token, finish=finish)
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert job.flags == {"tier_warning": "kept", "review_candidate": True}
    assert job.needs_review is True
    assert job.progress == {"stage": "done", "percent": 100}
    assert (job.lease_token, job.lease_expires_at) == ("", None)
    assert job.finished_at is not None
    assert AIResult.objects.get(job=job).payload == {"pong": True}


def test_a_finish_is_fenced_by_the_lease_token_and_keeps_the_first_result(make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    created = AIJob.objects.create(job_type="ping", tenant=tenant)
    job, token = job_claim(job_id=created.job_id, worker="w")
    assert job is not None
    stale = _finish(JobStatus.DONE, result={"from": "a run that lost its lease"})
    assert not job_finish(job_id=job.job_id, token="not-the-lease", finish=stale)
    assert not AIResult.objects.filter(job=job).exists()
    assert AIJob.objects.get(pk=job.pk).status == JobStatus.RUNNING

    AIResult.objects.create(job=job, payload={"from": "the first run"})
    assert job_finish(job_id=job.job_id, token=token, finish=_finish(JobStatus.DONE, result={"x": 1}))
    assert AIResult.objects.get(job=job).payload == {"from": "the first run"}
    # Finished: the same token matches nothing any more.
    assert not job_finish(job_id=job.job_id, token=token, finish=_finish(JobStatus.FAILED))


def test_a_rejected_or_retried_finish_stores_no_result(make_tenant: Any) -> None:
    tenant, _ = make_tenant()
    created = AIJob.objects.create(job_type="ping", tenant=tenant)
    job, token = job_claim(job_id=created.job_id, worker="w")
    assert job is not None
    rejected = _finish(JobStatus.REJECTED_BAD_INPUT, rejection_code="CORRUPTED_FILE", result={"ignored": True})
    assert job_finish(job_id=job.job_id, token=token, finish=rejected)
    job.refresh_from_db()
    assert (job.status, job.rejection_code) == (JobStatus.REJECTED_BAD_INPUT, "CORRUPTED_FILE")
    assert not AIResult.objects.filter(job=job).exists()


def _overlay(data: bytes = b"\x89PNG overlay") -> list[Artifact]:
    return [Artifact("overlay.png", data, "image/png")]


def test_a_finish_with_a_file_is_one_statement_and_records_where_the_file_is(make_tenant: Any) -> None:
    from academy import storage

    tenant, _ = make_tenant()
    created = AIJob.objects.create(job_type="omr_grading", tenant=tenant)
    job, token = job_claim(job_id=created.job_id, worker="w")
    assert job is not None
    finish = _finish(JobStatus.DONE, result={"answers": {}}, artifacts=_overlay())
    with CaptureQueriesContext(connection) as queries:
        assert job_finish(job_id=job.job_id, token=token, finish=finish, claimed=job)
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
    artifact = JobArtifact.objects.get(job=job)
    assert artifact.path.startswith(f"tenants/{tenant.slug}/artifacts/{job.job_id}/")
    assert (artifact.name, artifact.content_type, artifact.size) == ("overlay.png", "image/png", 12)
    assert storage.file_read(artifact.path) == b"\x89PNG overlay"
    assert AIResult.objects.get(job=job).payload == {"answers": {}, "artifacts": {"overlay.png": artifact.path}}
    assert AIJob.objects.get(pk=job.pk).status == JobStatus.DONE


def test_a_run_that_lost_its_lease_leaves_no_file_and_no_row(make_tenant: Any) -> None:
    from django.core.files.storage import default_storage

    tenant, _ = make_tenant()
    created = AIJob.objects.create(job_type="omr_grading", tenant=tenant)
    job, _ = job_claim(job_id=created.job_id, worker="w")
    assert job is not None
    stale = _finish(JobStatus.DONE, result={}, artifacts=_overlay())
    assert not job_finish(job_id=job.job_id, token="a-lost-lease", finish=stale, claimed=job)
    assert not JobArtifact.objects.filter(job=job).exists()
    folder = f"tenants/{tenant.slug}/artifacts/{job.job_id}/a-lost-lease"
    assert not default_storage.exists(f"{folder}/overlay.png")


def test_a_finish_that_replaces_an_earlier_runs_file_removes_the_old_one(
    make_tenant: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core.files.storage import default_storage

    from academy import storage

    tenant, _ = make_tenant()
    created = AIJob.objects.create(job_type="omr_grading", tenant=tenant)
    old = storage.artifact_save(tenant=tenant, job_id=created.job_id, name="overlay.png", data=b"old", run="run-1")
    JobArtifact.objects.create(job=created, name="overlay.png", path=old, content_type="image/png", size=3)
    job, token = job_claim(job_id=created.job_id, worker="w")
    assert job is not None
    finish = _finish(JobStatus.DONE, result={}, artifacts=_overlay(b"new"))
    with django_capture_on_commit_callbacks(execute=True):  # the old file goes once the new row commits
        assert job_finish(job_id=job.job_id, token=token, finish=finish, claimed=job)
    artifact = JobArtifact.objects.get(job=job)
    assert storage.file_read(artifact.path) == b"new"
    assert artifact.path != old
    assert not default_storage.exists(old)


@pytest.mark.django_db(transaction=True)
def test_a_claim_is_planned_once_per_connection_and_then_reused(make_tenant: Any, settings: Any) -> None:
    settings.DEBUG = False  # a connection that logs queries gets a plain cursor
    tenant, _ = make_tenant()
    dispatched = [job_dispatch(job_type="ping", payload={}, tenant=tenant, publish=False) for _ in "abcd"]
    ids = [outcome["job_id"] for outcome in dispatched]
    connection.close()  # a fresh session: nothing prepared yet

    for job_id in ids[:2]:
        job, _ = job_claim(job_id=job_id, worker="test")
        assert job is not None
        assert job.tenant == tenant  # the joined rows still come back as objects
    claims = jobs_claim(job_ids=ids[2:], worker="test")  # a message's jobs: the same statement
    assert sorted(claims.taken) == sorted(ids[2:])
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]

    assert len(prepared) == 1
    assert 'UPDATE "academy_aijob" AS u SET' in prepared[0]
