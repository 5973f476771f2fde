"""The Celery app as the chaos workers run it: ``celery -A tests.chaos.worker_app worker``.

Production keeps Redis's visibility timeout above the longest hard time limit, so the
broker never hands out a second copy of a running message. Here it is a few seconds
(``CHAOS_VISIBILITY_TIMEOUT``) and restored every second, so the slow-job scenario can
show that the database lease, not the broker, keeps a job from running twice at once.
"""

from __future__ import annotations

import os

from config.celery import app

app.conf.broker_transport_options = {
    "visibility_timeout": int(os.environ.get("CHAOS_VISIBILITY_TIMEOUT", "3")),
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

__all__ = ("app",)
