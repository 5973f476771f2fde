"""The internal worker API under the inputs and timings an outside worker meets: a job
longer than its lease, a late result after the lease was lost, retry backoff, two
pollers, and numbers no database column can hold."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from academy.models import AIJob, JobStatus

TOKEN = "internal-test-token"
HEADERS = {"HTTP_X_WORKER_TOKEN": TOKEN, "HTTP_X_WORKER_ID": "gpu-box-1"}
NEXT = "/api/v1/internal/ai/job/next/"
HEARTBEAT = "/api/v1/internal/ai/job/heartbeat/"
RESULT = "/api/v1/internal/ai/job/result/"

pytestmark = pytest.mark.usefixtures("worker_token")


@pytest.fixture
def worker_token() -> Any:
    with override_settings(INTERNAL_WORKER_TOKEN=TOKEN):
        yield


@pytest.fixture
def no_broker() -> Any:
    with mock.patch("academy.jobs.sending.job_send", return_value="task-x") as publish:
        yield publish


@pytest.fixture
def dispatched(make_tenant: Any, no_broker: Any) -> Any:
    from academy.jobs.dispatch import job_dispatch

    tenant, _ = make_tenant()

    def make(tier: str = "basic") -> str:
        return str(job_dispatch(job_type="ping", payload={}, tenant=tenant, tier=tier)["job_id"])

    return make


def _post(client: Any, url: str, body: Any, **headers: Any) -> Any:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(url, raw, content_type="application/json", **{**HEADERS, **headers})


def _claim(client: Any, **headers: Any) -> dict[str, Any]:
    job = client.get(NEXT, **{**HEADERS, **headers}).json()["job"]
    assert job is not None
    return dict(job)


def _lose_the_lease(job_id: str) -> str:
    """The worker went quiet past its lease and a pool took the job: returns the pool's token."""
    from academy.jobs.claims import job_claim

    AIJob.objects.filter(job_id=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    job, token = job_claim(job_id=job_id, worker="basic@pool-host:1")
    assert job is not None, token
    return token


# --- heartbeat ----------------------------------------------------------------------------


def test_a_heartbeat_renews_the_lease_and_records_progress(client: Any, dispatched: Any) -> None:
    job_id = dispatched()
    claimed = _claim(client)
    AIJob.objects.filter(job_id=job_id).update(lease_expires_at=timezone.now() + timedelta(seconds=1))

    beat = {"job_id": job_id, "lease_token": claimed["lease_token"], "progress": {"stage": "reading", "percent": 40}}
    response = _post(client, HEARTBEAT, beat)

    assert response.status_code == 200, response.content
    job = AIJob.objects.get(job_id=job_id)
    assert job.lease_expires_at is not None
    assert job.lease_expires_at > timezone.now() + timedelta(seconds=2)  # AI_LEASE_SECONDS is 4 in tests
    assert (job.progress["stage"], job.progress["percent"]) == ("reading", 40)


def test_an_outside_job_longer_than_its_lease_is_not_run_again_while_it_heartbeats(
    client: Any, dispatched: Any
) -> None:
    from academy.jobs.claims import job_claim

    job_id = dispatched()
    claimed = _claim(client)
    # The job has run for longer than a lease: without a renewal a pool would take it now.
    AIJob.objects.filter(job_id=job_id).update(lease_expires_at=timezone.now() - timedelta(milliseconds=1))

    assert _post(client, HEARTBEAT, {"job_id": job_id, "lease_token": claimed["lease_token"]}).status_code == 200

    job, why = job_claim(job_id=job_id, worker="basic@pool-host:1")
    assert (job, why) == (None, "not_claimable")
    assert AIJob.objects.get(job_id=job_id).locked_by == "external:gpu-box-1"


def test_a_heartbeat_without_a_token_speaks_for_the_run_this_worker_holds(client: Any, dispatched: Any) -> None:
    job_id = dispatched()
    _claim(client)
    assert _post(client, HEARTBEAT, {"job_id": job_id, "progress": {"percent": 10}}).status_code == 200
    assert AIJob.objects.get(job_id=job_id).progress["percent"] == 10


def test_a_heartbeat_from_a_worker_that_lost_its_lease_is_409_superseded(client: Any, dispatched: Any) -> None:
    job_id = dispatched()
    claimed = _claim(client)
    pool_token = _lose_the_lease(job_id)

    response = _post(client, HEARTBEAT, {"job_id": job_id, "lease_token": claimed["lease_token"]})

    assert response.status_code == 409
    assert response.json()["rejection_code"] == "SUPERSEDED"
    assert AIJob.objects.get(job_id=job_id).lease_token == pool_token  # the pool's run is untouched


def test_a_heartbeat_for_an_unknown_job_is_a_404_with_a_code(client: Any, dispatched: Any) -> None:
    response = _post(client, HEARTBEAT, {"job_id": "no-such-job", "lease_token": "x"})
    assert response.status_code == 404
    assert response.json()["rejection_code"] == "JOB_NOT_FOUND"


# --- next ---------------------------------------------------------------------------------


def test_next_does_not_hand_out_a_job_waiting_out_its_retry_backoff(client: Any, dispatched: Any) -> None:
    job_id = dispatched()
    AIJob.objects.filter(job_id=job_id).update(
        status=JobStatus.RETRYING, attempt_count=1, next_run_at=timezone.now() + timedelta(seconds=60)
    )

    assert client.get(NEXT, **HEADERS).json() == {"job": None}

    AIJob.objects.filter(job_id=job_id).update(next_run_at=timezone.now() - timedelta(seconds=1))
    assert client.get(NEXT, **HEADERS).json()["job"]["id"] == job_id


def test_next_skips_a_job_out_of_attempts_and_hands_out_the_next(client: Any, dispatched: Any) -> None:
    exhausted = dispatched()
    AIJob.objects.filter(job_id=exhausted).update(
        status=JobStatus.RETRYING, attempt_count=5, max_attempts=5, next_run_at=timezone.now() - timedelta(hours=1)
    )
    due = dispatched()
    assert client.get(NEXT, **HEADERS).json()["job"]["id"] == due


def test_next_refuses_an_unknown_tier_with_a_code(client: Any, dispatched: Any) -> None:
    response = client.get(NEXT, {"tier": "gold"}, **HEADERS)
    assert response.status_code == 400
    assert response.json()["rejection_code"] == "INVALID_PAYLOAD"


@pytest.mark.django_db(transaction=True)
def test_next_holds_the_row_lock_through_the_claim(client: Any, dispatched: Any) -> None:
    """Another poller must not be able to take the row between the pick and the claim:
    while the claim runs, the row is locked by the transaction that picked it."""
    from academy.jobs import claims

    job_id = dispatched()
    params = connection.get_connection_params()
    seen: dict[str, Any] = {}
    real_claim = claims.job_claim

    def claim_while_probing(*, job_id: str, worker: str) -> Any:
        params_ = {k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}
        with psycopg.connect(**params_, autocommit=True) as other:
            try:
                other.execute(f"SELECT 1 FROM {AIJob._meta.db_table} WHERE job_id = %s FOR UPDATE NOWAIT", [job_id])
                seen["locked"] = False
            except psycopg.errors.LockNotAvailable:
                seen["locked"] = True
        return real_claim(job_id=job_id, worker=worker)

    with mock.patch.object(claims, "job_claim", claim_while_probing):
        claimed = client.get(NEXT, **HEADERS).json()["job"]

    assert claimed["id"] == job_id
    assert seen == {"locked": True}


# --- result -------------------------------------------------------------------------------


def test_a_late_result_from_a_worker_that_lost_its_lease_is_409_superseded(client: Any, dispatched: Any) -> None:
    from academy.jobs.finish import Finish, job_finish

    job_id = dispatched()
    claimed = _claim(client)
    pool_token = _lose_the_lease(job_id)
    assert job_finish(job_id=job_id, token=pool_token, finish=Finish(status=JobStatus.DONE, result={"pong": True}))

    late = {"job_id": job_id, "lease_token": claimed["lease_token"], "status": "DONE", "result": {"pong": "late"}}
    response = _post(client, RESULT, late)

    assert response.status_code == 409, response.content
    assert (response.json()["rejection_code"], response.json()["ok"]) == ("SUPERSEDED", False)
    assert AIJob.objects.get(job_id=job_id).result.payload == {"pong": True}


def test_a_result_while_another_run_holds_the_lease_is_409_superseded(client: Any, dispatched: Any) -> None:
    job_id = dispatched()
    claimed = _claim(client)
    _lose_the_lease(job_id)

    late = {"job_id": job_id, "lease_token": claimed["lease_token"], "status": "DONE", "result": {"pong": True}}
    response = _post(client, RESULT, late)

    assert response.status_code == 409
    assert response.json()["rejection_code"] == "SUPERSEDED"
    assert AIJob.objects.get(job_id=job_id).status == JobStatus.RUNNING


def test_a_repeat_of_the_stored_result_stays_200_and_a_different_one_is_superseded(
    client: Any, dispatched: Any
) -> None:
    job_id = dispatched()
    claimed = _claim(client)
    report = {"job_id": job_id, "lease_token": claimed["lease_token"], "result": {"pong": True, "confidence": 0.9}}

    assert _post(client, RESULT, report).json() == {"ok": True, "detail": "DONE"}
    assert _post(client, RESULT, report).json() == {"ok": True, "detail": "duplicate_ignored"}
    other = _post(client, RESULT, {**report, "result": {"pong": False}})
    assert other.status_code == 409
    assert other.json()["rejection_code"] == "SUPERSEDED"
    # From another worker, even the same result is not this worker's to repeat.
    assert _post(client, RESULT, report, HTTP_X_WORKER_ID="gpu-box-2").status_code == 409


# Numbers JSON can write that no column or float holds: NUMBER_OUT_OF_RANGE. NaN and
# Infinity are not JSON at all (the strict parser refuses them): INVALID_PAYLOAD.
OUT_OF_RANGE = [
    pytest.param(b'{"confidence": 1e400}', "NUMBER_OUT_OF_RANGE", id="confidence-1e400"),
    pytest.param(b'{"confidence": ' + b"9" * 400 + b"}", "NUMBER_OUT_OF_RANGE", id="confidence-400-digits"),
    pytest.param(b'{"confidence": -0.5}', "NUMBER_OUT_OF_RANGE", id="confidence-negative"),
    pytest.param(b'{"confidence": 1.5}', "NUMBER_OUT_OF_RANGE", id="confidence-above-1"),
    pytest.param(b'{"score": 1e400}', "NUMBER_OUT_OF_RANGE", id="other-number-1e400"),
    pytest.param(b'{"rows": [{"n": ' + b"1" * 400 + b"}]}", "NUMBER_OUT_OF_RANGE", id="nested-400-digits"),
    pytest.param(b'{"confidence": NaN}', "INVALID_PAYLOAD", id="confidence-NaN"),
    pytest.param(b'{"confidence": Infinity}', "INVALID_PAYLOAD", id="confidence-Infinity"),
    pytest.param(b'{"score": -Infinity}', "INVALID_PAYLOAD", id="other-number-minus-Infinity"),
]


@pytest.mark.parametrize(("result", "code"), OUT_OF_RANGE)
def test_an_out_of_range_number_in_a_result_is_400_with_a_code(
    client: Any, dispatched: Any, result: bytes, code: str
) -> None:
    job_id = dispatched()
    claimed = _claim(client)
    body = b'{"job_id": "%s", "lease_token": "%s", "status": "DONE", "result": %s}' % (
        job_id.encode(),
        claimed["lease_token"].encode(),
        result,
    )

    response = _post(client, RESULT, body)

    assert response.status_code == 400, response.content
    assert response.json()["rejection_code"] == code
    assert response.json()["error"]  # a Korean message
    # Nothing was written, and the run can still report a good result.
    assert AIJob.objects.get(job_id=job_id).status == JobStatus.RUNNING
    good = {"job_id": job_id, "lease_token": claimed["lease_token"], "result": {"pong": True, "confidence": 0.9}}
    assert _post(client, RESULT, good).json() == {"ok": True, "detail": "DONE"}


@pytest.mark.parametrize(
    ("progress", "code"),
    [
        (b'{"percent": 1e400}', "NUMBER_OUT_OF_RANGE"),
        (b'{"percent": -1}', "NUMBER_OUT_OF_RANGE"),
        (b'{"percent": ' + b"7" * 400 + b"}", "NUMBER_OUT_OF_RANGE"),
        (b'{"percent": NaN}', "INVALID_PAYLOAD"),
    ],
    ids=["1e400", "negative", "400-digits", "NaN"],
)
def test_an_out_of_range_progress_is_400_with_a_code(client: Any, dispatched: Any, progress: bytes, code: str) -> None:
    job_id = dispatched()
    claimed = _claim(client)
    body = b'{"job_id": "%s", "lease_token": "%s", "progress": %s}' % (
        job_id.encode(),
        claimed["lease_token"].encode(),
        progress,
    )
    response = _post(client, HEARTBEAT, body)
    assert response.status_code == 400, response.content
    assert response.json()["rejection_code"] == code
    assert AIJob.objects.get(job_id=job_id).progress == {"stage": "started", "percent": 0}


@pytest.mark.parametrize(
    "result",
    [b'{"text": "a\\u0000b"}', b'{"a\\u0000": 1}', b'{"text": "\\ud800"}'],
    ids=["nul-in-value", "nul-in-key", "lone-surrogate"],
)
def test_a_string_the_database_cannot_store_is_400_not_500(client: Any, dispatched: Any, result: bytes) -> None:
    job_id = dispatched()
    claimed = _claim(client)
    body = b'{"job_id": "%s", "lease_token": "%s", "result": %s}' % (
        job_id.encode(),
        claimed["lease_token"].encode(),
        result,
    )
    response = _post(client, RESULT, body)
    assert response.status_code == 400, response.content
    assert response.json()["rejection_code"] == "INVALID_PAYLOAD"


def test_the_schema_describes_the_internal_worker_api(client: Any, db: Any) -> None:
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert {"get"} <= set(paths["/api/v1/internal/ai/job/next/"])
    for path, fields in [
        ("/api/v1/internal/ai/job/heartbeat/", {"job_id", "lease_token", "progress"}),
        ("/api/v1/internal/ai/job/result/", {"job_id", "lease_token", "status", "result", "error"}),
    ]:
        ref = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert fields <= set(component["properties"]), (path, component)
        assert "409" in paths[path]["post"]["responses"]
