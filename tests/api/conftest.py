"""Fixtures shared by the API tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def teacher(make_tenant: Any, api_for: Any) -> Any:
    """An API client signed in as a new academy's teacher."""
    _tenant, token = make_tenant()
    return api_for(token)
