"""Every process stamps its log lines in UTC, with the zone written out."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
# 2026-12-06 09:40:09.651 UTC, 18:40:09 in Seoul.
CREATED = datetime(2026, 12, 6, 9, 40, 9, 651000, tzinfo=UTC).timestamp()


@pytest.fixture
def seoul_local_time() -> Iterator[None]:
    """The process's local zone as Django leaves it in every process that loads settings."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Seoul"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _formatter(name: str) -> logging.Formatter:
    """The formatter ``name`` exactly as the LOGGING setting builds it."""
    formatters = cast("dict[str, dict[str, Any]]", settings.LOGGING["formatters"])
    configurator = logging.config.DictConfigurator({"version": 1})
    formatter: logging.Formatter = configurator.configure_formatter(dict(formatters[name]))
    return formatter


def _record() -> logging.LogRecord:
    record = logging.LogRecord("academy.test", logging.WARNING, __file__, 1, "hello", None, None)
    record.created = CREATED
    record.msecs = 651.0
    return record


@pytest.mark.usefixtures("seoul_local_time")
def test_a_json_line_is_stamped_in_utc_whatever_the_local_zone() -> None:
    line = json.loads(_formatter("json").format(_record()))
    assert line["time"] == "2026-12-06T09:40:09.651Z"


@pytest.mark.usefixtures("seoul_local_time")
def test_a_console_line_is_stamped_in_utc_whatever_the_local_zone() -> None:
    assert _formatter("console").format(_record()).startswith("2026-12-06T09:40:09.651Z WARNING academy.test hello")


def _json_lines(code: str, **env: str) -> list[dict[str, Any]]:
    child_env = {**os.environ, "LOG_FORMAT": "json", **env}
    child_env.pop("TZ", None)  # the host's zone, as a process starts
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (done.stdout + done.stderr).splitlines() if line.startswith("{")]
    assert lines, done.stderr
    return lines


def test_the_app_and_gunicorn_processes_log_the_same_instant_the_same_way() -> None:
    # A process that loads Django (web worker, Celery worker, beat: Django has set TZ to
    # TIME_ZONE there) and gunicorn's master (it never loads Django; its zone is the
    # host's, here made different from both on purpose).
    app = _json_lines(
        "import django, logging; django.setup(); logging.getLogger('academy.probe').warning('app')",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    master = _json_lines(
        "import logging, logging.config, runpy;"
        "cfg = runpy.run_path('config/gunicorn.py')['logconfig_dict'];"
        "logging.config.dictConfig(cfg);"
        "logging.getLogger('gunicorn.error').info('master');"
        "logging.getLogger('gunicorn.access').info('access')",
        TZ="America/Los_Angeles",
    )
    now = datetime.now(UTC)
    stamps = {line["message"]: line["time"] for line in app + master}
    assert set(stamps) >= {"app", "master", "access"}
    for message in ("app", "master", "access"):
        stamp = stamps[message]
        assert stamp.endswith("Z"), (message, stamp)
        assert abs((datetime.fromisoformat(stamp) - now).total_seconds()) < 120, (message, stamp, now)
