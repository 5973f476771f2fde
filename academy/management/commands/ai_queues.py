"""``manage.py ai_queues``: messages waiting per queue and the oldest waiting job per tier."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from academy import metrics
from academy.jobs.sending import DOMAIN_QUEUE
from academy.states import TIERS


class Command(BaseCommand):
    help = "Queue depth (from the broker) and oldest PENDING/RETRYING job age (from the database) per tier."

    def handle(self, *args: Any, **options: Any) -> None:
        broker_error = ""
        try:
            depths: dict[str, int] = metrics.queue_depths()
        except Exception as exc:
            broker_error = f"{type(exc).__name__}: {exc}"
            depths = {}
        ages = metrics.oldest_pending_ages()
        self.stdout.write(f"{'queue':10}{'depth':>8}{'oldest waiting':>18}")
        for queue in (*TIERS, DOMAIN_QUEUE):
            depth = str(depths[queue]) if queue in depths else "?"
            age = f"{ages[queue]:.1f} s" if queue in ages else "-"
            self.stdout.write(f"{queue:10}{depth:>8}{age:>18}")
        if broker_error:
            raise CommandError(f"broker unreachable, depths unknown: {broker_error}")
