"""A run in a Celery pool: the adapter between a tier task and the job's transitions.

A tier task calls :func:`execute`. It claims the row (or finds that a copy already ran),
keeps the lease alive while the processor works (one heartbeat thread per process), runs
the processor, and hands what it did to :func:`academy.jobs.outcome.outcome_apply`,
which decides the job's next state by the same rules as for an out-of-cluster worker's
result (the internal worker API).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from academy import selectors, storage
from academy.jobs.claims import job_claim, job_heartbeat, jobs_claim, jobs_release, lease_lost
from academy.jobs.finish import FinishBatch, rejection_finish
from academy.jobs.outcome import Outcome, exhausted_finish, finish_or_hold, outcome_apply
from academy.jobs.publish import callbacks_publish, job_publish
from academy.models import AIJob
from academy.policies import Failure
from academy.rejections import Rejection
from ai_tasks import routing
from ai_tasks.logcontext import job_log_context
from workers import registry
from workers.base import BadInput, JobInput, ProcessingError, ProcessorResult, RetryableError

logger = logging.getLogger(__name__)


class _Waiting:
    """The claimed jobs of a message that have not started yet, ``{job_id: token}``: the
    message's loop takes them one at a time, the running job's heartbeat renews them."""

    def __init__(self, leases: dict[str, str]) -> None:
        self._leases = leases
        self._lock = threading.Lock()

    def take(self, job_id: str) -> str | None:
        with self._lock:
            return self._leases.pop(job_id, None)

    def leases(self) -> dict[str, str]:
        with self._lock:
            return dict(self._leases)

    def take_all(self) -> dict[str, str]:
        with self._lock:
            leases, self._leases = self._leases, {}
            return leases


class _Lease:
    """A run's lease while its processor works: renewed by the process's heartbeat thread
    (:class:`_Heartbeats`) every ``AI_HEARTBEAT_SECONDS``, with the run's progress.

    Progress is also written from the processor's own thread, at most every
    ``AI_PROGRESS_MIN_INTERVAL`` seconds, so a chatty processor costs a bounded number of
    row updates.
    """

    def __init__(self, job_id: str, token: str, waiting: _Waiting | None = None) -> None:
        self.job_id = job_id
        self.token = token
        self.waiting = waiting
        self.lost = False
        self._progress: dict[str, Any] | None = None
        self._written_at = time.monotonic()
        # The heartbeat's log lines carry the job's identity too (copied context).
        self.context = contextvars.copy_context()

    def __enter__(self) -> _Lease:
        _heartbeats.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _heartbeats.remove(self)

    def progress(self, stage: str, percent: int) -> None:
        self._progress = {"stage": str(stage)[:64], "percent": max(0, min(100, int(percent)))}
        if time.monotonic() - self._written_at >= settings.AI_PROGRESS_MIN_INTERVAL:
            self._beat()

    def _beat(self) -> None:
        self._written_at = time.monotonic()
        if not job_heartbeat(job_id=self.job_id, token=self.token, progress=self._progress):
            self.lost = True

    def beat(self) -> None:
        """The heartbeat: this run's lease, then those of its message's jobs still waiting."""
        self._beat()
        if self.waiting is not None and (leases := self.waiting.leases()):
            # One whose lease another run took is only run to be fenced out at its finish.
            for job_id, token in leases.items():
                if not job_heartbeat(job_id=job_id, token=token):
                    logger.warning("ai_waiting_lease_lost job_id=%s", job_id)


class _Heartbeats:
    """One thread per process renews the leases of the runs in it.

    A thread of its own per run cost about 0.4 ms to start and join, per sheet, on a
    30 ms read; nearly every run ends long before its first beat is due. This one sleeps
    until the earliest lease is due, beats it on its own database connection, and closes
    that connection once no run is left. A beat in flight as its run ends is harmless:
    it can only extend a lease its token still holds.
    """

    def __init__(self) -> None:
        self._pid = 0
        self._due: dict[_Lease, float] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._connected = False  # whether the thread's connection may be open

    def add(self, lease: _Lease) -> None:
        if self._pid != os.getpid():  # first use in this process (a pool child, after fork)
            self._pid, self._due, self._changed, self._thread = os.getpid(), {}, threading.Condition(), None
            self._connected = False
        with self._changed:
            self._due[lease] = time.monotonic() + settings.AI_HEARTBEAT_SECONDS
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)
                self._thread.start()
            if len(self._due) == 1:  # the thread sleeps with no deadline; any other lease is due sooner
                self._changed.notify()

    def remove(self, lease: _Lease) -> None:
        with self._changed:
            self._due.pop(lease, None)
            if not self._due and self._connected:
                self._changed.notify()  # the thread closes its connection

    def _next(self) -> list[_Lease]:
        """Wait until some lease is due: those leases, rescheduled. An empty list instead
        when no run is left and the thread's connection may be open."""
        with self._changed:
            while True:
                now = time.monotonic()
                if self._connected and not self._due:
                    self._connected = False
                    return []
                due = [lease for lease, at in self._due.items() if at <= now]
                if due:
                    for lease in due:
                        self._due[lease] = now + settings.AI_HEARTBEAT_SECONDS
                    self._connected = True
                    return due
                self._changed.wait(min(self._due.values()) - now if self._due else None)

    def _loop(self) -> None:
        while True:
            due = self._next()
            if not due:
                connection.close()  # this thread's own connection, until a long run comes
                continue
            close_old_connections()  # a connection the server dropped since the last beat
            for lease in due:
                try:
                    lease.context.run(lease.beat)
                except Exception:
                    logger.exception("ai_heartbeat_failed job_id=%s", lease.job_id)


_heartbeats = _Heartbeats()


def _run_processor(job: AIJob, lease: _Lease) -> Outcome:
    processor = registry.get(job.job_type)
    if processor is None:
        return Failure(
            "validation_failed", error_code="JOB_TYPE_NOT_AVAILABLE", detail=f"no processor for {job.job_type}"
        )
    data: bytes | None = None
    filename = ""
    try:
        if processor.input_key is not None:
            path = job.payload.get(processor.input_key, "")
            stored = storage.file_check(path, tenant=job.tenant)
            data = storage.file_read(stored.path)
            filename = os.path.basename(stored.path)
        result = processor.run(
            JobInput(
                params=job.payload, data=data, filename=filename, attempt=job.attempt_count, progress=lease.progress
            )
        )
    except storage.StorageRejection as exc:
        return Failure("validation_failed", error_code=exc.code, detail=str(exc))
    except BadInput as exc:
        return Failure("validation_failed", error_code=exc.code, detail=exc.message)
    except RetryableError as exc:
        return Failure("processing_failed", error_code=exc.code, detail=exc.message, retryable=True)
    except SoftTimeLimitExceeded:
        return Failure("processing_failed", error_code="timeout", detail="soft time limit exceeded")
    except ProcessingError as exc:
        return Failure("processing_failed", error_code=exc.code, detail=exc.message)
    except Exception as exc:  # a processor bug: recorded as data, never crashes the worker
        logger.exception("ai_processor_error job_id=%s job_type=%s", job.job_id, job.job_type)
        return Failure(
            "processing_failed",
            error_code="library_error",
            detail="".join(traceback.format_exception_only(exc)).strip(),
        )
    if not isinstance(result, ProcessorResult):
        return Failure(
            "processing_failed", error_code="library_error", detail=f"processor returned {type(result).__name__}"
        )
    return result


_T = TypeVar("_T")


def _reconnecting(step: Callable[[], _T]) -> _T:
    """Run a database step; if the connection turns out dead, once more on a new one.

    A connection the server dropped (a restart, pg_terminate_backend) is only found dead
    when used, often after a processor ran for seconds. The claim and the outcome writes
    are safe to repeat: each is one transaction fenced by the lease token, so a step
    that had committed before the error finds nothing left to do the second time.
    """
    try:
        return step()
    except (OperationalError, InterfaceError):
        logger.warning("ai_db_reconnect")
        connection.close()
        return step()


def execute(*, job_id: str, tier: str, worker: str) -> dict[str, Any]:
    """Run one delivery of a job's message. Safe to call any number of times per job."""
    close_old_connections()
    return _execute(job_id=job_id, tier=tier, worker=worker)


def _execute(*, job_id: str, tier: str, worker: str) -> dict[str, Any]:
    """:func:`execute` on the connection as it stands. Django's connection check is for
    a task's start: with health checks on, each one costs the next statement a
    ``SELECT 1`` round trip, which a message of several jobs needs once, not per job."""
    job, why = _reconnecting(lambda: job_claim(job_id=job_id, worker=worker))
    if job is None:
        return {"job_id": job_id, "decision": _unclaimed(job_id, why)}
    return {"job_id": job_id, "decision": _run(job, why, tier=tier, worker=worker)}


def _unclaimed(job_id: str, why: str, *, held_callbacks: list[str] | None = None) -> str:
    """The decision for a delivery whose job was not claimable."""
    if why == "exhausted":
        stale = selectors.job_get(job_id)
        if stale is not None:
            return exhausted_finish(stale, held_callbacks=held_callbacks)
    logger.info("ai_claim_skipped job_id=%s why=%s", job_id, why)
    return f"skipped:{why}"


def _run(
    job: AIJob,
    token: str,
    *,
    tier: str,
    worker: str,
    waiting: _Waiting | None = None,
    batch: FinishBatch | None = None,
) -> str:
    """One claimed run: the processor under a lease, then the outcome's decision.
    ``batch``: where a message of several jobs holds their finishes (see :func:`execute_many`)."""
    job_id = job.job_id
    # Every log line of this run, from any module, carries the job's identity.
    with job_log_context(job):
        if job.tier != tier:
            logger.warning("ai_tier_mismatch job_id=%s job_tier=%s queue_tier=%s", job_id, job.tier, tier)
        with _Lease(job_id, token, waiting) as lease:
            outcome = _run_processor(job, lease)
        if lease.lost:
            # Another run owns the job now; whatever this one wrote would be fenced out anyway.
            logger.warning("ai_lease_lost job_id=%s worker=%s", job_id, worker)
            return "lease_lost"
        try:
            decision = _reconnecting(lambda: outcome_apply(job, token, outcome, batch=batch))
        except Rejection as exc:  # e.g. a storage check raised while saving artifacts
            rejected = rejection_finish(code=exc.code, detail=exc.detail)
            finish_or_hold(job=job, token=token, finish=rejected, batch=batch)
            decision = "rejected"
        logger.info(
            "ai_job_decided job_id=%s tier=%s job_type=%s attempt=%s decision=%s",
            job_id,
            job.tier,
            job.job_type,
            job.attempt_count,
            decision,
        )
        return decision


#: the clock a message's age is read from (a test may replace it)
_clock = time.monotonic


def execute_many(*, job_ids: list[str], tier: str, worker: str) -> dict[str, Any]:
    """Run one delivery of a message that carries several jobs, one after another.

    Each job goes through the same steps as with :func:`execute` (its own token,
    lease, attempt, fencing and result), so a redelivered message re-runs only what was
    not finished. What the jobs share is the broker's per-message cost, the statement
    that claims them (``jobs_claim``, at the message's start), the statement that writes
    their finishes (a ``FinishBatch``, written at its end), and their domain callbacks, which
    go out as one message after it. A claimed job's lease is renewed by the heartbeat of
    whichever job is running. A worker killed before the finishes' write leaves the
    message's jobs RUNNING: their leases run out and the sweeper sends each out again as
    a message of its own, so a job that kills its worker spends its siblings' attempts
    once at most. A redelivery of the message that comes after the leases ran out does
    the same, with the attempts it claimed returned.

    The message has one job's time limits. A job is started from it only while it has used
    under a quarter of the soft limit, so each job it starts still has most of a job's time;
    the rest are released (their attempts returned) and sent back as messages of their
    own. That also holds when the soft limit fires outside a processor (during a claim or
    a write).
    """
    soft, _ = routing.time_limits(tier)
    started = _clock()
    decisions: dict[str, str] = {}
    close_old_connections()
    index, claimed = 0, False
    running: str | None = None  # the job whose run holds its own lease now
    waiting = _Waiting({})
    # The message's finishes are held here and written together; the callbacks of the jobs
    # they close are held too, and sent as one message once the finishes are written.
    batch = FinishBatch(held_callbacks=[])
    try:
        try:
            claims = _reconnecting(lambda: jobs_claim(job_ids=job_ids, worker=worker))
            waiting = _Waiting({job_id: token for job_id, (_, token) in claims.taken.items()})
            claimed = True
            if len(claims.taken) > 1 and any(lease_lost(job) for job, _ in claims.taken.values()):
                # A delivery after a worker died with this message (a redelivery that
                # came once the leases had run out): one of its jobs may kill every
                # worker it runs on, and nothing says which. Each goes out again on a
                # message of its own, its attempt returned, as the sweeper would send it.
                taken = [job_id for job_id in dict.fromkeys(job_ids) if job_id in claims.taken]
                decisions.update(_send_back(taken, tier=tier, waiting=waiting))
            for index, job_id in enumerate(job_ids):
                if batch.age() >= settings.AI_HEARTBEAT_SECONDS / 3:
                    # Held finishes have no heartbeat: written well before their leases end
                    # (the write makes its own second attempt on a dropped connection).
                    batch.write()
                if _clock() - started >= soft / 4:
                    decisions.update(_send_back(job_ids[index:], tier=tier, waiting=waiting))
                    break
                token = waiting.take(job_id)
                if token is not None:
                    running = job_id
                    decisions[job_id] = _run(
                        claims.taken[job_id][0], token, tier=tier, worker=worker, waiting=waiting, batch=batch
                    )
                    running = None
                elif job_id not in decisions:  # a job listed twice runs once
                    why = claims.refused.get(job_id, "not_claimable")
                    decisions[job_id] = _unclaimed(job_id, why, held_callbacks=batch.held_callbacks)
        except SoftTimeLimitExceeded:
            logger.warning("ai_message_out_of_time at=%s left=%s", index, len(job_ids) - index - 1)
            # Every job from here on goes out again, the one at ``index`` too when the
            # limit fired before its run took it (in the finishes' write): released and
            # not published, it would wait for the sweeper. A run that holds its own
            # lease keeps it; the sweeper recovers that one when the lease runs out.
            rest = [job_id for job_id in job_ids[index:] if job_id != running] if claimed else job_ids
            _send_back(rest, tier=tier, waiting=waiting)
            raise
        except Exception:
            # The task fails and its message is acked: the jobs it claimed but never
            # started go back as they were, for the sweeper to publish again.
            with contextlib.suppress(Exception):
                jobs_release(leases=waiting.take_all())
            raise
        finally:
            batch.write()
    finally:
        callbacks_publish(job_ids=batch.held_callbacks or [])
    return {"job_ids": job_ids, "decisions": decisions}


def _send_back(job_ids: list[str], *, tier: str, waiting: _Waiting) -> dict[str, str]:
    """Publish jobs of a message that will not run them, one message each, after
    releasing the claims it held on them. A job another delivery already ran is not run
    twice: its claim takes nothing."""
    jobs_release(leases=waiting.take_all())
    for job_id in job_ids:
        job_publish(job_id=job_id, tier=tier, fail=False)
    return dict.fromkeys(job_ids, "sent_back")


def worker_name(hostname: str | None) -> str:
    return f"{hostname or 'worker'}:{os.getpid()}"
