"""Flat settings, read from the environment.

With no environment set (a fresh laptop) everything falls back to embedded defaults:
SQLite, files under ``var/media`` and kombu's file-system broker under ``var/broker``
(``config/fsbroker.py``), none of which needs anything outside pip. Production sets
``DATABASE_URL``, ``CELERY_BROKER_URL``, ``SECRET_KEY`` and friends; nothing secret has a
production default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext

from config.env import env_bool, env_float, env_int

# Lets typed generics such as ModelAdmin[AIJob] run, not only type-check.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ACADEMY_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded database, broker and media live here

DEBUG = env_bool("DEBUG", "SECRET_KEY" not in os.environ)
# Only the embedded-defaults mode (DEBUG, no SECRET_KEY) gets an insecure key.
SECRET_KEY = os.environ.get("SECRET_KEY") or ("insecure-dev-key-only-for-debug" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_results",
    "academy",
    # The Celery adapter: loads its task modules when the apps are ready (ai_tasks.apps).
    "ai_tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and scripts) from the web process itself: from the
    # apps' folders while DEBUG is on (the demo), from STATIC_ROOT after `collectstatic`
    # otherwise. gunicorn serves no static files on its own.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'academy.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# The worker's per-job statements (claim, finish) are prepared on the server, once per
# connection (academy.sqlrows.prepared_cursor). Set 0 behind a pooler in transaction
# mode that cannot keep prepared statements (PgBouncer before 1.21).
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several worker processes share the file: wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []
LANGUAGE_CODE = "ko-kr"
TIME_ZONE = "Asia/Seoul"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"

# Uploads: the web layer refuses bodies over this size before any job exists.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 500 * 1024 * 1024)
# A job's JSON payload (without its file) is capped too: payloads are copied into
# every broker message and every result row.
MAX_PAYLOAD_BYTES = env_int("MAX_PAYLOAD_BYTES", 256 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's token check, with the caller's academy and its config loaded in the same query.
        "academy.api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "academy.api.errors.SafeJSONParser",
        # A body that arrived cut is refused (UPLOAD_INTERRUPTED), never parsed as far as it went.
        "academy.api.uploads.WholeFormParser",
        "academy.api.uploads.WholeMultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "academy.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "academy-ai",
    "DESCRIPTION": "Dispatch AI jobs and read their status and results.",
    "VERSION": "1",
}

# --- academy-ai platform -------------------------------------------------------------

# Out-of-cluster workers authenticate with this; the internal API answers 503 without it.
INTERNAL_WORKER_TOKEN = os.environ.get("INTERNAL_WORKER_TOKEN", "")

# A claimed job holds a lease that its heartbeat renews. A copy of the message that
# arrives while the lease is live exits without running; the sweeper re-publishes jobs
# whose lease ran out (their worker died).
AI_LEASE_SECONDS = env_int("AI_LEASE_SECONDS", 90)
AI_HEARTBEAT_SECONDS = env_float("AI_HEARTBEAT_SECONDS", AI_LEASE_SECONDS / 3)
AI_MAX_ATTEMPTS = env_int("AI_MAX_ATTEMPTS", 5)
# Exponential backoff with full jitter, in seconds: base * 2**(attempt-1), capped.
AI_RETRY_BACKOFF_BASE = env_float("AI_RETRY_BACKOFF_BASE", 2.0)
AI_RETRY_BACKOFF_MAX = env_float("AI_RETRY_BACKOFF_MAX", 300.0)
# A PENDING job older than this with no worker on it is re-published by the sweeper.
AI_REPUBLISH_AFTER_SECONDS = env_int("AI_REPUBLISH_AFTER_SECONDS", 120)
AI_SWEEP_INTERVAL_SECONDS = env_float("AI_SWEEP_INTERVAL_SECONDS", 30.0)
# A domain callback that keeps failing stops: at once for an error another try cannot
# change (bad data), after this many failures for any other. The sweeper re-sends a
# callback that never ran with a doubling wait from AI_REPUBLISH_AFTER_SECONDS, at most
# AI_CALLBACK_MAX_SENDS times; then the job records it as given up.
AI_CALLBACK_MAX_ATTEMPTS = max(1, env_int("AI_CALLBACK_MAX_ATTEMPTS", 8))
AI_CALLBACK_MAX_SENDS = max(1, env_int("AI_CALLBACK_MAX_SENDS", 8))
# Runtime flags are cached per process for at most this long, so a flip in the admin
# reaches every worker within this many seconds.
AI_FLAG_TTL_SECONDS = env_float("AI_FLAG_TTL_SECONDS", 3.0)
# An OMR batch still unsealed this long after its upload began lost its request: the
# sweeper marks it interrupted, never graded (far above any web request's timeout).
AI_BATCH_SEAL_AFTER_SECONDS = env_float("AI_BATCH_SEAL_AFTER_SECONDS", 600.0)
# An OMR batch's sheets go to the pool up to this many jobs per message (each sheet keeps
# its own job): the claim, the finishes' write, the broker's and the domain callback's
# per-message cost are shared. A batch's first message carries 2 and each next one twice
# the last (omr_batches.FIRST_MESSAGE_SHEETS), so reading starts early and a small batch
# still spreads over the pool. 16 against 8 took the 500-sheet pipeline bench from
# +17.9 % to +8.9 % over reading in-process; doubling to 32 against 16 cut the time
# between a 500-sheet batch's messages from 0.89-1.94 s (33 messages) to 0.51-0.57 s (19)
# (docs/benchmarks.md, OMR batch pipeline). 1 sends one message per sheet.
AI_OMR_SHEETS_PER_MESSAGE = max(1, env_int("AI_OMR_SHEETS_PER_MESSAGE", 32))
# Signed download links in job results (exports, overlays) stop working after this.
AI_DOWNLOAD_URL_TTL_SECONDS = env_int("AI_DOWNLOAD_URL_TTL_SECONDS", 3600)
# Forced reruns (force_rerun through the API) each make a new job past idempotency: at
# most this many per tenant in any hour, then 429 RERUN_THROTTLED. 0 lifts the limit.
AI_FORCE_RERUN_PER_HOUR = env_int("AI_FORCE_RERUN_PER_HOUR", 20)
# GPU pool wake-up (ai_tasks/gpu_wakeup.py, docs/gpu-wakeup.md). How to start the premium
# pool's machine: "command:<program and arguments>" (run detached, without a shell) or
# "ec2:<instance-id>" (boto3, the `ec2` extra); empty: the check does nothing. A start
# needs premium work waiting this long with no premium worker answering, and happens at
# most once per cool-down across every process (a conditional UPDATE on a flag row).
AI_GPU_STARTER = os.environ.get("AI_GPU_STARTER", "").strip()
AI_GPU_WAKEUP_AFTER_SECONDS = env_float("AI_GPU_WAKEUP_AFTER_SECONDS", 60.0)
AI_GPU_WAKEUP_COOLDOWN_SECONDS = env_float("AI_GPU_WAKEUP_COOLDOWN_SECONDS", 600.0)
AI_GPU_WAKEUP_INTERVAL_SECONDS = env_float("AI_GPU_WAKEUP_INTERVAL_SECONDS", 30.0)
# Progress writes are throttled to one per this interval per job.
AI_PROGRESS_MIN_INTERVAL = env_float("AI_PROGRESS_MIN_INTERVAL", 1.0)

# Soft/hard time limits per tier, in seconds. The soft limit raises inside the task
# (recorded as error code "timeout"); the hard limit kills the child process.
AI_TIME_LIMITS = {
    "lite": (env_int("AI_LITE_SOFT_LIMIT", 60), env_int("AI_LITE_HARD_LIMIT", 90)),
    "basic": (env_int("AI_BASIC_SOFT_LIMIT", 300), env_int("AI_BASIC_HARD_LIMIT", 360)),
    "premium": (env_int("AI_PREMIUM_SOFT_LIMIT", 900), env_int("AI_PREMIUM_HARD_LIMIT", 1200)),
    "domain": (env_int("AI_DOMAIN_SOFT_LIMIT", 120), env_int("AI_DOMAIN_HARD_LIMIT", 180)),
}

# --- Celery ---------------------------------------------------------------------------
# With CELERY_BROKER_URL unset, the broker is kombu's filesystem transport under var/:
# it needs nothing outside pip, serves several local worker processes, and carries
# broadcasts too (worker events for Flower, `celery inspect`). Production sets
# CELERY_BROKER_URL to Redis.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
EMBEDDED_BROKER_DIR = VAR_DIR / "broker"
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 3 * 24 * 3600)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

FLOWER_URL = os.environ.get("FLOWER_URL", "http://127.0.0.1:5555/")
# Flower's "user:password" (bin/flower passes it on); bin/demo makes one up when unset.
FLOWER_BASIC_AUTH = os.environ.get("FLOWER_BASIC_AUTH", "")

# --- logs and metrics ---------------------------------------------------------------
# LOG_FORMAT: "json" (one JSON object a line, for log shippers) or "console" (readable).
# Default: console while DEBUG is on, json otherwise. Either way, a line logged while a
# job runs carries job_id, tenant, tier, job_type and attempt (ai_tasks/logcontext.py).
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "console" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in {"console", "json"}:
    raise RuntimeError(f"LOG_FORMAT must be 'console' or 'json', not {LOG_FORMAT!r}")
# Typed as Django declares the setting (a logging.config.dictConfig mapping).
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job_context": {"()": "ai_tasks.logcontext.JobContextFilter"}},
    "formatters": {
        "console": {
            "()": "ai_tasks.logcontext.ConsoleFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {
            "()": "ai_tasks.logcontext.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["job_context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# GET /metrics (Prometheus): staff sessions, or HTTP basic auth with these. With neither
# set, the endpoint answers 503 to everyone but staff.
METRICS_USERNAME = os.environ.get("METRICS_USERNAME", "")
METRICS_PASSWORD = os.environ.get("METRICS_PASSWORD", "")

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
