"""The recovery sweep as a beat task: ``academy.jobs.sweep`` does the work."""

from __future__ import annotations

from typing import Any

from django.db import close_old_connections

from academy.jobs.sweep import sweep_once
from ai_tasks import routing
from config.celery import app

_soft, _hard = routing.time_limits("domain")


@app.task(name=routing.SWEEP_TASK, soft_time_limit=_soft, time_limit=_hard, ignore_result=True)
def sweep() -> dict[str, Any]:
    close_old_connections()
    return sweep_once()
