"""Which job a log line belongs to, without passing the job to every logger call.

:func:`job_log_context` puts the job's identity in a :class:`~contextvars.ContextVar`
for the length of a run; :class:`JobContextFilter`, installed on the handlers by the
``LOGGING`` setting, copies it onto every record emitted meanwhile, whichever logger
emitted it (the lifecycle, a processor, Django, kombu). The JSON formatter writes the
fields as keys; :class:`ConsoleFormatter` appends them to the line.

Every line's time is UTC in ISO 8601 with its zone (``2026-12-06T09:40:09.651Z``), in
every process. ``logging`` stamps lines in the process's local zone, and that zone is
not the same everywhere: Django sets ``TZ`` to ``TIME_ZONE`` (Asia/Seoul) in each process
that loads its settings, while gunicorn's master never does: gunicorn's own lines came
out in the host's zone and the app's lines (web and workers) at +09:00, and the JSON
lines did not say which. gunicorn's own lines use these formatters too (config/gunicorn.py).

A ContextVar is per thread (and per asyncio task): a thread started during a run does
not see it unless it is started inside ``contextvars.copy_context().run``.

This module is imported by the logging configuration, before Django's apps are ready:
it must not import models at module level.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

if TYPE_CHECKING:
    from academy.models import AIJob

#: The record attributes a run's log lines carry.
FIELDS: Final = ("job_id", "tenant", "tier", "job_type", "attempt")

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_job_context: ContextVar[Mapping[str, Any]] = ContextVar("academy_job_log_context", default=_EMPTY)


def job_log_fields(job: AIJob) -> dict[str, Any]:
    """The context fields of a job row, as they appear in the logs."""
    tenant = job.tenant.slug if job.tenant_id is not None and job.tenant is not None else None
    return {
        "job_id": job.job_id,
        "tenant": tenant,
        "tier": job.tier,
        "job_type": job.job_type,
        "attempt": job.attempt_count,
    }


@contextmanager
def job_log_context(job: AIJob) -> Iterator[Mapping[str, Any]]:
    """Tag every log record emitted inside the block with the job's identity."""
    token = _job_context.set(MappingProxyType({**_job_context.get(), **job_log_fields(job)}))
    try:
        yield _job_context.get()
    finally:
        _job_context.reset(token)


def current_job_context() -> Mapping[str, Any]:
    """The fields in effect here (empty outside a run)."""
    return _job_context.get()


class JobContextFilter(logging.Filter):
    """Copies the current job context onto a record; never drops a record.

    A field the caller passed explicitly (``extra={"job_id": ...}``) is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _job_context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def utc_timestamp(created: float) -> str:
    """``record.created`` as ISO 8601 in UTC, to the millisecond: ``2026-12-06T09:40:09.651Z``."""
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _UtcTime(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The process's local zone is not the same in every process (module docstring).
        return utc_timestamp(record.created)


class JsonFormatter(_UtcTime, _JsonFormatter):
    """python-json-logger's formatter, its ``asctime`` in UTC with the zone."""


class ConsoleFormatter(_UtcTime):
    """The plain format, with ``[job_id=... tenant=... ...]`` appended inside a run."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        present = [f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None) is not None]
        if not present:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the tagged line
        return f"{first} [{' '.join(present)}]{newline}{rest}"


def celery_setup_logging(**_: Any) -> None:
    """A ``celery.signals.setup_logging`` receiver: workers log through Django's LOGGING.

    Connecting any receiver stops Celery from replacing the root logger's handlers, which
    would drop the job-context filter and the JSON format.
    """
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
