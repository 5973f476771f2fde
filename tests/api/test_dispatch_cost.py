"""What one API dispatch costs the web tier, and that the cuts kept its rules.

``POST /api/v1/jobs/`` is three statements: the token with its user, academy and config
(one join), the INSERT (committed on its own, with no transaction around it), and one
``UPDATE ... RETURNING`` after the publish. These tests
pin that, and that what the cuts could have changed did not change: the status in the
response is read after the publish, a publish failure is still FAILED and reported,
config changes reach the next request, and who is let in is the same.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from academy import selectors
from academy.models import AIJob, JobStatus, Membership, Tenant, TenantConfig

PING = {"job_type": "ping", "payload": {"echo": "hi"}, "tier": "lite"}


def statement_kinds(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split(None, 1)[0].upper() for q in queries.captured_queries]


@pytest.mark.django_db(transaction=True)  # autocommit, as in production: the publish runs in the request
def test_api_dispatch_is_three_statements(make_tenant: Any, api_for: Any) -> None:
    _, token = make_tenant()
    api = api_for(token)
    with (
        mock.patch("academy.jobs.sending.job_send", return_value="task-x") as publish,
        CaptureQueriesContext(connection) as queries,
    ):
        response = api.post("/api/v1/jobs/", PING, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    # Autocommit: the INSERT is committed when it returns; the publish comes after it,
    # and the UPDATE records it.
    kinds = statement_kinds(queries)
    assert kinds == ["SELECT", "INSERT", "UPDATE"], [q["sql"] for q in queries.captured_queries]
    # The SELECT is the token joined with its user, membership, academy and config.
    select = queries.captured_queries[0]["sql"]
    for table in ("authtoken_token", "auth_user", "academy_membership", "academy_tenant", "academy_tenantconfig"):
        assert table in select
    assert "RETURNING" in queries.captured_queries[2]["sql"]
    publish.assert_called_once_with(job_id=body["job_id"], tier="lite", countdown=None)
    assert body["status"] == JobStatus.PENDING
    job = AIJob.objects.get(job_id=body["job_id"])
    assert (job.celery_task_id, job.publish_count, job.status) == ("task-x", 1, JobStatus.PENDING)


@pytest.mark.django_db(transaction=True)
def test_the_response_status_is_read_after_the_publish(make_tenant: Any, api_for: Any) -> None:
    """A worker that claims the job before the response is built: the response says so,
    as the re-read it replaced did (nothing is assumed about the row)."""
    _, token = make_tenant()

    def fast_worker(*, job_id: str, tier: str, countdown: float | None) -> str:
        AIJob.objects.filter(job_id=job_id).update(status=JobStatus.RUNNING, error_message="claimed")
        return "task-fast"

    with mock.patch("academy.jobs.sending.job_send", side_effect=fast_worker):
        body = api_for(token).post("/api/v1/jobs/", PING, format="json").json()
    assert body["status"] == JobStatus.RUNNING
    assert body["error"] == "claimed"
    job = AIJob.objects.get(job_id=body["job_id"])
    assert (job.celery_task_id, job.publish_count) == ("task-fast", 1)


@pytest.mark.django_db(transaction=True)
def test_a_publish_failure_is_still_failed_and_reported(make_tenant: Any, api_for: Any) -> None:
    _, token = make_tenant()
    with mock.patch("academy.jobs.sending.job_send", side_effect=ConnectionError("broker down")):
        response = api_for(token).post("/api/v1/jobs/", PING, format="json")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["status"] == JobStatus.FAILED
    assert "broker down" in body["error"]
    job = AIJob.objects.get(job_id=body["job_id"])
    assert (job.status, job.celery_task_id, job.publish_count) == (JobStatus.FAILED, "", 0)


@pytest.mark.django_db(transaction=True)
def test_idempotent_dispatch_still_answers_the_first_job(make_tenant: Any, api_for: Any) -> None:
    _, token = make_tenant()
    api = api_for(token)
    with mock.patch("academy.jobs.sending.job_send", return_value="task-1") as publish:
        first = api.post("/api/v1/jobs/", {**PING, "idempotency_key": "k-1"}, format="json")
        again = api.post("/api/v1/jobs/", {**PING, "idempotency_key": "k-1"}, format="json")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.json()["created"] is False
    assert publish.call_count == 1


@pytest.mark.django_db(transaction=True)
def test_a_config_change_reaches_the_next_request(make_tenant: Any, api_for: Any) -> None:
    """The config comes with this request's token query: nothing is cached across requests."""
    tenant, token = make_tenant(premium=True)
    api = api_for(token)
    premium = {**PING, "tier": "premium"}
    with mock.patch("academy.jobs.sending.job_send", return_value="task-x"):
        assert api.post("/api/v1/jobs/", premium, format="json").json()["tier"] == "premium"
        TenantConfig.objects.filter(tenant=tenant).update(has_premium_subscription=False)
        assert api.post("/api/v1/jobs/", premium, format="json").json()["tier"] == "basic"
        TenantConfig.objects.filter(tenant=tenant).update(has_premium_subscription=True)
        assert api.post("/api/v1/jobs/", premium, format="json").json()["tier"] == "premium"
        TenantConfig.objects.filter(tenant=tenant).delete()  # no row: the defaults (no premium)
        assert api.post("/api/v1/jobs/", premium, format="json").json()["tier"] == "basic"


def test_who_gets_in_is_unchanged(make_tenant: Any, api_for: Any, client: Any) -> None:
    tenant, token = make_tenant()
    assert api_for("0" * 40).post("/api/v1/jobs/", PING, format="json").status_code == 401
    assert client.post("/api/v1/jobs/", PING, content_type="application/json").status_code == 401
    Membership.objects.filter(tenant=tenant).delete()  # a user of no academy
    assert api_for(token).post("/api/v1/jobs/", PING, format="json").status_code == 403
    tenant2, token2 = make_tenant()
    get_user_model().objects.filter(membership__tenant=tenant2).update(is_active=False)
    response = api_for(token2).post("/api/v1/jobs/", PING, format="json")
    assert response.status_code == 401
    assert not AIJob.objects.exists()


def test_the_caller_sees_only_its_own_academy(make_tenant: Any, api_for: Any) -> None:
    tenant_a, token_a = make_tenant()
    tenant_b, _ = make_tenant()
    with mock.patch("academy.jobs.sending.job_send", return_value="task-x"):
        body = api_for(token_a).post("/api/v1/jobs/", PING, format="json").json()
    assert AIJob.objects.get(job_id=body["job_id"]).tenant_id == tenant_a.pk != tenant_b.pk


def test_tenant_policy_of_uses_a_loaded_config_without_a_query(
    make_tenant: Any, django_assert_num_queries: Any
) -> None:
    tenant, _ = make_tenant(premium=True, fallback=True, daily_fallback_cap=7)
    loaded = Tenant.objects.select_related("config").get(pk=tenant.pk)
    with django_assert_num_queries(0):
        policy = selectors.tenant_policy_of(loaded)
    assert policy == selectors.tenant_policy(tenant.pk)
    assert (policy.has_premium_subscription, policy.allow_gpu_fallback, policy.daily_fallback_cap) == (True, True, 7)
    plain = Tenant.objects.get(pk=tenant.pk)  # not loaded with its config: one query
    with django_assert_num_queries(1):
        assert selectors.tenant_policy_of(plain) == policy
    TenantConfig.objects.filter(tenant=tenant).delete()
    bare = Tenant.objects.select_related("config").get(pk=tenant.pk)
    with django_assert_num_queries(0):
        assert selectors.tenant_policy_of(bare) == selectors.TenantPolicy()
    assert selectors.tenant_policy_of(None) == selectors.TenantPolicy()


def fields_of(obj: Any) -> list[Any]:
    return [getattr(obj, f.attname) for f in obj._meta.concrete_fields]


def test_the_token_join_loads_what_select_related_loads(make_tenant: Any, django_assert_num_queries: Any) -> None:
    """academy.api.auth builds the five objects from one row: the same values and the same
    relations as the ORM's select_related, including the outer joins that find nothing."""
    from rest_framework.authtoken.models import Token

    from academy.api.auth import TOKEN_RELATED, token_with_academy

    _, key = make_tenant(premium=True, fallback=True, daily_fallback_cap=9)
    _, no_config_key = make_tenant()
    TenantConfig.objects.filter(tenant__slug="academy-2").delete()
    _, no_academy_key = make_tenant()
    Membership.objects.filter(tenant__slug="academy-3").delete()
    assert token_with_academy("0" * 40) is None
    for token_key in (key, no_config_key, no_academy_key):
        orm = Token.objects.select_related(*TOKEN_RELATED).get(key=token_key)
        with django_assert_num_queries(1):
            token = token_with_academy(token_key)
            assert token is not None
            user = token.user
            membership = getattr(user, "membership", None)
            academy = selectors.tenant_for_user(user)
            policy = selectors.tenant_policy_of(academy)
        assert fields_of(token) == fields_of(orm)
        assert fields_of(user) == fields_of(orm.user)
        assert not token._state.adding
        assert token._state.db == user._state.db == "default"
        orm_membership = getattr(orm.user, "membership", None)
        if orm_membership is None:
            assert membership is None
            assert academy is None
            continue
        assert membership is not None
        assert fields_of(membership) == fields_of(orm_membership)
        assert academy is not None
        assert fields_of(academy) == fields_of(orm_membership.tenant)
        assert policy == selectors.tenant_policy(academy.pk)
        with django_assert_num_queries(0):
            assert membership.user is user
            assert membership.tenant is academy
            orm_config = getattr(orm_membership.tenant, "config", None)
            config = getattr(academy, "config", None)
        assert (config is None) == (orm_config is None)
        if config is not None:
            assert fields_of(config) == fields_of(orm_config)
            assert config.tenant is academy
    assert selectors.tenant_policy_of(Tenant.objects.get(slug="academy-1")).daily_fallback_cap == 9
