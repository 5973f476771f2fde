"""Push a demo batch through every tier and wait until each job is finished."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from academy.models import AIJob
from academy.services.jobs import job_dispatch
from academy.services.tenants import tenant_create
from academy.storage import upload_save


def _roster_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["이름", "학년", "반", "연락처", "보호자 연락처"])
    writer.writerow(["김민준", "3", "A", "010-1234-5678", "010-8765-4321"])
    writer.writerow(["이서연", "2", "B", "01022223333", ""])
    writer.writerow(["박지호", "1", "A", "010-12", "010-5555-6666"])  # a bad phone: flagged
    return out.getvalue().encode("cp949")


class Command(BaseCommand):
    help = "Dispatch a demo batch to the lite, basic and premium pools and wait for it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the batch")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant, token = tenant_create(
            slug="demo-academy", username="demo-teacher", premium=True, allow_gpu_fallback=True
        )
        roster = upload_save(tenant=tenant, name="roster.csv", data=_roster_csv())
        batch = [
            ("ping", "lite", {"echo": "lite pool"}),
            ("ping", "basic", {"echo": "basic pool"}),
            ("ping", "premium", {"echo": "premium (GPU) pool"}),
            ("excel_parsing", "basic", {"file_path": roster}),
            ("excel_parsing", "premium", {"file_path": roster}),
        ]
        job_ids = []
        for job_type, tier, payload in batch:
            outcome = job_dispatch(job_type=job_type, payload=payload, tenant=tenant, tier=tier)
            if not outcome["ok"]:
                raise CommandError(f"dispatch failed: {outcome}")
            job_ids.append(outcome["job_id"])
            self.stdout.write(f"dispatched {job_type:<14} -> {tier:<8} {outcome['job_id']}")

        deadline = time.monotonic() + options["wait"]
        while True:
            jobs = list(AIJob.objects.filter(job_id__in=job_ids).order_by("created_at"))
            if all(job.is_terminal for job in jobs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)

        self.stdout.write("")
        self.stdout.write(f"{'job type':<14} {'tier':<8} {'status':<18} {'worker':<28} review")
        for job in jobs:
            worker = job.locked_by or "-"
            self.stdout.write(f"{job.job_type:<14} {job.tier:<8} {job.status:<18} {worker:<28} {job.needs_review}")
        self.stdout.write("")
        self.stdout.write(f"Flower (workers and tasks): {settings.FLOWER_URL}")
        self.stdout.write("API: http://127.0.0.1:8000/api/v1/jobs/<job_id>/  with header")
        self.stdout.write(f"     Authorization: Token {token}")
        unfinished = [job.job_id for job in jobs if job.status != "DONE"]
        if unfinished:
            raise CommandError(f"not DONE within {options['wait']}s: {unfinished}")
        self.stdout.write(self.style.SUCCESS(f"all {len(jobs)} demo jobs are DONE"))
