"""The platform's tables. The AIJob row is the single source of truth for a job.

Celery messages only carry a job id; whatever a message says, a worker re-reads the row
and acts on what the row allows (see academy/jobs/claims.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from academy.states import CLAIMABLE_STATUSES, TERMINAL_STATUSES, JobStatus, Tier

__all__ = ["CLAIMABLE_STATUSES", "TERMINAL_STATUSES", "JobStatus", "Tier"]


def new_job_id() -> str:
    return uuid.uuid4().hex


class Tenant(models.Model):
    """An academy (학원). Every job, file and result belongs to one."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """Which tenant a user acts for. A user belongs to exactly one academy."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="members")

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}"


class TenantConfig(models.Model):
    """What an academy pays for, and how its results are judged."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="config")
    has_premium_subscription = models.BooleanField(default=False)
    allow_gpu_fallback = models.BooleanField(default=False)
    # A basic result with confidence at or below this is a failure worth a premium re-run.
    gpu_fallback_threshold = models.FloatField(default=0.5)
    tier_override = models.CharField(max_length=16, choices=Tier.choices, blank=True, default="")
    # Premium status bands: below fail_below -> FAILED, below review_below -> review.
    premium_fail_below = models.FloatField(default=0.5)
    premium_review_below = models.FloatField(default=0.8)
    daily_fallback_cap = models.PositiveIntegerField(default=500)

    def __str__(self) -> str:
        return f"config({self.tenant})"


class RuntimeFlag(models.Model):
    """A global switch flipped from the admin without a deploy (e.g. ``ai_shadow_mode``)."""

    key = models.CharField(max_length=128, unique=True)
    value = models.CharField(max_length=512, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class AIJob(models.Model):
    job_id = models.CharField(max_length=64, unique=True, default=new_job_id, editable=False)
    job_type = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=32, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.BASIC, db_index=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="jobs", null=True, blank=True)

    payload = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True, default="")
    rejection_code = models.CharField(max_length=64, blank=True, default="")
    # Policy flags: review_candidate, from_exception, confidence, fallback_reason...
    flags = models.JSONField(default=dict, blank=True)
    needs_review = models.BooleanField(default=False, db_index=True)
    # {"stage": str, "percent": int}, reported by the processor while it runs.
    progress = models.JSONField(default=dict, blank=True)

    source_domain = models.CharField(max_length=64, blank=True, default="")
    source_id = models.CharField(max_length=64, blank=True, default="")

    # Retry and lease. lease_token fences a run: only the holder may heartbeat or finish.
    attempt_count = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    locked_by = models.CharField(max_length=200, blank=True, default="")
    locked_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The attempt whose run ended with its lease (its worker died), written by the claim
    # that takes the job over or by the sweeper that hands it back; None if none did.
    lease_lost_attempt = models.PositiveIntegerField(null=True, blank=True)
    next_run_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")

    idempotency_key = models.CharField(max_length=300, unique=True, null=True, blank=True)
    force_rerun = models.BooleanField(default=False)
    rerun_reason = models.TextField(blank=True, default="")

    celery_task_id = models.CharField(max_length=255, blank=True, default="")
    publish_count = models.PositiveIntegerField(default=0)
    # GPU-fallback lineage: the premium re-run points at the basic job it replaces.
    fallback_from = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="fallback_job"
    )
    fallback_from_tier = models.CharField(max_length=16, choices=Tier.choices, blank=True, default="")
    # Set in the same transaction as the domain callback's writes: exactly once.
    callback_done_at = models.DateTimeField(null=True, blank=True)
    # A callback that failed: how many applies failed, the last error, when the sweeper
    # may send it again, how often it did, and when it was given up (an error that
    # cannot change, or too many tries). The job's own status stays as the run left it.
    callback_attempts = models.PositiveIntegerField(default=0)
    callback_error = models.TextField(blank=True, default="")
    callback_next_at = models.DateTimeField(null=True, blank=True)
    callback_sends = models.PositiveIntegerField(default=0)
    callback_failed_at = models.DateTimeField(null=True, blank=True)
    # What the dispatch asked for (job type, canonical payload, tier, source), hashed:
    # an idempotency key reused with another request is a conflict, not a repeat.
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_run_at"], name="ai_job_status_next_run_idx"),
            models.Index(fields=["lease_expires_at"], name="ai_job_lease_idx"),
            models.Index(fields=["source_domain", "source_id"], name="ai_job_source_idx"),
            models.Index(fields=["tier", "status", "created_at"], name="ai_job_tier_status_idx"),
            models.Index(fields=["tenant", "created_at"], name="ai_job_tenant_idx"),
        ]

    def __str__(self) -> str:
        return f"AIJob<{self.job_id}>({self.job_type})[{self.tier}][{self.status}]"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class FallbackQuota(models.Model):
    """GPU fallbacks a tenant has taken on one day. The daily cap is enforced by one
    conditional UPDATE on this row (``used < cap``), so concurrent fallbacks cannot
    both pass the last slot."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="fallback_quotas")
    day = models.DateField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="fallback_quota_per_day")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day}: {self.used}"


class WriteOnceError(Exception):
    pass


class AIResult(models.Model):
    """The result of a job: one row per job, never updated (the write-once anchor)."""

    job = models.OneToOneField(AIJob, on_delete=models.CASCADE, related_name="result")
    payload = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"AIResult(job={self.job_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise WriteOnceError(f"result of job {self.job_id} is write-once")
        super().save(*args, **kwargs)


class JobArtifact(models.Model):
    """A file a processor produced, stored under the tenant's prefix."""

    job = models.ForeignKey(AIJob, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=500)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="artifact_unique_per_job")]

    def __str__(self) -> str:
        return f"{self.name} ({self.job_id})"


# --- exams and grading: where OMR results land ------------------------------------------


class Exam(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="exams")
    title = models.CharField(max_length=200)
    # The sheet template the reader uses (workers/omr format); empty until one is chosen.
    sheet_template = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title


class AnswerKey(models.Model):
    """Per question, the accepted choices and points, plus a marking scheme.

    ``questions``: ``{"1": {"correct": ["A"], "points": 1}, ...}``; any listed choice is
    right. ``scheme``: points for ``incorrect`` and ``unmarked`` answers (0 or negative).
    """

    exam = models.OneToOneField(Exam, on_delete=models.CASCADE, related_name="answer_key")
    questions = models.JSONField(default=dict)
    scheme = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"answer key of exam {self.exam_id}"


class SubmissionStatus(models.TextChoices):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    READ = "READ"  # answers stored; in a batch, grading waits for the last sheet
    GRADED = "GRADED"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    REJECTED = "REJECTED"  # the sheet could not be read; rejection_code says why
    FAILED = "FAILED"


#: a sheet in one of these states will not change without a person.
SUBMISSION_SETTLED = frozenset(
    {SubmissionStatus.GRADED, SubmissionStatus.NEEDS_REVIEW, SubmissionStatus.REJECTED, SubmissionStatus.FAILED}
)


class OmrBatch(models.Model):
    """One upload of a class's answer sheets for an exam: one submission per sheet.

    Sheets are read independently, in parallel, by the basic pool; the batch is graded
    once, when its last sheet settles (``graded_at`` marks that, under a row lock).
    """

    batch_id = models.CharField(max_length=32, unique=True, default=new_job_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="omr_batches")
    exam = models.ForeignKey("Exam", on_delete=models.CASCADE, related_name="omr_batches")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    mode = models.CharField(max_length=16, default="scan")
    # What was uploaded, and the entries that never became a sheet (zip members that
    # are not images, a PDF that would not open...), each with its code and message.
    sources = models.JSONField(default=list, blank=True)
    skipped = models.JSONField(default=list, blank=True)
    total_sheets = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set once every sheet of the upload has its submission; grading waits for it.
    sealed_at = models.DateTimeField(null=True, blank=True)
    # Set instead when the upload stopped before every sheet existed: such a batch is
    # never sealed nor graded (it holds part of the upload), and a retry with the same
    # idempotency key makes a whole new batch.
    interrupted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    graded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"OmrBatch({self.batch_id}, {self.total_sheets} sheets)"


class Submission(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="submissions")
    exam = models.ForeignKey(Exam, on_delete=models.CASCADE, related_name="submissions")
    student_id = models.CharField(max_length=32, blank=True, default="")
    source_file = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=SubmissionStatus.choices, default=SubmissionStatus.PENDING)
    job = models.ForeignKey(AIJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="submissions")
    batch = models.ForeignKey(OmrBatch, on_delete=models.CASCADE, null=True, blank=True, related_name="submissions")
    # Name of the sheet inside the upload: the file name, "name#page" for a PDF page.
    sheet_name = models.CharField(max_length=300, blank=True, default="")
    page = models.PositiveIntegerField(null=True, blank=True)  # 1-based PDF page
    rejection_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["batch", "status"])]

    def __str__(self) -> str:
        return f"Submission({self.exam_id}, {self.student_id or '?'})"


class SubmissionAnswer(models.Model):
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="answers")
    question = models.CharField(max_length=32)
    detected = models.JSONField(default=list)
    confidence = models.FloatField(default=1.0)
    flagged = models.BooleanField(default=False)
    # A teacher's correction wins over the reading; null until someone corrects it.
    corrected = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["submission", "question"], name="one_answer_per_question")]

    def __str__(self) -> str:
        return f"{self.question}: {self.final}"

    @property
    def final(self) -> list[str]:
        return list(self.corrected if self.corrected is not None else self.detected)


class Grade(models.Model):
    """One per submission: regrading replaces it, it is never duplicated."""

    submission = models.OneToOneField(Submission, on_delete=models.CASCADE, related_name="grade")
    score = models.FloatField()
    max_score = models.FloatField()
    details = models.JSONField(default=dict)
    graded_at = models.DateTimeField(auto_now=True)
    times_graded = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.score}/{self.max_score}"
