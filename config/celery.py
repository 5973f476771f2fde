"""The Celery app: three tier pools and a domain pool. Its settings are in celeryconfig.

Start a pool with ``celery -A config worker -Q basic -n basic@%h`` (see the Procfile).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("academy-ai")
# Loaded lazily on first use, after Django's settings can be read.
app.config_from_object("config.celeryconfig")
