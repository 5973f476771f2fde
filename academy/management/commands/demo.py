"""Push a demo batch through every tier and wait until each job is finished."""

from __future__ import annotations

import csv
import io
import os
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from academy import selectors
from academy.jobs.dispatch import job_dispatch
from academy.models import AIJob, OmrBatch
from academy.services.exams import exam_create
from academy.services.omr_batches import Upload, omr_batch_create
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


DEMO_KEY = {str(q): "12345"[(q - 1) % 5] for q in range(1, 41)}


def _class_scans() -> list[Upload]:
    """A class's uploads: four scans (one shaken past reading) and a two-page PDF.

    Student n gets the first n - 1 questions wrong and leaves question 40 blank.
    """
    import cv2
    import numpy as np
    import pypdfium2 as pdfium

    from workers.omr.pdf import image_to_pdf
    from workers.omr.render import filled_sheet_jpeg
    from workers.omr.template import default_template

    sheet = default_template()
    scans = []
    for n in range(1, 7):
        answers = {q: (a if int(q) >= n else ("1" if a != "1" else "2")) for q, a in DEMO_KEY.items() if q != "40"}
        scans.append(filled_sheet_jpeg(sheet, student_id=f"2026{n:04d}", answers=answers))
    gray = np.asarray(cv2.imdecode(np.frombuffer(scans[3], np.uint8), cv2.IMREAD_GRAYSCALE), dtype=np.uint8)
    shaky = cv2.GaussianBlur(gray, (0, 0), 9)
    pdf = pdfium.PdfDocument.new()
    for jpeg in scans[4:]:
        page = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE), dtype=np.uint8)
        pdf.import_pages(pdfium.PdfDocument(image_to_pdf(page, 200)))
    out = io.BytesIO()
    pdf.save(out)
    return [
        *(Upload(f"scan-{n}.jpg", data) for n, data in enumerate(scans[:3], start=1)),
        Upload("scan-4-shaky.jpg", cv2.imencode(".jpg", shaky)[1].tobytes()),
        Upload("late-sheets.pdf", out.getvalue()),
    ]


def _code_of(job: AIJob) -> str:
    """The job's rejection code; a hand-over to the GPU pool keeps basic's in its reason
    (``validation_failed:BLUR_OR_SHAKE``)."""
    return job.rejection_code or str(job.flags.get("fallback_reason") or "-").rpartition(":")[2]


class Command(BaseCommand):
    help = "Push a demo batch through every pool: a class's OMR sheets, rosters, probes; wait for it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the batch")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant, token = tenant_create(
            slug="demo-academy", username="demo-teacher", premium=True, allow_gpu_fallback=True
        )
        exam = exam_create(
            tenant=tenant,
            title="데모 모의고사",
            answer_key={"questions": {q: {"correct": [a], "points": 2.5} for q, a in DEMO_KEY.items()}},
        )
        omr, _ = omr_batch_create(tenant=tenant, exam=exam, uploads=_class_scans())
        self.stdout.write(f"OMR batch {omr.batch_id}: {omr.total_sheets} sheets for exam {exam.pk} -> basic pool")
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
        while time.monotonic() < deadline:
            jobs = list(AIJob.objects.filter(job_id__in=job_ids).order_by("created_at"))
            graded = OmrBatch.objects.filter(pk=omr.pk, graded_at__isnull=False).exists()
            if graded and all(job.is_terminal for job in jobs):
                break
            time.sleep(0.5)

        self.stdout.write("")
        self.stdout.write(f"{'job type':<14} {'tier':<8} {'status':<18} {'worker':<28} review")
        for job in jobs:
            worker = job.locked_by or "-"
            self.stdout.write(f"{job.job_type:<14} {job.tier:<8} {job.status:<18} {worker:<28} {job.needs_review}")
        omr.refresh_from_db()
        body = selectors.batch_body(omr)
        self.stdout.write("")
        settled = f"{body['settled']}/{body['total_sheets']}"
        self.stdout.write(f"OMR batch: {settled} sheets settled, graded={body['graded']}")
        self.stdout.write(f"{'sheet':<22} {'student':<10} {'status':<13} score")
        for row in body["sheets"]:
            score = f"{row['score']:g}/{row['max_score']:g}" if row["score"] is not None else "-"
            shown = row["rejection_code"] or score
            self.stdout.write(f"{row['sheet']:<22} {row['student_id'] or '-':<10} {row['status']:<13} {shown}")
        self.stdout.write("")
        # A refused sheet's whole path: the code each pool gave, as the job-status API shows it.
        for row in body["sheets"]:
            sheet_job = AIJob.objects.filter(job_id=row["job_id"]).first() if row.get("job_id") else None
            if row["rejection_code"] and sheet_job is not None:
                steps = [f"{j.tier} {j.status} {_code_of(j)}" for j in selectors.job_lineage(sheet_job)]
                self.stdout.write(f"{row['sheet']}: {' -> '.join(steps)}")
        self.stdout.write("")
        self.stdout.write(f"Flower (workers and tasks): {settings.FLOWER_URL}")
        if settings.FLOWER_BASIC_AUTH:
            user, _, password = settings.FLOWER_BASIC_AUTH.partition(":")
            self.stdout.write(f"     user {user}, password {password}")
        web = os.environ.get("WEB_BIND", "127.0.0.1:8000")
        self.stdout.write(f"API: http://{web}/api/v1/exams/{exam.pk}/omr-batches/{omr.batch_id}/  with header")
        self.stdout.write(f"     Authorization: Token {token}")
        self.stdout.write(f"Admin: http://{web}/admin/  (python manage.py createsuperuser first)")
        # The shaken scan is refused on purpose, with a code: basic's quality gate says
        # BLUR_OR_SHAKE, the demo academy's GPU fallback sends it to premium, and the
        # premium pool cannot read it either.
        refused = {"scan-4-shaky.jpg"}
        wanted = {name: ("REJECTED", True) for name in refused}
        wrong = [
            s["sheet"]
            for s in body["sheets"]
            if (s["status"], bool(s["rejection_code"])) != wanted.get(s["sheet"], ("GRADED", False))
        ]
        wrong += [job.job_id for job in jobs if job.status != "DONE"] + ([] if body["graded"] else ["batch not graded"])
        if wrong:
            raise CommandError(f"not done within {options['wait']}s: {wrong}")
        self.stdout.write(self.style.SUCCESS(f"all {len(jobs)} demo jobs are DONE; {settled} OMR sheets settled"))
