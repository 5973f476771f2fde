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
