"""Test settings: the real Postgres and Redis on 127.0.0.1, short leases and timeouts.

The same module configures the worker processes the integration tests start, so the
test process and the workers agree on every setting.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("AI_PLUGIN_MODULES", "tests.probes")
os.environ.setdefault("AI_LEASE_SECONDS", "4")
os.environ.setdefault("AI_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("AI_RETRY_BACKOFF_BASE", "0.2")
os.environ.setdefault("AI_RETRY_BACKOFF_MAX", "1")
os.environ.setdefault("AI_FLAG_TTL_SECONDS", "1")
os.environ.setdefault("AI_REPUBLISH_AFTER_SECONDS", "2")
os.environ.setdefault("AI_PROGRESS_MIN_INTERVAL", "0.2")
os.environ.setdefault("ACADEMY_VAR_DIR", "/tmp/academy-ai-test-var")

from config.settings import *  # noqa: F403
from config.settings import DATABASES, VAR_DIR

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The demo's database (bin/test's second pass). The test database is a file, as the
    # demo's is, rather than Django's shared in-memory one, whose table locks fail at once:
    # a second connection (the heartbeat thread's) then waits for the lock, as the
    # demo's processes do.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-academy.sqlite3")}
