"""The business rules, as pure functions."""

from __future__ import annotations

import random
from typing import TypedDict

import pytest

from academy import policies
from academy.policies import Failure


@pytest.mark.parametrize(
    ("explicit", "payload", "override", "expected"),
    [
        ("lite", {"tier": "premium"}, "basic", "lite"),  # explicit argument wins
        (None, {"tier": "lite"}, "basic", "lite"),  # then the payload
        (None, {}, "lite", "lite"),  # then the tenant's override
        (None, {}, "", "basic"),  # then the job type's default
        ("LITE", {}, "", "lite"),  # case-insensitive
        ("gold", {"tier": "silver"}, "", "basic"),  # nonsense is ignored
    ],
)
def test_tier_resolution_order(explicit: str | None, payload: dict[str, str], override: str, expected: str) -> None:
    decision = policies.tier_resolve(job_type="ocr", explicit=explicit, payload=payload, tenant_override=override)
    assert decision.tier == expected


def test_tier_not_allowed_for_the_job_type_falls_back_to_basic_with_a_warning() -> None:
    decision = policies.tier_resolve(job_type="excel_parsing", explicit="lite", payload={}, has_premium=True)
    assert decision.tier == "basic"
    assert "cannot run excel_parsing" in decision.warning


def test_premium_without_subscription_runs_on_basic() -> None:
    decision = policies.tier_resolve(job_type="excel_parsing", explicit="premium", payload={}, has_premium=False)
    assert decision.tier == "basic"
    assert "subscription" in decision.warning


def test_premium_only_job_type_stays_on_premium() -> None:
    decision = policies.tier_resolve(job_type="embedding", explicit="basic", payload={}, has_premium=True)
    assert decision.tier == "premium"


@pytest.mark.parametrize("tier", ["lite", "basic"])
def test_lite_and_basic_never_fail(tier: str) -> None:
    resolution = policies.status_for_exception(tier, error_code="library_error")
    assert resolution.status == "DONE"
    assert resolution.flags == {"review_candidate": True, "from_exception": True, "error_code": "library_error"}
    low = policies.status_for_confidence(tier=tier, confidence=0.01, processor_review=False)
    assert (low.status, low.flags["review_candidate"]) == ("DONE", True)


def test_premium_exception_fails() -> None:
    assert policies.status_for_exception("premium", error_code="timeout").status == "FAILED"


@pytest.mark.parametrize(
    ("confidence", "shadow", "status", "review"),
    [
        (0.49, True, "FAILED", False),
        (0.5, True, "DONE", True),
        (0.79, True, "DONE", True),
        (0.79, False, "REVIEW_REQUIRED", True),
        (0.8, False, "DONE", False),
        (0.99, True, "DONE", False),
    ],
)
def test_premium_confidence_bands(confidence: float, shadow: bool, status: str, review: bool) -> None:
    resolution = policies.status_for_confidence(
        tier="premium", confidence=confidence, processor_review=False, shadow_mode=shadow
    )
    assert resolution.status == status
    assert resolution.needs_review is review


def test_processor_review_flag_raises_a_confident_premium_result_to_review() -> None:
    resolution = policies.status_for_confidence(
        tier="premium", confidence=0.99, processor_review=True, shadow_mode=False
    )
    assert resolution.status == "REVIEW_REQUIRED"


class _FallbackArgs(TypedDict):
    tier: str
    failure: Failure
    threshold: float


@pytest.mark.parametrize(
    ("failure", "qualifies"),
    [
        (Failure("validation_failed"), True),
        (Failure("processing_failed", confidence=0.5), True),  # at the threshold
        (Failure("processing_failed", confidence=0.51), False),
        (Failure("processing_failed", error_code="corrupted_file"), True),
        (Failure("processing_failed", error_code="timeout"), True),
        (Failure("processing_failed", error_code="something_else"), False),
    ],
)
def test_gpu_fallback_qualification(failure: Failure, qualifies: bool) -> None:
    args: _FallbackArgs = {"tier": "basic", "failure": failure, "threshold": 0.5}
    assert policies.fallback_qualifies(has_premium=True, allow_gpu_fallback=True, **args) is qualifies
    assert policies.fallback_qualifies(has_premium=False, allow_gpu_fallback=True, **args) is False
    assert policies.fallback_qualifies(has_premium=True, allow_gpu_fallback=False, **args) is False


def test_only_basic_jobs_fall_back() -> None:
    for tier in ("lite", "premium"):
        assert not policies.fallback_qualifies(
            tier=tier, failure=Failure("validation_failed"), has_premium=True, allow_gpu_fallback=True, threshold=0.5
        )


def test_retry_backoff_grows_exponentially_within_its_cap() -> None:
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (20, 60.0)]:
        samples = [policies.retry_countdown(attempt, base=2.0, cap=60.0) for _ in range(200)]
        assert min(samples) >= 0
        assert max(samples) <= ceiling
        assert max(samples) > ceiling * 0.8  # full jitter reaches the top of its window


def test_retry_backoff_is_celerys_full_jitter_in_milliseconds() -> None:
    from celery.utils.time import get_exponential_backoff_interval

    for attempt in (1, 2, 3, 4, 9):
        random.seed(attempt)
        ours = policies.retry_countdown(attempt, base=0.2, cap=1.0)
        random.seed(attempt)
        celerys = get_exponential_backoff_interval(factor=200, retries=attempt - 1, maximum=1000, full_jitter=True)
        assert ours == celerys / 1000


def test_a_base_under_a_second_still_backs_off() -> None:
    # The test settings' base (0.2 s, cap 1 s): Celery counts in whole units, and whole
    # seconds would make every countdown 0.
    samples = [policies.retry_countdown(3, base=0.2, cap=1.0) for _ in range(200)]
    assert max(samples) <= 0.8
    assert max(samples) > 0.6
    assert len(set(samples)) > 50


def test_a_doubling_wait_doubles_to_its_cap_without_jitter() -> None:
    waits = [policies.doubling_wait(attempt, base=0.25, cap=3.0) for attempt in range(1, 7)]
    assert waits == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]
