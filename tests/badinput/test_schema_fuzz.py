"""Property-based fuzzing of every operation in the OpenAPI schema: no input is a 5xx.

Schemathesis reads ``/api/schema/`` (drf-spectacular) from the WSGI app itself and sends
each operation ``MAX_EXAMPLES`` generated requests, authenticated as an academy's
teacher. The internal worker API is fuzzed too, with its token configured: without one
it answers 503 by design (see tests/security), which would read as a server error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from schemathesis.checks import not_a_server_error

from tests.badinput.fuzzing import WORKER_TOKEN, fuzz_settings, wsgi_schema

MAX_EXAMPLES = 25

schema = wsgi_schema()
pytestmark = pytest.mark.usefixtures("keep_the_test_connection")


@pytest.fixture
def fuzz_headers(make_tenant: Any, settings: Any) -> Iterator[dict[str, str]]:
    settings.INTERNAL_WORKER_TOKEN = WORKER_TOKEN
    _, token = make_tenant()
    # Nothing generated should reach a broker: a dispatch that passes checks is only recorded.
    with mock.patch("academy.jobs.sending.job_send", return_value="task-fuzz"):
        yield {"Authorization": f"Token {token}", "X-Worker-Token": WORKER_TOKEN, "X-Worker-Id": "fuzz"}


@pytest.mark.django_db(transaction=True)
@schema.parametrize()  # type: ignore[untyped-decorator]  # schemathesis ships no types for it
@fuzz_settings(max_examples=MAX_EXAMPLES)
def test_no_operation_answers_a_server_error(case: Any, fuzz_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=fuzz_headers, checks=[not_a_server_error])
