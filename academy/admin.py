"""Ops view of the platform. Jobs are read-only here: the lifecycle owns their state."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from academy import models, selectors


@admin.register(models.AIJob)
class AIJobAdmin(admin.ModelAdmin[models.AIJob]):
    list_display = ("job_id", "job_type", "tier", "status", "needs_review", "tenant", "attempt_count", "created_at")
    list_filter = ("status", "tier", "needs_review", "job_type", "tenant", "created_at")
    search_fields = ("job_id", "source_id", "idempotency_key", "celery_task_id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in models.AIJob._meta.fields] + ["result_pretty", "lineage"]

    def has_add_permission(self, request: object) -> bool:
        return False

    @admin.display(description="result")
    def result_pretty(self, job: models.AIJob) -> str:
        payload = selectors.job_result_payload(job)
        return format_html("<pre>{}</pre>", json.dumps(payload, ensure_ascii=False, indent=2))

    @admin.display(description="lineage")
    def lineage(self, job: models.AIJob) -> str:
        return " → ".join(f"{j.tier}:{j.status}" for j in selectors.job_lineage(job))


@admin.register(models.TenantConfig)
class TenantConfigAdmin(admin.ModelAdmin[models.TenantConfig]):
    list_display = (
        "tenant",
        "has_premium_subscription",
        "allow_gpu_fallback",
        "gpu_fallback_threshold",
        "tier_override",
    )


@admin.register(models.RuntimeFlag)
class RuntimeFlagAdmin(admin.ModelAdmin[models.RuntimeFlag]):
    list_display = ("key", "value", "updated_at")


admin.site.register(models.Tenant)
admin.site.register(models.Membership)
admin.site.register(models.Exam)
admin.site.register(models.AnswerKey)
admin.site.register(models.Submission)
admin.site.register(models.Grade)
