"""Log lines emitted during a job run carry the job's identity, in console and JSON format."""

from __future__ import annotations

import copy
import json
import logging
import logging.config
from typing import Any

import pytest
from django.conf import settings

from academy.models import AIJob
from ai_tasks.logcontext import ConsoleFormatter, JobContextFilter, current_job_context, job_log_context

EXPECTED = {"job_id": "j-1", "tenant": None, "tier": "premium", "job_type": "ocr", "attempt": 2}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(JobContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def capture() -> Any:
    handler = Capture()
    logger = logging.getLogger("test.logcontext")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, handler
    logger.removeHandler(handler)


def job(**fields: Any) -> AIJob:
    # Unsaved: the context reads attributes only, no query for a job without a tenant.
    return AIJob(job_id="j-1", tier="premium", job_type="ocr", attempt_count=2, **fields)


def formatter(name: str) -> logging.Formatter:
    """The formatter exactly as the LOGGING setting builds it."""
    spec = copy.deepcopy(settings.LOGGING["formatters"][name])
    built: logging.Formatter = logging.config.DictConfigurator({}).configure_formatter(spec)
    return built


def test_a_record_logged_inside_the_context_carries_the_job_fields(capture: Any) -> None:
    logger, handler = capture
    with job_log_context(job()):
        logger.info("processing")
    [record] = handler.records
    assert {name: getattr(record, name) for name in EXPECTED} == EXPECTED


@pytest.mark.django_db
def test_the_tenant_is_the_tenant_slug(capture: Any, make_tenant: Any) -> None:
    logger, handler = capture
    tenant, _ = make_tenant()
    with job_log_context(job(tenant=tenant)):
        logger.info("processing")
    assert handler.records[0].tenant == tenant.slug


def test_records_outside_the_context_carry_nothing_and_the_context_is_reset_after_an_error(capture: Any) -> None:
    logger, handler = capture
    with pytest.raises(RuntimeError), job_log_context(job()):
        raise RuntimeError("processor bug")
    logger.info("between jobs")
    assert not hasattr(handler.records[0], "job_id")
    assert dict(current_job_context()) == {}


def test_an_explicit_extra_wins_over_the_context(capture: Any) -> None:
    logger, handler = capture
    with job_log_context(job()):
        logger.info("other job", extra={"job_id": "j-2"})
    assert (handler.records[0].job_id, handler.records[0].tier) == ("j-2", "premium")


def test_the_json_formatter_writes_the_job_fields_as_keys(capture: Any) -> None:
    logger, handler = capture
    with job_log_context(job()):
        logger.warning("slow page %s", 3)
    line = formatter("json").format(handler.records[0])
    body = json.loads(line)
    assert {name: body[name] for name in EXPECTED} == EXPECTED
    assert (body["message"], body["level"], body["logger"]) == ("slow page 3", "WARNING", "test.logcontext")
    assert "\n" not in line


def test_the_console_formatter_appends_the_fields_and_leaves_other_lines_alone(capture: Any) -> None:
    logger, handler = capture
    with job_log_context(job()):
        logger.info("processing")
    logger.info("idle")
    console = formatter("console")
    assert isinstance(console, ConsoleFormatter)
    inside, outside = (console.format(r) for r in handler.records)
    assert inside.endswith("processing [job_id=j-1 tier=premium job_type=ocr attempt=2]")
    assert outside.endswith("idle")


def test_the_logging_setting_installs_the_filter_on_the_root_handlers() -> None:
    handler_spec = settings.LOGGING["handlers"]["console"]
    assert "job_context" in handler_spec["filters"]
    assert settings.LOGGING["filters"]["job_context"]["()"] == "ai_tasks.logcontext.JobContextFilter"
    assert settings.LOGGING["root"]["handlers"] == ["console"]
    installed = [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, JobContextFilter)]
    assert installed, "Django's logging setup did not install JobContextFilter"
