"""``manage.py ai_sweep``: run one recovery sweep now (what beat runs on a schedule)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from academy.jobs.sweep import sweep_once


class Command(BaseCommand):
    help = "Re-publish lost jobs, recover expired leases, re-send missing callbacks; print the counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=500, help="at most this many jobs per kind")

    def handle(self, *args: Any, **options: Any) -> None:
        counts = sweep_once(limit=max(1, options["limit"]))
        self.stdout.write(" ".join(f"{name}={n}" for name, n in counts.items()))
