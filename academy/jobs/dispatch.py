"""Dispatch: a job is checked, given its tier and saved, then published once it commits.

Bad input is refused with a code before any row exists (:mod:`academy.jobs.prevalidation`).
A scan basic's quality gate refuses goes to the GPU pool instead for a tenant who pays
for that (:func:`~academy.jobs.transitions.job_fallback`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction

from academy import policies, selectors, storage
from academy.jobs.prevalidation import input_key_for, job_type_check, payload_check, prevalidate
from academy.jobs.publish import job_publish
from academy.jobs.transitions import fallback_slot_take, gpu_fallback_verdict, job_fallback
from academy.models import AIJob, JobStatus, Tenant
from academy.rejections import Rejection
from academy.services import sources

logger = logging.getLogger(__name__)


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
