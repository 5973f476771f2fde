"""Reads. Views, tasks and services read the database through these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from academy.models import (
    SUBMISSION_SETTLED,
    AIJob,
    AIResult,
    Exam,
    FallbackQuota,
    Grade,
    JobArtifact,
    JobStatus,
    OmrBatch,
    Submission,
    Tenant,
    TenantConfig,
)
from academy.rejections import rejection_message


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
    return _policy(TenantConfig.objects.filter(tenant_id=tenant_id).first())


def tenant_policy_of(tenant: Tenant | None) -> TenantPolicy:
    """:func:`tenant_policy` for a tenant object: no query when its config was loaded with
    it (``select_related("config")``, as the API's token authentication does for the
    caller's academy in each request).

    Only for a tenant object read in this request: a long-lived object would carry the
    config as it was when it was read. Without a loaded config it queries.
    """
    if tenant is None:
        return TenantPolicy()
    if not Tenant.config.is_cached(tenant):
        return tenant_policy(tenant.pk)
    try:
        config: TenantConfig | None = tenant.config
    except TenantConfig.DoesNotExist:
        config = None
    return _policy(config)


def _policy(config: TenantConfig | None) -> TenantPolicy:
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
    """A job with its tenant and the tenant's config (for :func:`tenant_policy_of`)."""
    return AIJob.objects.select_related("tenant__config").filter(job_id=job_id).first()


def jobs_get(job_ids: list[str]) -> list[AIJob]:
    """Several jobs, loaded as :func:`job_get` loads one."""
    return list(AIJob.objects.select_related("tenant__config").filter(job_id__in=job_ids))


def job_get_for_tenant(job_id: str, tenant: Tenant) -> AIJob | None:
    """A job of this tenant's, or None: another tenant's job does not exist for them."""
    return AIJob.objects.filter(job_id=job_id, tenant=tenant).first()


def jobs_for_tenant(tenant: Tenant) -> QuerySet[AIJob]:
    return AIJob.objects.filter(tenant=tenant).order_by("-created_at")


def job_result_payload(job: AIJob) -> Any:
    """The result as callers see it: with a signed, expiring link for each stored file.

    ``download_url`` (the original status API's key) is the link to the file named by
    ``filename`` (an export), or to the only file when there is one.
    """
    from django.conf import settings
    from django.urls import reverse

    from academy import storage

    payload = AIResult.objects.filter(job=job).values_list("payload", flat=True).first()
    if not isinstance(payload, dict) or not payload.get("artifacts"):
        return payload
    links = {
        a.name: reverse("download", kwargs={"token": storage.download_token(artifact_id=a.pk)})
        for a in JobArtifact.objects.filter(job=job)
    }
    main = payload.get("filename") if payload.get("filename") in links else None
    if main is None and len(links) == 1:
        main = next(iter(links))
    payload = {**payload, "artifact_urls": links, "download_expires_in": settings.AI_DOWNLOAD_URL_TTL_SECONDS}
    if main is not None:
        payload["download_url"] = links[main]
    return payload


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
    """GPU fallbacks the tenant has taken today (academy.jobs.transitions.fallback_slot_take counts them)."""
    used = FallbackQuota.objects.filter(tenant_id=tenant_id, day=timezone.localdate()).values_list("used", flat=True)
    return int(used.first() or 0)


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


# --- exams, OMR batches and submissions ---------------------------------------------------


OVERLAY = "overlay.png"


def exam_get_for_tenant(exam_id: int, tenant: Tenant) -> Exam | None:
    return Exam.objects.filter(pk=exam_id, tenant=tenant).select_related("answer_key").first()


def exams_for_tenant(tenant: Tenant) -> QuerySet[Exam]:
    return Exam.objects.filter(tenant=tenant).order_by("-created_at")


def batch_get_for_tenant(batch_id: str, tenant: Tenant, *, exam_id: int | None = None) -> OmrBatch | None:
    batches = OmrBatch.objects.filter(batch_id=batch_id, tenant=tenant)
    if exam_id is not None:
        batches = batches.filter(exam_id=exam_id)
    return batches.first()


def submission_get_for_tenant(submission_id: int, tenant: Tenant) -> Submission | None:
    return (
        Submission.objects.filter(pk=submission_id, tenant=tenant)
        .select_related("job", "exam", "grade")
        .prefetch_related("answers", "job__artifacts")
        .first()
    )


def artifact_get_for_tenant(job_id: str, name: str, tenant: Tenant) -> JobArtifact | None:
    return JobArtifact.objects.filter(job__job_id=job_id, job__tenant=tenant, name=name).first()


def submission_body(submission: Submission, *, with_answers: bool = True) -> dict[str, Any]:
    """A sheet as a teacher sees it: status, reading, grade, and where to look."""
    # Reads only relations, so a caller that prefetched them (batch_body) pays no query.
    try:
        grade: Grade | None = submission.grade
    except Grade.DoesNotExist:
        grade = None
    job = submission.job
    body: dict[str, Any] = {
        "submission_id": submission.pk,
        "sheet": submission.sheet_name or submission.source_file.rsplit("/", 1)[-1],
        "status": submission.status,
        "student_id": submission.student_id,
        "job_id": job.job_id if job else None,
        "job_status": job.status if job else None,
        "rejection_code": submission.rejection_code or None,
        "message": rejection_message(submission.rejection_code) or submission.error_message or None,
        "score": grade.score if grade else None,
        "max_score": grade.max_score if grade else None,
        "overlay": None,
    }
    if job is not None and any(a.name == OVERLAY for a in job.artifacts.all()):
        body["overlay"] = f"/api/v1/jobs/{job.job_id}/artifacts/{OVERLAY}/"
    answers = sorted(submission.answers.all(), key=lambda a: a.pk)
    body["review"] = [a.question for a in answers if a.flagged and a.corrected is None]
    if with_answers:
        verdicts = grade.details if grade else {}
        body["answers"] = [
            {
                "question": a.question,
                "detected": a.detected,
                "corrected": a.corrected,
                "confidence": round(a.confidence, 4),
                "flagged": a.flagged,
                "verdict": verdicts.get(a.question, {}).get("verdict"),
            }
            for a in answers
        ]
    return body


def batch_body(batch: OmrBatch, *, with_sheets: bool = True) -> dict[str, Any]:
    """Progress of a batch and the outcome of each sheet."""
    counts = dict(batch.submissions.values_list("status").annotate(n=Count("pk")).order_by().values_list("status", "n"))
    settled = sum(n for status, n in counts.items() if status in SUBMISSION_SETTLED or status == "READ")
    body: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "exam_id": batch.exam_id,
        "mode": batch.mode,
        "total_sheets": batch.total_sheets,
        "settled": settled,
        "percent": round(100 * settled / batch.total_sheets) if batch.total_sheets else 100,
        "by_status": counts,
        "sealed": batch.sealed_at is not None,
        # Part of an upload that stopped: never graded; send it again (same key).
        "interrupted": batch.interrupted_at is not None,
        "graded": batch.graded_at is not None,
        "created_at": batch.created_at,
        "graded_at": batch.graded_at,
        "sources": batch.sources,
        "skipped": batch.skipped,
    }
    if with_sheets:
        submissions = batch.submissions.select_related("job", "grade").prefetch_related("answers", "job__artifacts")
        submissions = submissions.order_by("pk")
        sheets = [submission_body(s, with_answers=False) for s in submissions]
        body["sheets"] = sheets
        seen: dict[str, int] = {}
        for sheet in sheets:
            sid = sheet["student_id"]
            if sid and "?" not in sid:
                seen[sid] = seen.get(sid, 0) + 1
        # Two sheets with one student id: a misread digit or a student who handed in twice.
        body["duplicate_student_ids"] = sorted(sid for sid, n in seen.items() if n > 1)
    return body
