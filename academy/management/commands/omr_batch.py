"""``manage.py omr_batch``: upload a class's answer sheets for an exam and follow the batch.

Sheets come from a folder (every file in it, in name order), or from files: images,
PDFs (one sheet a page) and zips of either. The batch is created like the API creates
it; then a progress line is redrawn until the batch is graded or ``--timeout`` runs out,
and each sheet's outcome is printed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from academy import selectors
from academy.models import Exam, OmrBatch
from academy.rejections import Rejection
from academy.services.omr_batches import MODES, Upload, omr_batch_create

BAR_WIDTH = 30


def _uploads(paths: list[Path]) -> list[Upload]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"no such file or folder: {path}")
    if not files:
        raise CommandError("no files to upload")
    return [Upload(name=f.name, data=f.read_bytes()) for f in files]


def progress_line(body: dict[str, Any]) -> str:
    total = int(body["total_sheets"])
    settled = int(body["settled"])
    filled = BAR_WIDTH * settled // total if total else BAR_WIDTH
    state = "graded" if body["graded"] else "reading"
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {settled}/{total} sheets ({body['percent']}%) {state}"


class Command(BaseCommand):
    help = "Upload a folder, PDF or zip of OMR sheets for an exam, follow the batch, print each sheet's outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("exam_id", type=int)
        parser.add_argument("paths", nargs="+", type=Path, help="a folder, or image / PDF / zip files")
        parser.add_argument("--mode", choices=sorted(MODES), default="scan")
        parser.add_argument("--tier", choices=["basic", "premium"], default=None)
        parser.add_argument("--idempotency-key", default=None)
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for grading")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between progress checks")
        parser.add_argument("--no-wait", action="store_true", help="create the batch and return")

    def handle(self, *args: Any, **options: Any) -> None:
        exam = Exam.objects.select_related("tenant").filter(pk=options["exam_id"]).first()
        if exam is None:
            raise CommandError(f"no exam {options['exam_id']}")
        uploads = _uploads(options["paths"])
        try:
            batch, created = omr_batch_create(
                tenant=exam.tenant,
                exam=exam,
                uploads=uploads,
                mode=options["mode"],
                tier=options["tier"],
                idempotency_key=options["idempotency_key"],
            )
        except Rejection as rejection:
            raise CommandError(f"batch refused: {rejection.code}: {rejection.detail}") from rejection
        self.stdout.write(
            f"batch {batch.batch_id} ({'created' if created else 'existing'}): "
            f"{batch.total_sheets} sheets, {len(batch.skipped)} skipped, exam {exam.pk} ({exam.tenant.slug})"
        )
        for skipped in batch.skipped:
            self.stdout.write(f"  skipped {skipped['name']}: {skipped['code']} {skipped.get('detail', '')}")
        if options["no_wait"]:
            return
        graded = self._follow(batch, timeout=options["timeout"], interval=max(0.05, options["interval"]))
        self._report(batch)
        if not graded:
            raise CommandError(f"batch {batch.batch_id} not graded after {options['timeout']:g} s")

    def _follow(self, batch: OmrBatch, *, timeout: float, interval: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            batch.refresh_from_db(fields=["graded_at", "total_sheets"])
            body = selectors.batch_body(batch, with_sheets=False)
            self.stdout.write(f"\r{progress_line(body)}", ending="")
            self.stdout.flush()
            if body["graded"] or time.monotonic() >= deadline:
                self.stdout.write("")
                return bool(body["graded"])
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def _report(self, batch: OmrBatch) -> None:
        body = selectors.batch_body(batch)
        for sheet in body["sheets"]:
            score = f"{sheet['score']:g}/{sheet['max_score']:g}" if sheet["score"] is not None else "-"
            why = f" {sheet['rejection_code']}: {sheet['message']}" if sheet["rejection_code"] else ""
            review = f" review: {','.join(sheet['review'])}" if sheet["review"] else ""
            self.stdout.write(
                f"{sheet['sheet']}\t{sheet['status']}\tstudent={sheet['student_id'] or '-'}\tscore={score}{why}{review}"
            )
        if body["duplicate_student_ids"]:
            self.stdout.write(f"duplicate student ids: {', '.join(body['duplicate_student_ids'])}")
