"""Property-based fuzzing of the internal worker API (next, heartbeat, result): no 5xx.

As tests/badinput/test_schema_fuzz.py does for every operation, schemathesis reads the
OpenAPI schema and generates requests; here only the internal operations, with more
examples, and aimed at a real job: each generated heartbeat or result is sent for a job
just claimed, with that run's lease token unless the generated body brings its own, so
the generated status, result, numbers and progress reach the lifecycle's writes instead
of stopping at "job not found".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from schemathesis.checks import not_a_server_error

from tests.badinput.fuzzing import WORKER_TOKEN, fuzz_settings, wsgi_schema

MAX_EXAMPLES = 80
WORKER_ID = "fuzz"

schema = wsgi_schema(path_regex=r"^/api/v1/internal/")
pytestmark = pytest.mark.usefixtures("keep_the_test_connection")


@pytest.fixture
def fuzz_tenant(make_tenant: Any, settings: Any) -> Iterator[Any]:
    settings.INTERNAL_WORKER_TOKEN = WORKER_TOKEN
    tenant, _ = make_tenant(premium=True, fallback=True)
    with mock.patch("academy.jobs.sending.job_send", return_value="task-fuzz"):
        yield tenant


def _aimed_at_a_claimed_job(body: dict[str, Any], tenant: Any) -> dict[str, Any]:
    from academy.jobs.claims import job_claim
    from academy.jobs.dispatch import job_dispatch

    job_id = job_dispatch(job_type="ping", payload={}, tenant=tenant, tier="basic")["job_id"]
    job, token = job_claim(job_id=job_id, worker=f"external:{WORKER_ID}")
    assert job is not None, token
    aimed = dict(body)
    # Most bodies go to the real job; a few keep the generated id (an unknown job).
    if len(str(body.get("job_id", ""))) % 4 != 1:
        aimed["job_id"] = job_id
    aimed.setdefault("lease_token", token)
    return aimed


@pytest.mark.django_db(transaction=True)
@schema.parametrize()  # type: ignore[untyped-decorator]  # schemathesis ships no types for it
@fuzz_settings(max_examples=MAX_EXAMPLES)
def test_no_internal_worker_request_answers_a_server_error(case: Any, fuzz_tenant: Any) -> None:
    if isinstance(case.body, dict):
        case.body = _aimed_at_a_claimed_job(case.body, fuzz_tenant)
    headers = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-Id": WORKER_ID}
    case.call_and_validate(headers=headers, checks=[not_a_server_error])
