"""Writes to the job table: dispatch, and every state transition a run goes through.

Each transition is one conditional UPDATE (or a row lock) on the job row, checked
against the lease token of the run that asks for it. A run that lost its lease (its
worker was presumed dead and the job handed to another) can neither heartbeat nor
finish: its writes match no row. That fencing is what makes at-least-once delivery safe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Case, F, JSONField, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from academy import policies, selectors, sqlrows, storage
from academy.jobs import sending
from academy.jobs.prevalidation import input_key_for, job_type_check, payload_check, prevalidate
from academy.models import AIJob, AIResult, FallbackQuota, JobArtifact, JobStatus, Tenant, TenantConfig
from academy.rejections import Rejection, rejection_message
from academy.services import sources
from academy.states import CALLBACK_STATUSES, CLAIMABLE_STATUSES, HELD_STATUSES
from workers.base import Artifact

logger = logging.getLogger(__name__)


# --- dispatch ---------------------------------------------------------------------------


def _rejected(job_type: Any, rejection: Rejection) -> dict[str, Any]:
    return {
        "ok": False,
        "job_id": None,
        "type": job_type if isinstance(job_type, str) else None,
        "rejection_code": rejection.code,
        "error": rejection.message,
        "detail": rejection.detail,
    }


def job_prepare(
    *,
    job_type: Any,
    payload: Any,
    tenant: Tenant | None,
    source_domain: str = "",
    source_id: str = "",
    tier: str | None = None,
    force_rerun: bool = False,
    rerun_reason: str = "",
    max_attempts: int | None = None,
    policy: selectors.TenantPolicy | None = None,
) -> tuple[AIJob, Rejection | None]:
    """Everything :func:`job_dispatch` decides before it writes: the checks (the quality
    gate included), the tier, and the unsaved job. Raises :class:`Rejection`.

    The second item is the quality gate's refusal when the job goes to the GPU pool
    instead (the tenant pays for that); the caller then hands it over with
    :func:`job_fallback`. A caller that saves many jobs at once (an OMR batch) uses this
    and writes them in bulk.
    """
    job_type = job_type_check(job_type)
    payload = payload_check(payload, job_type=job_type)
    if policy is None:
        policy = selectors.tenant_policy(tenant.pk if tenant else None)
    decision = policies.tier_resolve(
        job_type=job_type,
        explicit=tier,
        payload=payload,
        tenant_override=policy.tier_override,
        has_premium=policy.has_premium_subscription,
    )
    gate_failure = None
    try:
        prevalidate(job_type=job_type, tier=decision.tier, payload=payload, tenant=tenant)
    except Rejection as rejection:
        if not _quality_fallback_allowed(rejection=rejection, tier=decision.tier, tenant=tenant, policy=policy):
            raise
        # Basic cannot read it, but the tenant pays for the GPU pool: the premium
        # pipeline gets it instead, through the fallback chain (lineage kept).
        prevalidate(job_type=job_type, tier="premium", payload=payload, tenant=tenant)
        gate_failure = rejection
    job = AIJob(
        job_type=job_type,
        payload=payload,
        tenant=tenant,
        tier=decision.tier,
        source_domain=source_domain or "",
        source_id=str(source_id or ""),
        force_rerun=force_rerun,
        rerun_reason=rerun_reason or "",
        max_attempts=max_attempts or settings.AI_MAX_ATTEMPTS,
        flags={"tier_warning": decision.warning} if decision.warning else {},
    )
    return job, gate_failure


def job_idempotency_key(*, tenant: Tenant | None, key: str) -> str:
    """The stored form of a caller's idempotency key: scoped to the tenant."""
    return f"{tenant.pk if tenant else '-'}:{key}"


def job_dispatch(
    *,
    job_type: Any,
    payload: Any,
    tenant: Tenant | None = None,
    source_domain: str = "",
    source_id: str = "",
    tier: str | None = None,
    idempotency_key: str | None = None,
    force_rerun: bool = False,
    rerun_reason: str = "",
    max_attempts: int | None = None,
    policy: selectors.TenantPolicy | None = None,
    publish: bool = True,
) -> dict[str, Any]:
    """Create a job and publish it to its tier's queue once the transaction commits.

    ``policy`` is the tenant's config when the caller has just read it (the API reads it
    with the request's token: ``selectors.tenant_policy_of``); None reads it here.
    ``publish=False`` leaves a new PENDING job for the caller to publish after commit,
    with others, through :func:`jobs_publish` (a job handed to the GPU pool at dispatch is
    published by the hand-over itself).

    Returns ``{ok, job_id, type, tier, status, created}`` or, for bad input, ``{ok: False,
    rejection_code, error}`` with the Korean message and no job row. Never raises: an
    unexpected error comes back as ``{ok: False, error}``.
    """
    try:
        try:
            job, gate_failure = job_prepare(
                job_type=job_type,
                payload=payload,
                tenant=tenant,
                source_domain=source_domain,
                source_id=source_id,
                tier=tier,
                force_rerun=force_rerun,
                rerun_reason=rerun_reason,
                max_attempts=max_attempts,
                policy=policy,
            )
            if idempotency_key:
                job.idempotency_key = job_idempotency_key(tenant=tenant, key=idempotency_key)
                if force_rerun:
                    job.idempotency_key += f":rerun:{job.job_id}"
                job.request_fingerprint = job_request_fingerprint(job=job, tier=tier)
            sources.source_check(job=job)
        except Rejection as rejection:
            logger.info("ai_dispatch_rejected job_type=%s code=%s %s", job_type, rejection.code, rejection.detail)
            return _rejected(job_type, rejection)

        linked = job.source_domain == "submission"  # saved with its link, in one transaction
        try:
            if gate_failure is None and not linked and not connection.in_atomic_block:
                # Autocommit: the INSERT commits on its own (no BEGIN and COMMIT round
                # trips), and publishing right after it is what on_commit would do.
                job.save(force_insert=True)
                if publish:
                    job_publish(job_id=job.job_id, tier=job.tier, into=job)
                return _accepted(job, created=True)
            with transaction.atomic():
                job.save(force_insert=True)
                if linked:
                    sources.source_link(job=job)
                if gate_failure is None:
                    if publish:
                        transaction.on_commit(lambda: job_publish(job_id=job.job_id, tier=job.tier, into=job))
                else:
                    cap = (policy or selectors.tenant_policy(job.tenant_id)).daily_fallback_cap
                    if job.tenant_id is None or not fallback_slot_take(tenant_id=job.tenant_id, cap=cap):
                        raise _CapSpent  # taken meanwhile by a concurrent fallback: basic's refusal stands
                    job_fallback(
                        job_id=job.job_id,
                        token=None,
                        reason=f"validation_failed:{gate_failure.code}",
                        basic_result={"error_code": gate_failure.code, "error": gate_failure.detail},
                        basic_outcome={
                            "status": JobStatus.REJECTED_BAD_INPUT,
                            "rejection_code": gate_failure.code,
                            "detail": gate_failure.detail[:1000],
                        },
                    )
        except _CapSpent:
            assert gate_failure is not None
            return _rejected(job_type, gate_failure)
        except IntegrityError:
            existing = AIJob.objects.filter(idempotency_key=job.idempotency_key).first()
            if existing is None:
                raise
            if existing.request_fingerprint and existing.request_fingerprint != job.request_fingerprint:
                # Like a payment API: a key names one request; another request with it
                # is the caller's bug, and answering with the old job would hide it.
                logger.info("ai_dispatch_key_reused job_type=%s existing=%s", job_type, existing.job_id)
                return _rejected(
                    job_type,
                    Rejection(
                        "IDEMPOTENCY_KEY_REUSED",
                        f"this idempotency_key was used for job {existing.job_id} ({existing.job_type})"
                        " with another request",
                    ),
                )
            return _accepted(existing, created=False)
        if gate_failure is not None:  # job_fallback changed the row
            job.refresh_from_db(fields=["status", "error_message"])
        # Otherwise ``job`` holds the row as the publish left it (job_publish), or as it
        # was inserted when the publish waits for an outer transaction's commit.
        return _accepted(job, created=True)
    except Exception as exc:  # the caller is a view or a task: never break it
        logger.exception("ai_dispatch_failed job_type=%s", job_type)
        return {"ok": False, "job_id": None, "type": job_type, "rejection_code": None, "error": str(exc)}


class _CapSpent(Exception):
    """The daily GPU-fallback cap was spent between the check and the hand-over."""


def job_request_fingerprint(*, job: AIJob, tier: str | None) -> str:
    """A hash of what a dispatch asks for: the job type, the payload in canonical JSON
    (an input file by its content, not by the path the upload was stored under), the
    tier asked for and the source. Kept with an idempotency key."""
    payload: Any = job.payload
    key = input_key_for(job.job_type)
    if key is not None and isinstance(payload, dict) and isinstance(payload.get(key), str):
        payload = {**payload, key: _file_digest(payload[key], tenant=job.tenant)}
    body = json.dumps(
        {
            "job_type": job.job_type,
            "payload": payload,
            "tier": tier or "",
            "source_domain": job.source_domain,
            "source_id": job.source_id,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    # surrogatepass: a lone surrogate from a JSON escape is hashed, not a 5xx.
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def _file_digest(path: str, *, tenant: Tenant | None) -> str:
    """The SHA-256 of a stored input file, or the path itself when it cannot be read
    (pre-validation has refused such a payload already)."""
    try:
        stored = storage.file_check(path, tenant=tenant)
        digest = hashlib.sha256()
        with default_storage.open(stored.path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except (storage.StorageRejection, OSError):
        return path
    return f"sha256:{digest.hexdigest()}"


def fallback_slot_take(*, tenant_id: int, cap: int) -> bool:
    """Take one of today's GPU fallbacks for the tenant; False when ``cap`` are taken.

    One conditional UPDATE (``used < cap``) on the tenant's row for the day: concurrent
    callers queue on its row lock and each sees the count the one before left, so the
    cap holds however many fallbacks arrive at once (a read of the count, then the
    hand-over, let them all pass the last slot).
    """
    if cap <= 0:
        return False
    today = timezone.localdate()
    quota = FallbackQuota.objects.filter(tenant_id=tenant_id, day=today, used__lt=cap)
    if quota.update(used=F("used") + 1):
        return True
    FallbackQuota.objects.get_or_create(tenant_id=tenant_id, day=today)  # the day's first (or it is full)
    return quota.update(used=F("used") + 1) == 1


def gpu_fallback_verdict(
    *,
    tier: str,
    tenant_id: int | None,
    failure: policies.Failure,
    policy: selectors.TenantPolicy,
    take: bool = False,
) -> str:
    """Whether a basic failure goes to the GPU pool: "go", "no" (the tenant does not pay
    for it, or the failure does not qualify) or "capped" (today's fallbacks are spent).

    The one place both the lifecycle (a run's failure) and dispatch (the quality gate)
    ask, so the two cannot disagree about the rules or the daily cap. ``policy`` is the
    tenant's as the caller read it (with the claimed job, or once per request).
    ``take``: "go" also takes the day's slot (:func:`fallback_slot_take`), for a caller
    that hands the job over right after; without it the cap is only read.
    """
    if tenant_id is None:
        return "no"
    if not policies.fallback_qualifies(
        tier=tier,
        failure=failure,
        has_premium=policy.has_premium_subscription,
        allow_gpu_fallback=policy.allow_gpu_fallback,
        threshold=policy.gpu_fallback_threshold,
    ):
        return "no"
    if take:
        return "go" if fallback_slot_take(tenant_id=tenant_id, cap=policy.daily_fallback_cap) else "capped"
    return "go" if selectors.fallbacks_today(tenant_id) < policy.daily_fallback_cap else "capped"


def _quality_fallback_allowed(
    *, rejection: Rejection, tier: str, tenant: Tenant | None, policy: selectors.TenantPolicy
) -> bool:
    """A scan basic's quality gate refuses goes to premium for a tenant who pays for that."""
    if tenant is None or rejection.code not in policies.QUALITY_GATE_CODES:
        return False
    failure = policies.Failure("validation_failed", error_code=rejection.code)
    return gpu_fallback_verdict(tier=tier, tenant_id=tenant.pk, failure=failure, policy=policy) == "go"


def _accepted(job: AIJob, *, created: bool) -> dict[str, Any]:
    return {
        "ok": job.status != JobStatus.FAILED or not created,
        "job_id": job.job_id,
        "type": job.job_type,
        "tier": job.tier,
        "status": job.status,
        "created": created,
        "error": job.error_message or None,
    }


def job_publish(
    *, job_id: str, tier: str, countdown: float | None = None, fail: bool = True, into: AIJob | None = None
) -> bool:
    """Send the job to its tier's queue and record the send on its row. False when the
    broker refused it.

    A broker error marks the job FAILED with the error (a new job nobody will ever run
    must say so). ``fail=False`` is for re-sends (a retry, the sweeper's re-publish): the
    job already exists and is due, so during a broker outage it stays PENDING/RETRYING and
    the next sweep sends it again, instead of a healthy job ending FAILED.

    ``into``: the dispatched job, for the response: its status and error are set to the
    row's as they stand after the send. In eager mode the job has already run inside the
    send, and a fast worker may have claimed it: read back, never assumed.
    """
    try:
        task_id = sending.job_send(job_id=job_id, tier=tier, countdown=countdown)
    except Exception as exc:
        logger.exception("ai_publish_failed job_id=%s", job_id)
        if fail:
            AIJob.objects.filter(job_id=job_id, status__in=CLAIMABLE_STATUSES).update(
                status=JobStatus.FAILED,
                error_message=f"publish failed: {exc}",
                last_error=repr(exc),
                finished_at=timezone.now(),
            )
        if into is not None:
            into.refresh_from_db(fields=["status", "error_message"])  # what the failure left
        return False
    row = _published_returning(job_id, task_id)
    if into is not None and row is not None:
        into.status, into.error_message = row
    return True


def jobs_publish(*, job_ids: list[str], tier: str) -> bool:
    """Publish committed PENDING jobs of one tier in one message (an OMR batch's sheets).

    On a broker error they stay PENDING, and the sweeper sends each again once it has
    waited ``AI_REPUBLISH_AFTER_SECONDS``: a batch loses no sheet to a broker outage.
    """
    if not job_ids:
        return True
    try:
        task_id = sending.jobs_send(job_ids=job_ids, tier=tier)
    except Exception:
        logger.exception("ai_publish_failed job_ids=%s", job_ids)
        return False
    AIJob.objects.filter(job_id__in=job_ids).update(celery_task_id=task_id, publish_count=F("publish_count") + 1)
    return True


def _published_returning(job_id: str, task_id: str) -> tuple[str, str] | None:
    """Record a successful publish; the row's (status, error_message) after it."""
    if not connection.features.can_return_columns_from_insert:  # Postgres, SQLite >= 3.35 can
        jobs = AIJob.objects.filter(job_id=job_id)
        jobs.update(celery_task_id=task_id, publish_count=F("publish_count") + 1)
        return jobs.values_list("status", "error_message").first()
    # One UPDATE ... RETURNING instead of an UPDATE and a re-read (the ORM has no
    # RETURNING for updates).
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(AIJob._meta.db_table)}"
        f" SET {quote('celery_task_id')} = %s, {quote('publish_count')} = {quote('publish_count')} + 1"
        f" WHERE {quote('job_id')} = %s RETURNING {quote('status')}, {quote('error_message')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [task_id, job_id])
        row = cursor.fetchone()
    return (str(row[0]), str(row[1])) if row is not None else None


# --- a run's lifecycle --------------------------------------------------------------------


#: a claimed run's progress until its processor reports any
_STARTED: dict[str, Any] = {"stage": "started", "percent": 0}


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
    claimable = Q(status__in=CLAIMABLE_STATUSES) | Q(status__in=HELD_STATUSES, lease_expires_at__lt=now)
    updated = AIJob.objects.filter(claimable, job_id=job_id, attempt_count__lt=F("max_attempts")).update(
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
        " started_at = COALESCE(u.started_at, %s), progress = %s::jsonb"
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


def _locked_run(job_id: str, token: str | None) -> AIJob | None:
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


def _close(job: AIJob, **fields: Any) -> None:
    fields.setdefault("finished_at", timezone.now())
    fields.update(lease_token="", lease_expires_at=None)
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=[*fields, "updated_at"])


@dataclass
class Finish:
    status: str
    flags: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error_message: str = ""
    rejection_code: str = ""
    artifacts: list[Artifact] = field(default_factory=list)  # the processor's files, to store

    @property
    def stores_result(self) -> bool:
        """Whether this close writes ``result`` (once): a finished run's outcome, not a
        rejection, a retry or a hand-over."""
        return self.result is not None and self.status in (JobStatus.DONE, JobStatus.REVIEW_REQUIRED, JobStatus.FAILED)


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
        job = _locked_run(job_id, token)
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
        _close(
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


def callback_publish(*, job_id: str, held: list[str] | None = None) -> None:
    """After commit: send the finished job's domain callback, or add it to ``held`` for
    the caller to send with others (:func:`callbacks_publish`)."""
    if held is not None:
        held.append(job_id)
        return
    callbacks_publish(job_ids=[job_id])


def callbacks_publish(*, job_ids: list[str]) -> None:
    """Send the domain callbacks of finished jobs as one message. A broker error is
    logged, not raised: the sweeper finds finished jobs whose callback never ran."""
    try:
        sending.callbacks_send(job_ids=job_ids)
    except Exception:
        logger.exception("ai_callback_publish_failed job_ids=%s", job_ids)


def job_retry(*, job_id: str, token: str, error: str, countdown: float) -> bool:
    """Put the job back as RETRYING and re-publish it after ``countdown`` seconds."""
    due = timezone.now() + timedelta(seconds=countdown)
    with transaction.atomic():
        job = _locked_run(job_id, token)
        if job is None:
            return False
        _close(job, status=JobStatus.RETRYING, next_run_at=due, last_error=error[:5000], finished_at=None)
        transaction.on_commit(lambda: job_publish(job_id=job_id, tier=job.tier, countdown=countdown, fail=False))
    return True


def job_fallback(
    *,
    job_id: str,
    token: str | None,
    reason: str,
    basic_result: Any = None,
    basic_outcome: dict[str, Any] | None = None,
) -> str | None:
    """Close a basic job as FALLBACK_TO_GPU and start its premium re-run.

    Returns the premium job's id, or None when this run no longer owns the job. The
    re-run's idempotency key is derived from the basic job, so a redelivered basic
    message can never start two premium runs. ``basic_outcome``: how basic's own policy
    would have closed the job (status, flags or rejection code), kept in the re-run's
    flags, so a premium run that fails ends no worse than that.
    """
    with transaction.atomic():
        job = _locked_run(job_id, token)
        if job is None:
            return None
        rerun, created = AIJob.objects.get_or_create(
            idempotency_key=f"fallback:{job.job_id}",
            defaults={
                "job_type": job.job_type,
                "payload": job.payload,
                "tenant": job.tenant,
                "tier": "premium",
                "source_domain": job.source_domain,
                "source_id": job.source_id,
                "max_attempts": job.max_attempts,
                "fallback_from": job,
                "fallback_from_tier": job.tier,
                "flags": {"fallback_reason": reason, **({"basic_outcome": basic_outcome} if basic_outcome else {})},
            },
        )
        if not AIResult.objects.filter(job=job).exists():
            AIResult.objects.create(job=job, payload={"fallback_job_id": rerun.job_id, "basic_result": basic_result})
        _close(
            job,
            status=JobStatus.FALLBACK_TO_GPU,
            flags={**job.flags, "fallback_reason": reason, "fallback_job_id": rerun.job_id},
            error_message=reason,
        )
        if created:
            transaction.on_commit(lambda: job_publish(job_id=rerun.job_id, tier="premium"))
    return rerun.job_id


def rejection_finish(*, code: str, detail: str) -> Finish:
    """The finish for input the worker found bad: REJECTED_BAD_INPUT with the code and
    its message."""
    return Finish(
        status=JobStatus.REJECTED_BAD_INPUT,
        flags={"rejection_detail": detail[:1000]},
        error_message=rejection_message(code),
        rejection_code=code,
    )


def job_reject(
    *, job_id: str, token: str | None, code: str, detail: str, held_callbacks: list[str] | None = None
) -> bool:
    """The worker found the input bad: :func:`job_finish` with :func:`rejection_finish`."""
    return job_finish(
        job_id=job_id, token=token, finish=rejection_finish(code=code, detail=detail), held_callbacks=held_callbacks
    )


def job_republish(*, job: AIJob) -> bool:
    """Re-send a job whose message was lost; push its next check further out each time."""
    backoff = settings.AI_REPUBLISH_AFTER_SECONDS * min(job.publish_count + 1, 8)
    moved = AIJob.objects.filter(pk=job.pk, status=job.status, next_run_at=job.next_run_at).update(
        next_run_at=timezone.now() + timedelta(seconds=backoff)
    )
    return moved == 1 and job_publish(job_id=job.job_id, tier=job.tier, fail=False)


def job_requeue_expired(*, job: AIJob) -> bool:
    """A RUNNING job whose lease expired: its worker died. Back to RETRYING and re-publish.

    The dead run counts as an attempt (it was counted at claim), so a job that kills its
    worker every time stops at ``max_attempts`` instead of looping forever.
    """
    with transaction.atomic():
        locked = _locked_run(job.job_id, None)
        if locked is None:
            return False
        _close(
            locked,
            status=JobStatus.RETRYING,
            next_run_at=timezone.now() + timedelta(seconds=settings.AI_REPUBLISH_AFTER_SECONDS),
            last_error=f"lease expired on {locked.locked_by} (attempt {locked.attempt_count})",
            finished_at=None,
        )
        transaction.on_commit(lambda: job_publish(job_id=locked.job_id, tier=locked.tier, fail=False))
    return True
