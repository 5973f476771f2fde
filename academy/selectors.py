"""Reads. Views, tasks and services read the database through these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from academy.models import AIJob, AIResult, JobStatus, Tenant, TenantConfig


@dataclass(frozen=True)
class TenantPolicy:
    """A tenant's config, or the defaults for a tenant without a row (or no tenant)."""

    has_premium_subscription: bool = False
    allow_gpu_fallback: bool = False
    gpu_fallback_threshold: float = 0.5
    tier_override: str = ""
    premium_fail_below: float = 0.5
    premium_review_below: float = 0.8
    daily_fallback_cap: int = 500


def tenant_policy(tenant_id: int | None) -> TenantPolicy:
    if tenant_id is None:
        return TenantPolicy()
    config = TenantConfig.objects.filter(tenant_id=tenant_id).first()
    if config is None:
        return TenantPolicy()
    return TenantPolicy(
        has_premium_subscription=config.has_premium_subscription,
        allow_gpu_fallback=config.allow_gpu_fallback,
        gpu_fallback_threshold=config.gpu_fallback_threshold,
        tier_override=config.tier_override,
        premium_fail_below=config.premium_fail_below,
        premium_review_below=config.premium_review_below,
        daily_fallback_cap=config.daily_fallback_cap,
    )


def tenant_for_user(user: Any) -> Tenant | None:
    if not getattr(user, "is_authenticated", False):
        return None
    membership = getattr(user, "membership", None)
    return membership.tenant if membership is not None else None


def job_get(job_id: str) -> AIJob | None:
    return AIJob.objects.select_related("tenant").filter(job_id=job_id).first()


def job_get_for_tenant(job_id: str, tenant: Tenant) -> AIJob | None:
    """A job of this tenant's, or None: another tenant's job does not exist for them."""
    return AIJob.objects.filter(job_id=job_id, tenant=tenant).first()


def jobs_for_tenant(tenant: Tenant) -> QuerySet[AIJob]:
    return AIJob.objects.filter(tenant=tenant).order_by("-created_at")


def job_result_payload(job: AIJob) -> Any:
    return AIResult.objects.filter(job=job).values_list("payload", flat=True).first()


def job_lineage(job: AIJob) -> list[AIJob]:
    """The chain of attempts this job belongs to, oldest first (basic, then premium)."""
    chain = [job]
    current = job
    while current.fallback_from_id is not None:
        parent = AIJob.objects.filter(pk=current.fallback_from_id).first()
        if parent is None:
            break
        chain.insert(0, parent)
        current = parent
    current = job
    while True:
        child = AIJob.objects.filter(fallback_from=current).first()
        if child is None:
            break
        chain.append(child)
        current = child
    return chain


def fallbacks_today(tenant_id: int) -> int:
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return AIJob.objects.filter(tenant_id=tenant_id, fallback_from__isnull=False, created_at__gte=start).count()


def jobs_to_republish(*, older_than: Any, limit: int) -> list[AIJob]:
    """PENDING/RETRYING jobs that are due and have waited too long: their message was lost."""
    return list(
        AIJob.objects.filter(status__in=[JobStatus.PENDING, JobStatus.RETRYING], next_run_at__lte=older_than).order_by(
            "next_run_at"
        )[:limit]
    )


def jobs_with_expired_lease(*, now: Any, limit: int) -> list[AIJob]:
    return list(
        AIJob.objects.filter(status__in=[JobStatus.RUNNING, JobStatus.VALIDATING], lease_expires_at__lt=now).order_by(
            "lease_expires_at"
        )[:limit]
    )
