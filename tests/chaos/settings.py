"""Settings for the chaos suite's worker processes: the test settings, nothing slower.

The workers get ``DJANGO_SETTINGS_MODULE=tests.chaos.settings`` and a private broker in
``CELERY_BROKER_URL``; the chaos probes are loaded next to the shared ones. The Celery
side (a tiny Redis visibility timeout) is set in :mod:`tests.chaos.worker_app`.
"""

import os

os.environ.setdefault("AI_PLUGIN_MODULES", "tests.probes,tests.chaos.probes")
os.environ.setdefault("LOG_LEVEL", "INFO")

from tests.settings import *  # noqa: F403
