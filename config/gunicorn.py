"""gunicorn's settings (``gunicorn -c config/gunicorn.py config.wsgi``): its own log lines.

gunicorn's master never loads Django, so left alone its lines (start-up, worker exits,
timeouts) and its access lines have a format and a time zone of their own: the master's
in the host's zone, the access lines in the worker's, which Django has set to
``TIME_ZONE``. Here both go through the app's formatters (``LOGGING`` in config.settings,
``LOG_FORMAT``): one format, and every time in UTC with its zone, as in every other
process.
"""

from __future__ import annotations

from typing import Any

from config.settings import LOG_FORMAT, LOGGING

_HANDLER: dict[str, Any] = {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "stream": "ext://sys.stderr"}

logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": LOGGING["formatters"],
    "handlers": {
        "console": _HANDLER,
        "access": {**_HANDLER, "stream": "ext://sys.stdout"},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
# gunicorn's default with its local-time stamp (%(t)s) left out (the formatter stamps
# every line) and the request's duration added.
access_log_format = '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
