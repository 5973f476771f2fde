"""The Celery app: three tier pools and a domain pool. Its settings are in celeryconfig.

Start a pool with ``celery -A config worker -Q basic -n basic@%h`` (see the Procfile).
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging, task_prerun, worker_process_init

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


@worker_process_init.connect
def _one_opencv_thread_per_child(**kwargs: object) -> None:
    # A pool runs one child per core, each reading its own sheet. OpenCV would also split
    # every call over all cores, so the children fight for them: on two busy cores a
    # sheet took 39.6 ms of CPU with OpenCV's threads and 34.4 ms with one, and with one
    # it used no CPU beyond its own. Read when cv2 is first imported, which is after fork
    # (the parent never imports it); an operator's own value is kept. The same rule as
    # every Django process (academy.apps), applied again for a parent without Django's apps.
    from academy.apps import opencv_one_thread

    opencv_one_thread()
