from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from academy import flags
from academy.models import Tenant, TenantConfig
from academy.services.tenants import tenant_create
from config.celery import app


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgres_only(reason): proves something only PostgreSQL has (a statement count of a "
        "PostgreSQL fast path, its statistics views); skipped on other databases, with the reason",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    for item in items:
        marker = item.get_closest_marker("postgres_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL only: {reason}"))


@pytest.fixture(autouse=True)
def _fresh_flag_cache() -> Iterator[None]:
    flags.flag_cache_clear()
    yield
    flags.flag_cache_clear()


@pytest.fixture
def make_tenant(db: Any) -> Any:
    """Factory: a tenant with a user and API token, configured as asked."""
    counter = {"n": 0}

    def make(*, premium: bool = False, fallback: bool = False, **config: Any) -> tuple[Tenant, str]:
        counter["n"] += 1
        tenant, token = tenant_create(
            slug=f"academy-{counter['n']}",
            username=f"teacher-{counter['n']}",
            premium=premium,
            allow_gpu_fallback=fallback,
        )
        if config:
            TenantConfig.objects.filter(tenant=tenant).update(**config)
        return tenant, token

    return make


@pytest.fixture
def api_for() -> Any:
    def client(token: str) -> APIClient:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return api

    return client


@pytest.fixture
def eager() -> Iterator[None]:
    """Unit tests only: a published task runs inline, in the test's process."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False
