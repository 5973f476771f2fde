"""``manage.py ai_jobs``: list jobs with filters, or inspect one (``ai_jobs <job_id>``)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from academy import selectors
from academy.models import AIJob, JobStatus
from academy.states import TIERS

COLUMNS = ("job_id", "job_type", "tier", "status", "review", "tenant", "attempts", "created_at")


def _jobs(
    *, status: str | None, tier: str | None, tenant: str | None, review: bool, job_type: str | None
) -> QuerySet[AIJob]:
    jobs: QuerySet[AIJob] = AIJob.objects.select_related("tenant").order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status.upper())
    if tier:
        jobs = jobs.filter(tier=tier)
    if tenant:
        jobs = jobs.filter(tenant__slug=tenant)
    if review:
        jobs = jobs.filter(needs_review=True)
    if job_type:
        jobs = jobs.filter(job_type=job_type)
    return jobs


class Command(BaseCommand):
    help = "List AI jobs (newest first) with filters, or show one job: status, lineage and result JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", nargs="?", help="show this job instead of a list")
        parser.add_argument("--status", choices=[s.lower() for s in JobStatus.values] + list(JobStatus.values))
        parser.add_argument("--tier", choices=list(TIERS))
        parser.add_argument("--tenant", help="tenant slug")
        parser.add_argument("--review", action="store_true", help="only jobs flagged for review")
        parser.add_argument("--type", dest="job_type", help="only this job type")
        parser.add_argument("--limit", type=int, default=50)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["job_id"]:
            self._inspect(options["job_id"])
            return
        jobs = _jobs(
            status=options["status"],
            tier=options["tier"],
            tenant=options["tenant"],
            review=options["review"],
            job_type=options["job_type"],
        )[: max(1, options["limit"])]
        rows = [
            (
                j.job_id,
                j.job_type,
                j.tier,
                j.status,
                "review" if j.needs_review else "-",
                j.tenant.slug if j.tenant else "-",
                str(j.attempt_count),
                j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for j in jobs
        ]
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
        self.stdout.write("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip())
        for row in rows:
            self.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        self.stdout.write(f"({len(rows)} jobs)")

    def _inspect(self, job_id: str) -> None:
        job = selectors.job_get(job_id)
        if job is None:
            raise CommandError(f"no job {job_id!r}")
        fields = {
            "job_id": job.job_id,
            "job_type": job.job_type,
            "tier": job.tier,
            "status": job.status,
            "tenant": job.tenant.slug if job.tenant else None,
            "needs_review": job.needs_review,
            "attempts": f"{job.attempt_count}/{job.max_attempts}",
            "rejection_code": job.rejection_code or None,
            "error": job.error_message or None,
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "rerun_reason": job.rerun_reason or None,
            "rerun_of": (job.flags or {}).get("rerun_of"),
        }
        for name, value in fields.items():
            self.stdout.write(f"{name + ':':16}{'-' if value is None else value}")
        chain = selectors.job_lineage(job)
        lineage = " -> ".join(f"{'*' if j.pk == job.pk else ''}{j.job_id}({j.tier}:{j.status})" for j in chain)
        self.stdout.write(f"{'lineage:':16}{lineage}")
        self.stdout.write("flags:")
        self.stdout.write(json.dumps(job.flags, ensure_ascii=False, indent=2, sort_keys=True))
        self.stdout.write("result:")
        result = selectors.job_result_payload(job)
        self.stdout.write(json.dumps(result, ensure_ascii=False, indent=2, sort_keys=True, default=str))
