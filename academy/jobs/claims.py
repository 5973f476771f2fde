"""A run's hold on its job: the claim, the lease's heartbeat, and handing back a claim.

Each is one conditional UPDATE on the job row, checked against the lease token of the
run that asks for it. A run that lost its lease (its worker was presumed dead and the
job handed to another) can neither heartbeat nor finish: its writes match no row. That
fencing is what makes at-least-once delivery safe. On PostgreSQL a claim is one
statement that also reads the job with its tenant (:func:`_claim_returning`); on other
databases the same rule runs through the ORM (:func:`_claim_one`).
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Case, CharField, F, JSONField, Q, TextField, Value, When
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone

from academy import selectors, sqlrows
from academy.models import AIJob, JobStatus, Tenant, TenantConfig
from academy.states import CLAIMABLE_STATUSES, HELD_STATUSES

logger = logging.getLogger(__name__)


#: a claimed run's progress until its processor reports any
_STARTED: dict[str, Any] = {"stage": "started", "percent": 0}

#: why a run ended with its lease: the worker that held it and the attempt it was on.
#: The sweeper writes it when it hands the job back, and a claim writes it when it takes
#: the job over first (a redelivered message can get there before the sweeper does).
#: Both ``%`` in Python and PostgreSQL's ``format()`` fill its ``%s``.
LEASE_EXPIRED = "lease expired on %s (attempt %s)"


def lease_expired_error(*, locked_by: str, attempt: int) -> str:
    """:data:`LEASE_EXPIRED` for one run."""
    return LEASE_EXPIRED % (locked_by, attempt)


def lease_lost(job: AIJob) -> bool:
    """Whether the run before the one ``job`` was just claimed for ended with its lease
    (its worker died): the claim that took it over, or the sweeper that handed it back,
    recorded that attempt in ``lease_lost_attempt``."""
    return job.lease_lost_attempt == job.attempt_count - 1


def job_claim(*, job_id: str, worker: str) -> tuple[AIJob | None, str]:
    """Take the job for one run. Returns (job, token), or (None, why) when it is not ours.

    Claimable: PENDING or RETRYING with attempts left, or RUNNING whose lease expired (its
    worker died). A redelivered copy of a message whose job is running or finished
    matches nothing and runs nothing.
    """
    claims = jobs_claim(job_ids=[job_id], worker=worker)
    if job_id in claims.taken:
        return claims.taken[job_id]
    return None, claims.refused[job_id]


@dataclass(frozen=True)
class Claims:
    """What :func:`jobs_claim` got: ``taken`` maps a job id to (job, token), ``refused``
    to why it was not claimable ("missing", "exhausted" or "not_claimable")."""

    taken: dict[str, tuple[AIJob, str]]
    refused: dict[str, str]


def jobs_claim(*, job_ids: Sequence[str], worker: str) -> Claims:
    """Take each of several jobs for a run of its own (the jobs of one message): the same
    rule, token, attempt and lease per job as :func:`job_claim`, in one statement.

    A job the message then does not start goes back with :func:`jobs_release`, its
    attempt returned. Its lease runs from now: the running job's heartbeat renews it
    while it waits.
    """
    now = timezone.now()
    tokens = {str(job_id): uuid.uuid4().hex for job_id in job_ids}
    if connection.vendor == "postgresql":
        taken = {job.job_id: (job, tokens[job.job_id]) for job in _claim_returning(tokens, worker=worker, now=now)}
    else:
        taken = {}
        for job_id, token in tokens.items():
            job = _claim_one(job_id=job_id, token=token, worker=worker, now=now)
            if job is not None:
                taken[job_id] = (job, token)
    left = [job_id for job_id in tokens if job_id not in taken]
    rows = {job.job_id: job for job in selectors.jobs_get(left)} if left else {}
    return Claims(taken, {job_id: _why_unclaimed(rows.get(job_id), now) for job_id in left})


def _claim_one(*, job_id: str, token: str, worker: str, now: Any) -> AIJob | None:
    """:func:`jobs_claim` for one job through the ORM (databases other than PostgreSQL)."""
    taken_over = Q(status__in=HELD_STATUSES, lease_expires_at__lt=now)
    claimable = Q(status__in=CLAIMABLE_STATUSES) | taken_over
    before, between, after = LEASE_EXPIRED.split("%s")
    attempt = Cast("attempt_count", CharField())
    expired = Concat(Value(before), F("locked_by"), Value(between), attempt, Value(after), output_field=TextField())
    updated = AIJob.objects.filter(claimable, job_id=job_id, attempt_count__lt=F("max_attempts")).update(
        last_error=Case(When(taken_over, then=expired), default=F("last_error"), output_field=TextField()),
        lease_lost_attempt=Case(When(taken_over, then=F("attempt_count")), default=F("lease_lost_attempt")),
        status=JobStatus.RUNNING,
        attempt_count=F("attempt_count") + 1,
        locked_by=worker[:200],
        locked_at=now,
        lease_token=token,
        lease_expires_at=now + timedelta(seconds=settings.AI_LEASE_SECONDS),
        last_heartbeat_at=now,
        started_at=Coalesce(F("started_at"), now),
        progress=dict(_STARTED),
    )
    return selectors.job_get(job_id) if updated == 1 else None


def _why_unclaimed(job: AIJob | None, now: Any) -> str:
    """What :func:`job_claim` says when it took nothing, from the row as it stands."""
    if job is None:
        return "missing"
    return "exhausted" if _is_exhausted(job, now) else "not_claimable"


@functools.cache
def _claim_sql() -> str:
    alias = connection.alias
    quote = connection.ops.quote_name
    jobs = quote(AIJob._meta.db_table)
    tenants, configs = quote(Tenant._meta.db_table), quote(TenantConfig._meta.db_table)
    columns = sqlrows.select_list(alias, [("j", AIJob), ("te", Tenant), ("c", TenantConfig)])
    # The claim's UPDATE (the same condition as _claim_one's) for every (job id, token)
    # pair, and selectors.job_get's joins, in one statement: the rows come back with their
    # tenant and config. The pairs come sorted by job id, so two claims over the same jobs
    # (a redelivered copy) lock them in the same order.
    return (
        "WITH t AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS t(job_id, token)),"
        f" j AS (UPDATE {jobs} AS u SET status = %s, attempt_count = u.attempt_count + 1, locked_by = %s,"
        " locked_at = %s, lease_token = t.token, lease_expires_at = %s, last_heartbeat_at = %s,"
        " started_at = COALESCE(u.started_at, %s), progress = %s::jsonb,"
        # A run taken over from a dead one says so, as the sweeper's hand-back does.
        " last_error = CASE WHEN u.status IN (%s, %s) THEN format(%s, u.locked_by, u.attempt_count)"
        " ELSE u.last_error END,"
        " lease_lost_attempt = CASE WHEN u.status IN (%s, %s) THEN u.attempt_count ELSE u.lease_lost_attempt END"
        " FROM t WHERE u.job_id = t.job_id AND u.attempt_count < u.max_attempts"
        " AND (u.status IN (%s, %s) OR (u.status IN (%s, %s) AND u.lease_expires_at < %s)) RETURNING u.*)"
        f" SELECT {columns} FROM j LEFT OUTER JOIN {tenants} te"
        f" ON {sqlrows.column(alias, 'te', Tenant, 'pk')} = {sqlrows.column(alias, 'j', AIJob, 'tenant')}"
        f" LEFT OUTER JOIN {configs} c"
        f" ON {sqlrows.column(alias, 'c', TenantConfig, 'tenant')} = {sqlrows.column(alias, 'te', Tenant, 'pk')}"
    )


def _claim_returning(tokens: dict[str, str], *, worker: str, now: Any) -> list[AIJob]:
    """:func:`jobs_claim`'s UPDATE and read in one round trip (PostgreSQL): the claimed
    jobs with their tenant and config loaded."""
    pairs = sorted(tokens.items())
    params: list[Any] = [
        [job_id for job_id, _ in pairs],
        [token for _, token in pairs],
        JobStatus.RUNNING,
        worker[:200],
        now,
        now + timedelta(seconds=settings.AI_LEASE_SECONDS),
        now,
        now,
        json.dumps(_STARTED),
        *sorted(HELD_STATUSES),
        LEASE_EXPIRED,
        *sorted(HELD_STATUSES),
        *sorted(CLAIMABLE_STATUSES),
        *sorted(HELD_STATUSES),
        now,
    ]
    with sqlrows.prepared_cursor(connection) as cursor:
        cursor.execute(_claim_sql(), params)
        rows = cursor.fetchall()
    claimed = []
    for row in rows:
        job, tenant, config = sqlrows.objects_from_row(connection.alias, row, (AIJob, Tenant, TenantConfig))
        AIJob._meta.get_field("tenant").set_cached_value(job, tenant)
        if tenant is not None:
            sqlrows.cache_one_to_one(TenantConfig._meta.get_field("tenant"), tenant, config)  # None: no config row
        assert isinstance(job, AIJob)
        claimed.append(job)
    return claimed


def jobs_release(*, leases: Mapping[str, str]) -> int:
    """Hand back claimed jobs whose run never started (``{job_id: token}``): each is
    claimable again with its attempt returned, PENDING (RETRYING if it had run before),
    with no lease, in one statement. A job whose lease another run took meanwhile is left
    alone. Returns how many went back."""
    if not leases:
        return 0
    held = Q()
    for job_id, token in leases.items():
        held |= Q(job_id=job_id, lease_token=token)
    first = Q(attempt_count__lte=1)
    return AIJob.objects.filter(held, status=JobStatus.RUNNING).update(
        status=Case(When(first, then=Value(JobStatus.PENDING)), default=Value(JobStatus.RETRYING)),
        attempt_count=F("attempt_count") - 1,
        lease_token="",
        lease_expires_at=None,
        started_at=Case(When(first, then=Value(None)), default=F("started_at")),
        progress=Case(When(first, then=Value({}, output_field=JSONField())), default=F("progress")),
    )


def _is_exhausted(job: AIJob, now: Any) -> bool:
    if job.attempt_count < job.max_attempts:
        return False
    if job.status in CLAIMABLE_STATUSES:
        return True
    return job.status in HELD_STATUSES and bool(job.lease_expires_at and job.lease_expires_at < now)


def job_heartbeat(*, job_id: str, token: str, progress: dict[str, Any] | None = None) -> bool:
    """Extend the lease; False means the lease is gone and this run must stop."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "lease_expires_at": now + timedelta(seconds=settings.AI_LEASE_SECONDS),
        "last_heartbeat_at": now,
    }
    if progress is not None:
        fields["progress"] = progress
    return AIJob.objects.filter(job_id=job_id, lease_token=token, status=JobStatus.RUNNING).update(**fields) == 1


def locked_run(job_id: str, token: str | None) -> AIJob | None:
    """Lock the row if ``token`` still owns the run (None: the sweeper, on an expired lease)."""
    # The tenant comes with the row (artifact paths need its slug); only the job is locked.
    job = AIJob.objects.select_for_update(of=("self",)).select_related("tenant").filter(job_id=job_id).first()
    if job is None or job.is_terminal:
        return None
    if token is not None:
        return job if job.lease_token == token and job.status == JobStatus.RUNNING else None
    if job.status in CLAIMABLE_STATUSES:
        return job
    expired = job.lease_expires_at is None or job.lease_expires_at < timezone.now()
    return job if expired else None


def run_close(job: AIJob, **fields: Any) -> None:
    fields.setdefault("finished_at", timezone.now())
    fields.update(lease_token="", lease_expires_at=None)
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=[*fields, "updated_at"])
