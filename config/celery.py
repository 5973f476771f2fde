"""The Celery app: three tier pools and a domain pool. Its settings are in celeryconfig.

Start a pool with ``celery -A config worker -Q basic -n basic@%h`` (see the Procfile).
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging, task_prerun

from config import fsbroker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# filesystem:// (the embedded broker) writes each message whole; see config.fsbroker.
fsbroker.register()

app = Celery("academy-ai")
# Loaded lazily on first use, after Django's settings can be read.
app.config_from_object("config.celeryconfig")


@setup_logging.connect
def _django_logging(**kwargs: object) -> None:
    # Workers log through Django's LOGGING (JSON lines, job context) instead of the
    # handlers Celery would install.
    from ai_tasks.logcontext import celery_setup_logging

    celery_setup_logging(**kwargs)


@task_prerun.connect
def _db_connections_check(task: object = None, **kwargs: object) -> None:
    # The fix-up no longer closes connections around tasks (CELERY_DB_REUSE_MAX in
    # celeryconfig): apply Django's rule instead, as at the start of a web request.
    # An eager task runs inside its caller's transaction, which must not be touched.
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
