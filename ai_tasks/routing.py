"""Queues, routes and per-tier limits: the only place that maps a tier to a queue.

Each tier has its own queue and its own worker pool (``celery -A config worker -Q basic``),
so a slow premium job never strands lite work behind it (prefetch is 1 as well).
Domain callbacks and grading have a queue of their own: they are short DB work that
must not wait behind a 5-minute OMR batch.
"""

from __future__ import annotations

from typing import Final

from django.conf import settings
from kombu import Exchange, Queue

# The task names academy sends by are its side of the contract (academy.jobs.sending);
# each tier is a queue of the same name.
from academy.jobs.sending import CALLBACK_TASK, CALLBACKS_TASK, DOMAIN_QUEUE, RUN_MANY_TASK, RUN_TASK
from academy.states import TIERS

SWEEP_TASK: Final = "ai_tasks.sweeper.sweep"

EXCHANGE_NAME: Final = "academy-ai"
_exchange = Exchange(EXCHANGE_NAME, type="direct")

QUEUES: Final = tuple(Queue(name, _exchange, routing_key=name) for name in (*TIERS, DOMAIN_QUEUE))

ROUTES: Final = {
    **{task: {"queue": tier, "routing_key": tier} for tier, task in RUN_TASK.items()},
    **{task: {"queue": tier, "routing_key": tier} for tier, task in RUN_MANY_TASK.items()},
    CALLBACK_TASK: {"queue": DOMAIN_QUEUE, "routing_key": DOMAIN_QUEUE},
    CALLBACKS_TASK: {"queue": DOMAIN_QUEUE, "routing_key": DOMAIN_QUEUE},
    SWEEP_TASK: {"queue": DOMAIN_QUEUE, "routing_key": DOMAIN_QUEUE},
}


def time_limits(pool: str) -> tuple[int, int]:
    """(soft, hard) seconds for a tier or the domain pool."""
    soft, hard = settings.AI_TIME_LIMITS[pool]
    return int(soft), int(hard)


def longest_hard_limit() -> int:
    return max(hard for _, hard in settings.AI_TIME_LIMITS.values())
