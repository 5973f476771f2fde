from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from workers.omr.template import DEFAULT_TEMPLATE, Template, load_template


@pytest.fixture(scope="session")
def template_dict() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_TEMPLATE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def template(template_dict: dict[str, Any]) -> Template:
    return load_template(template_dict)


@pytest.fixture
def fresh_dict(template_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy of the default template's JSON that a test may change."""
    return copy.deepcopy(template_dict)
