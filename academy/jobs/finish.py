"""Finishing a run: its result written once, its files stored, the job closed.

Fenced by the lease token like every transition. On PostgreSQL the finish of a run that
holds its lease is one statement (:class:`FinishBatch`), for one job or for all the jobs
of a worker's message; elsewhere it locks the row and writes through the ORM.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from academy import policies, sqlrows, storage
from academy.jobs.claims import locked_run, run_close
from academy.jobs.decision import Finish as Finish
from academy.jobs.decision import rejection_finish as rejection_finish
from academy.jobs.publish import callback_publish
from academy.models import AIJob, AIResult, JobArtifact, JobStatus, Tenant
from academy.states import CALLBACK_STATUSES

logger = logging.getLogger(__name__)


def job_finish(
    *,
    job_id: str,
    token: str | None,
    finish: Finish,
    claimed: AIJob | None = None,
    held_callbacks: list[str] | None = None,
) -> bool:
    """Write the result once and close the job. False when this run no longer owns it.

    A result that already exists is kept and the new one dropped (write-once). The
    domain callback is published after commit, for jobs that came from a domain; with
    ``held_callbacks``, the job's id is added to that list instead, for the caller to
    send with others (:func:`callbacks_publish`). ``claimed``: the job as this run
    claimed it, when the caller has it (its tenant names the files' folder, so a finish
    with files needs no read of its own).
    """
    if FinishBatch.takes(token=token, finish=finish, claimed=claimed):
        assert token is not None
        alone = FinishBatch(held_callbacks=held_callbacks)
        alone.add(job_id=job_id, token=token, finish=finish, claimed=claimed)
        return job_id in alone.write()
    with transaction.atomic():
        job = locked_run(job_id, token)
        if job is None:
            return False
        stored, result_payload = _files_save(finish, tenant=job.tenant, job_id=job.job_id)
        if finish.artifacts:
            # One statement for all of them; a re-run of the job replaces its artifacts.
            JobArtifact.objects.bulk_create(
                [
                    JobArtifact(
                        job=job, name=a.name, path=stored[a.name], content_type=a.content_type, size=len(a.data)
                    )
                    for a in finish.artifacts
                ],
                update_conflicts=True,
                unique_fields=["job", "name"],
                update_fields=["path", "content_type", "size"],
            )
        if finish.stores_result:
            # Write-once: ON CONFLICT DO NOTHING keeps a result an earlier run wrote.
            AIResult.objects.bulk_create([AIResult(job=job, payload=result_payload)], ignore_conflicts=True)
        flags = {**job.flags, **finish.flags}
        run_close(
            job,
            status=finish.status,
            flags=flags,
            needs_review=policies.Resolution(finish.status, flags).needs_review,
            error_message=finish.error_message,
            rejection_code=finish.rejection_code,
            progress={**(job.progress or {}), "percent": 100, "stage": finish.status.lower()},
        )
        if job.source_domain and finish.status in CALLBACK_STATUSES:
            transaction.on_commit(functools.partial(callback_publish, job_id=job.job_id, held=held_callbacks))
    return True


def _files_save(finish: Finish, *, tenant: Tenant | None, job_id: str, run: str = "") -> tuple[dict[str, str], Any]:
    """Store the finish's files: (their paths by name, the result with those paths added
    under ``artifacts`` when it is an object)."""
    stored = {
        a.name: storage.artifact_save(tenant=tenant, job_id=job_id, name=a.name, data=a.data, run=run)
        for a in finish.artifacts
    }
    if stored and isinstance(finish.result, dict):
        return stored, {**finish.result, "artifacts": stored}
    return stored, finish.result


@dataclass(frozen=True)
class _Held:
    job_id: str
    status: str
    stored: dict[str, str]  # this run's files, by name


class FinishBatch:
    """Finishes held to be written in one statement (PostgreSQL), for runs that hold
    their leases: :func:`job_finish` writes one through a batch of its own, and a worker
    that runs the jobs of one message holds theirs in one and writes them together
    (``ai_tasks.lifecycle.execute_many``).

    :meth:`add` stores the finish's files at once and holds the rest; :meth:`write`
    writes what is held, and the fence, write-once result, file clean-up and callback
    are as in :func:`job_finish`. A held finish has no heartbeat: its holder writes it
    well before the lease ends (see :meth:`age`); if a lease runs out anyway, the fence
    drops that finish and the job's next run writes it.

    ``held_callbacks``: where the domain callbacks of the jobs it closes go (a list the
    holder sends as one message); None publishes each after commit.

    ``needs_review`` is decided from ``finish.flags``, which the lifecycle builds on the
    flags of the row it claimed; only the run that holds the lease writes them meanwhile.
    Files are written first, in a folder of this run's own (its token), so a run that
    turns out to have lost its lease has touched no file another run wrote; it removes
    its own, and a run that replaces an earlier run's files removes those.
    """

    def __init__(self, *, held_callbacks: list[str] | None = None) -> None:
        self.held_callbacks = held_callbacks
        #: the finishes held, as rows of the statement that writes them
        self.rows: list[dict[str, Any]] = []
        self._held: list[_Held] = []
        self._oldest: float | None = None

    @staticmethod
    def takes(*, token: str | None, finish: Finish, claimed: AIJob | None) -> bool:
        """Whether a finish can be written by a batch: a run holding its lease, on
        PostgreSQL, whose files (if any) have their folder named by the claimed job."""
        return token is not None and connection.vendor == "postgresql" and (claimed is not None or not finish.artifacts)

    def add(self, *, job_id: str, token: str, finish: Finish, claimed: AIJob | None) -> None:
        """Hold a finish (one :meth:`takes`) until :meth:`write`; its files are stored now."""
        stored, result = _files_save(finish, tenant=claimed.tenant if claimed else None, job_id=job_id, run=token)
        self.rows.append(
            {
                "job_id": job_id,
                "token": token,
                "status": finish.status,
                "flags": finish.flags,
                "needs_review": policies.Resolution(finish.status, finish.flags).needs_review,
                "error_message": finish.error_message,
                "rejection_code": finish.rejection_code,
                "progress": {"percent": 100, "stage": finish.status.lower()},
                "result": result,
                "stores_result": finish.stores_result,
                "files": [
                    {"name": a.name, "path": stored[a.name], "content_type": a.content_type, "size": len(a.data)}
                    for a in finish.artifacts
                ],
            }
        )
        self._held.append(_Held(job_id, finish.status, stored))
        if self._oldest is None:
            self._oldest = time.monotonic()

    def age(self) -> float:
        """Seconds since the oldest finish held was added (0 when none is)."""
        return 0.0 if self._oldest is None else time.monotonic() - self._oldest

    def write(self) -> set[str]:
        """One statement for every finish held; then empty. Returns the ids of the jobs
        it closed (the rest were fenced out)."""
        if not self.rows:
            return set()
        rows, held = self.rows, self._held
        self.rows, self._held, self._oldest = [], [], None
        first_try = True
        try:
            closed = _finish_many(rows)
        except (OperationalError, InterfaceError):
            # A dropped connection. The statement is fenced by each run's token, so once
            # more on a new connection is safe; it matches nothing that had committed, and
            # those runs' files must then stay.
            logger.warning("ai_db_reconnect finishes=%s", len(rows))
            connection.close()
            closed, first_try = _finish_many(rows), False
        self._after(closed, held, delete_fenced=first_try)
        return set(closed)

    def _after(self, closed: dict[str, tuple[str, list[str]]], held: list[_Held], *, delete_fenced: bool) -> None:
        """What follows the statement. ``closed``: (source domain, paths its earlier files
        had) of each job it closed. A run fenced out removes its own files; a closed job's
        files that an earlier run wrote are removed after commit, and its domain callback
        is published (or held)."""
        for done in held:
            if done.job_id not in closed:
                if delete_fenced:
                    storage.artifacts_delete(list(done.stored.values()))  # nothing points at them
                continue
            source_domain, earlier = closed[done.job_id]
            replaced = [p for p in earlier if p not in done.stored.values()]
            if replaced:
                transaction.on_commit(functools.partial(storage.artifacts_delete, replaced))
            if source_domain and done.status in CALLBACK_STATUSES:
                transaction.on_commit(functools.partial(callback_publish, job_id=done.job_id, held=self.held_callbacks))


def _finish_many(rows: list[dict[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    now = timezone.now()
    with sqlrows.prepared_cursor(connection) as cursor:
        cursor.execute(_finish_many_sql(), [json.dumps(rows), now, now, JobStatus.RUNNING, now, now])
        return {job_id: (source, paths or []) for job_id, source, paths in cursor.fetchall()}


@functools.cache
def _finish_many_sql() -> str:
    quote = connection.ops.quote_name
    jobs, results = quote(AIJob._meta.db_table), quote(AIResult._meta.db_table)
    files = quote(JobArtifact._meta.db_table)
    # One data-modifying WITH for any number of runs, from one JSON list. The UPDATE is
    # fenced by each row's job id and lease token and takes the row locks; a result goes
    # in only for a row it matched, and ON CONFLICT DO NOTHING keeps a result an earlier
    # run wrote (write-once). ``||`` merges the objects key by key, as {**row, **new}
    # does. Every sub-statement sees the tables as they were before the statement, so
    # ``replaced`` holds the paths of an earlier run's files.
    return (
        "WITH d AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS d(job_id text, token text, status text,"
        " flags jsonb, needs_review boolean, error_message text, rejection_code text, progress jsonb,"
        " result jsonb, stores_result boolean, files jsonb)),"
        f" closed AS (UPDATE {jobs} j SET status = d.status, flags = COALESCE(j.flags, '{{}}') || d.flags,"
        " needs_review = d.needs_review, error_message = d.error_message, rejection_code = d.rejection_code,"
        " progress = COALESCE(j.progress, '{}') || d.progress, finished_at = %s, updated_at = %s,"
        " lease_token = '', lease_expires_at = NULL"
        " FROM d WHERE j.job_id = d.job_id AND j.lease_token = d.token AND j.status = %s"
        " RETURNING j.id, j.job_id, j.source_domain, d.result, d.stores_result, d.files),"
        f" kept AS (INSERT INTO {results} (job_id, payload, created_at)"
        " SELECT id, result, %s FROM closed WHERE stores_result ON CONFLICT DO NOTHING),"
        f" replaced AS (SELECT {files}.job_id, {files}.path FROM {files} JOIN closed ON {files}.job_id = closed.id),"
        f" saved AS (INSERT INTO {files} (job_id, name, path, content_type, size, created_at)"
        " SELECT closed.id, f.name, f.path, f.content_type, f.size, %s FROM closed,"
        " jsonb_to_recordset(closed.files) AS f(name text, path text, content_type text, size bigint)"
        " ON CONFLICT (job_id, name) DO UPDATE"
        " SET path = EXCLUDED.path, content_type = EXCLUDED.content_type, size = EXCLUDED.size)"
        " SELECT closed.job_id, closed.source_domain,"
        " ARRAY(SELECT path FROM replaced WHERE replaced.job_id = closed.id) FROM closed"
    )


def job_reject(
    *, job_id: str, token: str | None, code: str, detail: str, held_callbacks: list[str] | None = None
) -> bool:
    """The worker found the input bad: :func:`job_finish` with :func:`rejection_finish`."""
    return job_finish(
        job_id=job_id, token=token, finish=rejection_finish(code=code, detail=detail), held_callbacks=held_callbacks
    )
