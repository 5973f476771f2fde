"""Ops view of the platform.

Job rows are read-only here: the lifecycle owns their state. What ops may do to a job
is start a new one from it (retry, force rerun with a reason, send to premium); those
writes live in ``academy.services.admin_actions``. OMR batches and submissions are
read-only too. Tenant configs and runtime flags are the editable knobs.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.files.storage import default_storage
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from academy import models, selectors
from academy.services import admin_actions

_SETTLED = [str(s) for s in models.SUBMISSION_SETTLED] + [models.SubmissionStatus.READ]


def _job_link(job: models.AIJob) -> SafeString:
    url = reverse("admin:academy_aijob_change", args=[job.pk])
    return format_html('<a href="{}">{} {}:{}</a>', url, job.job_id[:8], job.tier, job.status)


def _actor(request: HttpRequest) -> str:
    return str(request.user.get_username())


class RerunReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=2000)


class CallbackFilter(admin.SimpleListFilter):
    """Jobs whose domain callback failed: given up, or failing and still tried."""

    title = "callback"
    parameter_name = "callback"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("given_up", "given up"), ("failing", "failing, retried")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[models.AIJob]) -> QuerySet[models.AIJob]:
        if self.value() == "given_up":
            return queryset.filter(callback_failed_at__isnull=False)
        if self.value() == "failing":
            return queryset.filter(callback_failed_at__isnull=True, callback_attempts__gt=0, callback_done_at=None)
        return queryset


@admin.register(models.AIJob)
class AIJobAdmin(admin.ModelAdmin[models.AIJob]):
    list_display = (
        "job_id",
        "job_type",
        "tier",
        "status",
        "needs_review",
        "tenant",
        "attempt_count",
        "lineage_links",
        "callback_state",
        "created_at",
    )
    list_filter = ("status", "tier", "needs_review", "job_type", CallbackFilter, "tenant", "created_at")
    search_fields = ("job_id", "source_id", "idempotency_key", "celery_task_id")
    date_hierarchy = "created_at"
    list_select_related = ("tenant", "fallback_from", "fallback_job")
    readonly_fields = [f.name for f in models.AIJob._meta.fields] + [
        "result_pretty",
        "lineage",
        "reruns",
        "overlay",
        "artifact_links",
    ]
    actions = ("retry_jobs", "force_rerun_jobs", "send_to_premium")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # --- list and change page --------------------------------------------------------

    @admin.display(description="lineage")
    def lineage_links(self, job: models.AIJob) -> str:
        """The GPU-fallback parent (←) and child (→), and the job a re-run came from."""
        parts: list[SafeString] = []
        if job.fallback_from is not None:
            parts.append(format_html("← {}", _job_link(job.fallback_from)))
        child = getattr(job, "fallback_job", None)
        if child is not None:
            parts.append(format_html("→ {}", _job_link(child)))
        rerun_of = (job.flags or {}).get("rerun_of")
        if isinstance(rerun_of, str) and rerun_of:
            url = reverse("admin:academy_aijob_changelist") + f"?q={rerun_of}"
            parts.append(format_html('rerun of <a href="{}">{}</a>', url, rerun_of[:8]))
        return format_html_join(" ", "{}", ((p,) for p in parts)) if parts else "-"

    @admin.display(description="callback")
    def callback_state(self, job: models.AIJob) -> str:
        """A failed domain callback, with its error; blank when it ran or is not due."""
        if job.callback_failed_at is not None:
            return format_html("<b>given up</b> after {}: {}", job.callback_attempts, job.callback_error[:200])
        if job.callback_attempts and job.callback_done_at is None:
            return format_html("failing ({}): {}", job.callback_attempts, job.callback_error[:200])
        return "-"

    @admin.display(description="result")
    def result_pretty(self, job: models.AIJob) -> str:
        payload = selectors.job_result_payload(job)
        return format_html("<pre>{}</pre>", json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True))

    @admin.display(description="fallback chain")
    def lineage(self, job: models.AIJob) -> str:
        chain = selectors.job_lineage(job)
        return format_html_join(
            " → ", "{}", ((format_html("<b>{}</b>", _job_link(j)) if j.pk == job.pk else _job_link(j),) for j in chain)
        )

    @admin.display(description="re-runs")
    def reruns(self, job: models.AIJob) -> str:
        children = models.AIJob.objects.filter(flags__rerun_of=job.job_id).order_by("created_at")
        links = [(_job_link(child), child.rerun_reason) for child in children]
        return format_html_join(", ", "{} ({})", links) if links else "-"

    @admin.display(description="OMR overlay")
    def overlay(self, job: models.AIJob) -> str:
        if not job.artifacts.filter(name=selectors.OVERLAY).exists():
            return "-"
        url = reverse("admin:academy_aijob_artifact", args=[job.pk, selectors.OVERLAY])
        return format_html('<a href="{0}"><img src="{0}" alt="OMR overlay" style="max-width: 720px"></a>', url)

    @admin.display(description="artifacts")
    def artifact_links(self, job: models.AIJob) -> str:
        rows = [
            (reverse("admin:academy_aijob_artifact", args=[job.pk, a.name]), a.name, a.size)
            for a in job.artifacts.order_by("name")
        ]
        return format_html_join(", ", '<a href="{}">{}</a> ({} bytes)', rows) if rows else "-"

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<int:job_pk>/artifacts/<str:name>/",
                self.admin_site.admin_view(self.artifact_view),
                name="academy_aijob_artifact",
            )
        ]
        return extra + list(super().get_urls())

    def artifact_view(self, request: HttpRequest, job_pk: int, name: str) -> FileResponse:
        """Stream a job's artifact to staff (the admin session, not the API's token)."""
        artifact = models.JobArtifact.objects.select_related("job").filter(job_id=job_pk, name=name).first()
        if artifact is None or not self.has_view_permission(request, artifact.job):
            raise Http404("no such artifact")
        if not default_storage.exists(artifact.path):
            raise Http404("artifact file is missing")
        return FileResponse(default_storage.open(artifact.path, "rb"), content_type=artifact.content_type)

    # --- actions: each starts a new job through the admin_actions service -------------

    def _report(self, request: HttpRequest, outcomes: list[admin_actions.RerunOutcome]) -> None:
        for o in outcomes:
            if o.ok:
                note = f" ({o.warning})" if o.warning else ""
                self.message_user(request, f"{o.source_job_id}: new job {o.job_id} on {o.tier}{note}", messages.SUCCESS)
            else:
                self.message_user(request, f"{o.source_job_id}: not re-run: {o.error}", messages.WARNING)

    @admin.action(description="Retry (FAILED / REJECTED jobs, same tier)", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[models.AIJob]) -> None:
        actor = _actor(request)
        self._report(request, [admin_actions.job_admin_retry(job=job, actor=actor) for job in queryset])

    @admin.action(description="Force rerun with a reason…", permissions=["change"])
    def force_rerun_jobs(self, request: HttpRequest, queryset: QuerySet[models.AIJob]) -> HttpResponse | None:
        form = RerunReasonForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            actor = _actor(request)
            reason = f"{form.cleaned_data['reason'].strip()} (by {actor})"
            self._report(request, [admin_actions.job_rerun(job=job, reason=reason, actor=actor) for job in queryset])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Force rerun with a reason",
            "opts": self.model._meta,
            "jobs": queryset,
            "form": form,
            "action": "force_rerun_jobs",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/academy/aijob/rerun_reason.html", context)

    @admin.action(description="Send to premium (re-run on the GPU pool)", permissions=["change"])
    def send_to_premium(self, request: HttpRequest, queryset: QuerySet[models.AIJob]) -> None:
        actor = _actor(request)
        self._report(request, [admin_actions.job_send_to_premium(job=job, actor=actor) for job in queryset])


# --- OMR batches and submissions: read-only -----------------------------------------------


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SubmissionInline(_ReadOnly, admin.TabularInline[models.Submission, models.OmrBatch]):
    model = models.Submission
    fields = ("sheet_name", "status", "student_id", "rejection_code", "job_link")
    readonly_fields = fields
    show_change_link = True
    extra = 0

    @admin.display(description="job")
    def job_link(self, submission: models.Submission) -> str:
        return _job_link(submission.job) if submission.job is not None else "-"


@admin.register(models.OmrBatch)
class OmrBatchAdmin(_ReadOnly, admin.ModelAdmin[models.OmrBatch]):
    list_display = ("batch_id", "tenant", "exam", "mode", "total_sheets", "progress", "created_at", "graded_at")
    list_filter = ("tenant", "mode", "created_at")
    search_fields = ("batch_id", "idempotency_key")
    list_select_related = ("tenant", "exam")
    readonly_fields = ("progress", "status_counts", "sources_pretty", "skipped_pretty")
    exclude = ("sources", "skipped")
    inlines = (SubmissionInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[models.OmrBatch]:
        return (
            super()
            .get_queryset(request)
            .annotate(settled_count=Count("submissions", filter=Q(submissions__status__in=_SETTLED)))
        )

    @admin.display(description="progress")
    def progress(self, batch: models.OmrBatch) -> str:
        settled = getattr(batch, "settled_count", None)
        if settled is None:
            settled = batch.submissions.filter(status__in=_SETTLED).count()
        percent = round(100 * settled / batch.total_sheets) if batch.total_sheets else 100
        return f"{settled}/{batch.total_sheets} ({percent}%)"

    @admin.display(description="sheets by status")
    def status_counts(self, batch: models.OmrBatch) -> str:
        counts = selectors.batch_body(batch, with_sheets=False)["by_status"]
        return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items())) or "-"

    @admin.display(description="sources")
    def sources_pretty(self, batch: models.OmrBatch) -> str:
        return format_html("<pre>{}</pre>", json.dumps(batch.sources, ensure_ascii=False, indent=2))

    @admin.display(description="skipped")
    def skipped_pretty(self, batch: models.OmrBatch) -> str:
        return format_html("<pre>{}</pre>", json.dumps(batch.skipped, ensure_ascii=False, indent=2))


class SubmissionAnswerInline(_ReadOnly, admin.TabularInline[models.SubmissionAnswer, models.Submission]):
    model = models.SubmissionAnswer
    fields = ("question", "detected", "corrected", "confidence", "flagged")
    readonly_fields = fields
    extra = 0


@admin.register(models.Submission)
class SubmissionAdmin(_ReadOnly, admin.ModelAdmin[models.Submission]):
    list_display = ("pk", "tenant", "exam", "batch", "sheet_name", "student_id", "status", "rejection_code")
    list_filter = ("status", "tenant", "created_at")
    search_fields = ("student_id", "sheet_name", "batch__batch_id", "job__job_id")
    list_select_related = ("tenant", "exam", "batch")
    readonly_fields = ("job_link", "grade_summary")
    inlines = (SubmissionAnswerInline,)

    @admin.display(description="job")
    def job_link(self, submission: models.Submission) -> str:
        return _job_link(submission.job) if submission.job is not None else "-"

    @admin.display(description="grade")
    def grade_summary(self, submission: models.Submission) -> str:
        grade = models.Grade.objects.filter(submission=submission).first()
        return f"{grade.score}/{grade.max_score} (graded {grade.times_graded} times)" if grade else "-"


# --- editable knobs --------------------------------------------------------------------


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
admin.site.register(models.Grade)
