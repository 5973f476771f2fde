"""The outcome decision is pure: each branch of the rules, decided from plain values
with no database (no ``db`` fixture here, so any query would fail the test)."""

from __future__ import annotations

from typing import Any

import pytest

from academy.jobs.decision import (
    Done,
    Fail,
    Fallback,
    JobFacts,
    Reject,
    Retry,
    Transition,
    exhausted_decide,
    outcome_decide,
)
from academy.policies import Failure
from academy.selectors import TenantPolicy
from academy.states import JobStatus
from workers.base import ProcessorResult

PAYS = TenantPolicy(has_premium_subscription=True, allow_gpu_fallback=True, gpu_fallback_threshold=0.5)
FREE = TenantPolicy()


def _facts(tier: str, **kw: Any) -> JobFacts:
    given: dict[str, Any] = {"tenant_id": 7, "attempt_count": 1, "max_attempts": 3, "flags": {"seen": 1}}
    return JobFacts(tier=tier, **{**given, **kw})


def _decide(
    job: JobFacts, outcome: ProcessorResult | Failure, *, policy: TenantPolicy = FREE, shadow: bool = True
) -> Transition:
    return outcome_decide(job, outcome, policy=policy, shadow_mode=shadow, backoff_base=2.0, backoff_max=60.0)


@pytest.mark.parametrize("tier", ["lite", "basic"])
def test_lite_and_basic_never_fail_a_processing_error_is_done_with_review(tier: str) -> None:
    decided = _decide(_facts(tier), Failure("processing_failed", error_code="library_error", detail="boom"))
    assert isinstance(decided, Done)
    assert decided.finish.status == JobStatus.DONE
    assert decided.finish.flags == {
        "seen": 1,
        "review_candidate": True,
        "from_exception": True,
        "error_code": "library_error",
    }
    assert decided.finish.result == {"error_code": "library_error", "error": "boom"}
    assert decided.answer == JobStatus.DONE


def test_premium_processing_error_fails() -> None:
    decided = _decide(_facts("premium"), Failure("processing_failed", error_code="library_error", detail="boom"))
    assert isinstance(decided, Fail)
    assert decided.finish.status == JobStatus.FAILED
    assert decided.finish.error_message == "boom"


@pytest.mark.parametrize("tier", ["lite", "basic"])
def test_lite_and_basic_low_confidence_result_is_done_flagged(tier: str) -> None:
    decided = _decide(_facts(tier), ProcessorResult(data={"a": 1}, confidence=0.1))
    assert isinstance(decided, Done)
    assert decided.finish.status == JobStatus.DONE
    assert decided.finish.flags["review_candidate"] is True
    assert decided.finish.result == {"a": 1}
    assert decided.claimed is True


@pytest.mark.parametrize(
    ("confidence", "shadow", "kind", "status", "flags"),
    [
        (0.95, True, Done, JobStatus.DONE, {"review_candidate": False}),
        (0.95, False, Done, JobStatus.DONE, {"review_candidate": False}),
        (0.6, True, Done, JobStatus.DONE, {"review_candidate": True, "shadow": True}),
        (0.6, False, Done, JobStatus.REVIEW_REQUIRED, {"review_candidate": True}),
        (0.3, True, Fail, JobStatus.FAILED, {"error_code": "low_confidence"}),
        (0.3, False, Fail, JobStatus.FAILED, {"error_code": "low_confidence"}),
    ],
)
def test_premium_confidence_bands_with_shadow_mode_on_and_off(
    confidence: float, shadow: bool, kind: type, status: str, flags: dict[str, Any]
) -> None:
    decided = _decide(_facts("premium"), ProcessorResult(data={}, confidence=confidence), shadow=shadow)
    assert type(decided) is kind
    assert isinstance(decided, Done | Fail)
    assert decided.finish.status == status
    assert decided.finish.flags == {"seen": 1, "confidence": confidence, **flags}
    if status == JobStatus.FAILED:
        assert decided.finish.error_message == "confidence 0.30 is below the premium fail band (0.5)"


def test_a_retryable_failure_with_attempts_left_retries_within_the_backoff_window() -> None:
    decided = _decide(
        _facts("basic", attempt_count=3, max_attempts=5), Failure("processing_failed", detail="blip", retryable=True)
    )
    assert isinstance(decided, Retry)
    assert decided.error == "blip"
    assert 0 <= decided.countdown <= 8.0  # base 2 s * 2**(3 - 1)


def test_a_retryable_failure_out_of_attempts_closes_instead() -> None:
    failure = Failure("processing_failed", error_code="timeout", detail="slow", retryable=True)
    assert isinstance(_decide(_facts("basic", attempt_count=3, max_attempts=3), failure), Done)
    assert isinstance(_decide(_facts("premium", attempt_count=3, max_attempts=3), failure), Fail)


def test_bad_input_is_rejected_with_its_code() -> None:
    decided = _decide(_facts("basic"), Failure("validation_failed", error_code="BLUR_OR_SHAKE", detail="blurry"))
    assert isinstance(decided, Reject)
    assert decided.answer == "rejected"
    assert decided.finish.rejection_code == "BLUR_OR_SHAKE"
    assert decided.finish.flags == {"rejection_detail": "blurry"}


def test_a_weak_basic_result_of_a_paying_tenant_falls_back_and_says_what_to_do_at_the_cap() -> None:
    decided = _decide(_facts("basic"), ProcessorResult(data={"a": 1}, confidence=0.4), policy=PAYS)
    assert isinstance(decided, Fallback)
    assert decided.reason == "processing_failed:low_confidence"
    assert decided.basic_result == {"a": 1}
    assert decided.basic_outcome == {"status": JobStatus.DONE, "flags": {"confidence": 0.4, "review_candidate": True}}
    assert decided.cap == PAYS.daily_fallback_cap
    capped = decided.capped
    assert isinstance(capped, Done)
    assert capped.finish.flags == {
        "seen": 1,
        "fallback_skipped": "daily_cap_reached",
        "confidence": 0.4,
        "review_candidate": True,
    }
    assert capped.finish.result == {"a": 1}


def test_a_basic_failure_of_a_paying_tenant_falls_back_with_its_code_as_reason() -> None:
    decided = _decide(_facts("basic"), Failure("validation_failed", error_code="TOO_DARK", detail="dark"), policy=PAYS)
    assert isinstance(decided, Fallback)
    assert decided.reason == "validation_failed:TOO_DARK"
    assert decided.basic_outcome == {
        "status": JobStatus.REJECTED_BAD_INPUT,
        "rejection_code": "TOO_DARK",
        "detail": "dark",
    }
    assert isinstance(decided.capped, Reject)


def test_no_fallback_for_a_tenant_that_does_not_pay_a_strong_result_or_no_tenant() -> None:
    weak = ProcessorResult(data={}, confidence=0.4)
    assert isinstance(_decide(_facts("basic"), weak, policy=FREE), Done)
    assert isinstance(_decide(_facts("basic"), ProcessorResult(data={}, confidence=0.9), policy=PAYS), Done)
    assert isinstance(_decide(_facts("basic", tenant_id=None), weak, policy=PAYS), Done)
    assert isinstance(_decide(_facts("lite"), weak, policy=PAYS), Done)


def _rerun(basic_outcome: dict[str, Any]) -> JobFacts:
    return _facts("premium", fallback_from_id=41, flags={"basic_outcome": basic_outcome})


def test_a_failed_premium_rerun_keeps_basics_done_and_reads_basics_result() -> None:
    decided = _decide(
        _rerun({"status": JobStatus.DONE, "flags": {"review_candidate": True}}),
        ProcessorResult(data={}, confidence=0.2),
    )
    assert isinstance(decided, Done)
    assert decided.basic_result_of == 41
    assert decided.claimed is True
    assert decided.finish.flags["premium_failed"]["code"] == "low_confidence"


def test_a_rejected_premium_rerun_keeps_basics_refusal() -> None:
    outcome = Failure("processing_failed", error_code="library_error", detail="x")
    decided = _decide(_rerun({"status": JobStatus.REJECTED_BAD_INPUT, "rejection_code": "TOO_DARK"}), outcome)
    assert isinstance(decided, Reject)
    assert decided.finish.rejection_code == "TOO_DARK"
    assert decided.basic_result_of is None


def test_out_of_attempts_is_poison_done_for_basic_and_failed_for_premium() -> None:
    basic = exhausted_decide(_facts("basic", attempt_count=3), last_error="killed")
    assert isinstance(basic, Done)
    assert basic.finish.flags["poison"] is True
    assert basic.finish.error_message == "gave up after 3 attempts: killed"
    assert isinstance(exhausted_decide(_facts("premium"), last_error=None), Fail)
