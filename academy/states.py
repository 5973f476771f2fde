"""Job tiers and statuses. Plain enums: importable before Django's app registry is ready."""

from __future__ import annotations

from typing import Final

from django.db import models


class Tier(models.TextChoices):
    LITE = "lite", "Lite"
    BASIC = "basic", "Basic"
    PREMIUM = "premium", "Premium"


#: every tier, cheapest first: each has its own queue and worker pool
TIERS: Final = (Tier.LITE.value, Tier.BASIC.value, Tier.PREMIUM.value)
#: the tiers that never fail a job (an error is DONE with a review flag) and whose
#: quality gate refuses what they cannot read
NO_FAIL_TIERS: Final = frozenset({Tier.LITE.value, Tier.BASIC.value})


class JobStatus(models.TextChoices):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    REJECTED_BAD_INPUT = "REJECTED_BAD_INPUT"
    FALLBACK_TO_GPU = "FALLBACK_TO_GPU"
    RETRYING = "RETRYING"
    REVIEW_REQUIRED = "REVIEW_REQUIRED"


# A job in one of these states never runs again. FALLBACK_TO_GPU is final for *this*
# row: the premium re-run is a new row that points back at it.
TERMINAL_STATUSES = frozenset(
    {
        JobStatus.DONE,
        JobStatus.FAILED,
        JobStatus.REJECTED_BAD_INPUT,
        JobStatus.FALLBACK_TO_GPU,
        JobStatus.REVIEW_REQUIRED,
    }
)
# The domain hears of every end but a hand-over to the GPU pool: the premium re-run
# carries the same source and reports for both.
CALLBACK_STATUSES = TERMINAL_STATUSES - {JobStatus.FALLBACK_TO_GPU}
# A run may claim a job in one of these states (with attempts left); a RUNNING job
# only once its lease has expired.
CLAIMABLE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RETRYING})
# A run holds the job in these states; its lease says until when.
HELD_STATUSES = frozenset({JobStatus.RUNNING, JobStatus.VALIDATING})
