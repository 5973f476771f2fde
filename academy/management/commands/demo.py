"""Push a demo batch through every tier and wait until each job is finished."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from academy.models import AIJob, AnswerKey, Exam, Grade, Submission
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


def _omr_exam(tenant: Any) -> tuple[Submission, dict[str, Any]]:
    """An exam whose key is 1..5 repeating; the student marks 1 on every 4th question."""
    key = {str(q): "12345"[(q - 1) % 5] for q in range(1, 41)}
    marked = {q: ("1" if int(q) % 4 == 0 else a) for q, a in key.items()}
    from workers.omr.render import filled_sheet_jpeg
    from workers.omr.template import default_template

    sheet = default_template()
    template = sheet.to_dict()
    jpeg = filled_sheet_jpeg(sheet, student_id="20260042", answers=marked)
    exam = Exam.objects.create(tenant=tenant, title="데모 모의고사", sheet_template=template)
    AnswerKey.objects.create(exam=exam, questions={q: {"correct": [a], "points": 1} for q, a in key.items()})
    path = upload_save(tenant=tenant, name="sheet-001.jpg", data=jpeg)
    submission = Submission.objects.create(tenant=tenant, exam=exam, source_file=path)
    return submission, {"image_path": path, "template": template, "mode": "scan"}


class Command(BaseCommand):
    help = "Dispatch a demo batch (an OMR sheet, rosters, probes) to every pool and wait for it."

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
        submission, omr_payload = _omr_exam(tenant)
        batch.insert(0, ("omr_grading", "basic", omr_payload))
        job_ids = []
        for job_type, tier, payload in batch:
            omr = job_type == "omr_grading"
            outcome = job_dispatch(
                job_type=job_type,
                payload=payload,
                tenant=tenant,
                tier=tier,
                source_domain="submission" if omr else "",
                source_id=str(submission.pk) if omr else "",
            )
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
        grade = None
        while grade is None and time.monotonic() < deadline + 10:  # the domain pool grades it
            grade = Grade.objects.filter(submission=submission).first()
            time.sleep(0.2)
        self.stdout.write("")
        if grade is not None:
            submission.refresh_from_db()
            score = f"{grade.score:g}/{grade.max_score:g}"
            self.stdout.write(f"OMR sheet of student {submission.student_id}: {score} ({submission.status})")
        self.stdout.write(f"Flower (workers and tasks): {settings.FLOWER_URL}")
        self.stdout.write("API: http://127.0.0.1:8000/api/v1/jobs/<job_id>/  with header")
        self.stdout.write(f"     Authorization: Token {token}")
        unfinished = [job.job_id for job in jobs if job.status != "DONE"] + ([] if grade else ["grade"])
        if unfinished:
            raise CommandError(f"not DONE within {options['wait']}s: {unfinished}")
        self.stdout.write(self.style.SUCCESS(f"all {len(jobs)} demo jobs are DONE"))
