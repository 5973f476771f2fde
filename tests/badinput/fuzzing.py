"""What the schemathesis fuzz tests share: the OpenAPI schema read from the WSGI app, and
hypothesis's settings for them."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, settings

#: the internal worker token the fuzz tests configure; without one the internal API
#: answers 503 by design (see tests/security), which would read as a server error
WORKER_TOKEN = "fuzz-worker-token"


def wsgi_schema(*, path_regex: str | None = None) -> Any:
    """The app's OpenAPI schema (drf-spectacular), optionally only the paths matching ``path_regex``."""
    from config.wsgi import application

    # Loaded at collection (pytest-django has set Django up by then) rather than through
    # schemathesis.pytest.from_fixture, whose lazy loader touches ``Function._nodeid``,
    # which pytest 9 no longer has.
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    return schema if path_regex is None else schema.include(path_regex=path_regex)


def fuzz_settings(*, max_examples: int) -> settings:
    """``max_examples`` generated requests per operation, with no deadline (the first
    request warms the app up), no example database kept between runs, and no health
    check (fixtures that touch the database are slow by hypothesis's measure)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
