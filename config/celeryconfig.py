"""Celery settings, derived from Django's settings (which read the environment).

They guard against the Celery failures docs/architecture.md lists: late acks with
requeue when a child dies, prefetch 1, and a Redis visibility timeout above the longest
hard time limit plus the longest retry countdown, so the broker never hands out a second
copy of a message whose first copy may still be running legitimately.
"""

from __future__ import annotations

import os

from django.conf import settings

from academy.jobs import sending
from ai_tasks import routing
from config.env import env_int

broker_url = settings.CELERY_BROKER_URL
result_backend = settings.CELERY_RESULT_BACKEND
result_extended = settings.CELERY_RESULT_EXTENDED
result_expires = settings.CELERY_RESULT_EXPIRES
task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER
task_eager_propagates = True

# JSON only: a pickle message is refused by every worker.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

task_queues = routing.QUEUES
task_routes = routing.ROUTES
task_default_queue = sending.DOMAIN_QUEUE
task_default_exchange = routing.EXCHANGE_NAME
task_default_routing_key = sending.DOMAIN_QUEUE
task_create_missing_queues = False

# At-least-once: ack after the task ran; requeue when the child is killed mid-task.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# No STARTED rows: RUNNING is on the job row, and Flower sees task-started events. Each
# stored state is a get_or_create on the result table, about a fifth of a short job's CPU.
task_track_started = False


def _transport_options() -> dict[str, object]:
    if broker_url.startswith(("redis://", "rediss://", "sentinel://")):
        # Redis redelivers an unacked message after visibility_timeout: keep it above the
        # longest hard limit plus the longest retry countdown.
        options: dict[str, object] = {
            "visibility_timeout": routing.longest_hard_limit() + int(settings.AI_RETRY_BACKOFF_MAX) + 600
        }
        if broker_url.startswith("sentinel://"):
            # sentinel://host1:26379;sentinel://host2:26379 and the monitored master's name.
            options["master_name"] = os.environ.get("CELERY_BROKER_MASTER_NAME", "mymaster")
        return options
    if broker_url.startswith("filesystem://"):
        folders = {name: settings.EMBEDDED_BROKER_DIR / name for name in ("queue", "control", "processed")}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "control_folder": str(folders["control"]),
            "processed_folder": str(folders["processed"]),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    return {}


broker_transport_options = _transport_options()
broker_connection_retry_on_startup = True
# A worker that lost the broker must not go on with tasks the broker will hand out again.
worker_cancel_long_running_tasks_on_connection_loss = True

# Events for Flower, including tasks still waiting in a queue.
worker_send_task_events = True
task_send_sent_event = True

# Celery's Django fix-up closes the database connection before and after every task
# unless this is set: a new PostgreSQL backend (a fork, and catalog caches loaded from
# cold) for each of a sheet's two tasks, which cost more CPU than the lifecycle itself.
# Connections are kept instead, and config.celery applies Django's own rule before
# each task (CONN_MAX_AGE and the health check), as a web request does.
CELERY_DB_REUSE_MAX = 1_000_000

worker_max_tasks_per_child = env_int("WORKER_MAX_TASKS_PER_CHILD", 500)
worker_max_memory_per_child = env_int("WORKER_MAX_MEMORY_KB", 1_500_000)

imports = (
    "ai_tasks.lite",
    "ai_tasks.basic",
    "ai_tasks.premium",
    "ai_tasks.domain",
    "ai_tasks.sweeper",
    "ai_tasks.gpu_wakeup",
)

beat_schedule = {
    "ai-sweep": {"task": routing.SWEEP_TASK, "schedule": settings.AI_SWEEP_INTERVAL_SECONDS},
    # A string, not an import: ai_tasks.gpu_wakeup imports the app, which imports this.
    "ai-gpu-wakeup": {"task": "ai_tasks.gpu_wakeup.check", "schedule": settings.AI_GPU_WAKEUP_INTERVAL_SECONDS},
}
