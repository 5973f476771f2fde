"""One whole host dies mid-run; the other host finishes its work, and nothing is lost.

Host h1 runs lite, basic and domain workers, host h2 lite, basic, premium and domain
(tests/scaleout/conftest.py). About 100 jobs over the three tiers and a small OMR batch
are dispatched from this process; once h1 is working on some of them, every process in
its namespace is SIGKILLed and its link taken down. Its running jobs come back when
their leases expire (the sweeper thread), its prefetched messages are re-published by
the sweeper, and h2 runs them. Figures: docs/scaleout.md.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.chaos.scenarios import callback_applications, unfinished, wait_all
from tests.scaleout.conftest import Scaleout

pytestmark = [pytest.mark.integration]

JOBS = 99
SHEETS = 4
TIERS = ("lite", "basic", "premium")
VICTIM, SURVIVOR = "h1", "h2"


def _exam_and_sheets(tenant: Any, sheets: int) -> tuple[Any, list[Any]]:
    """An exam and ``sheets`` filled answer sheets, each with exactly one wrong answer."""
    from academy.services.exams import exam_create
    from academy.services.omr_batches import Upload
    from workers.omr.render import filled_sheet_jpeg
    from workers.omr.template import default_template

    template = default_template()
    right = {q.label: q.values[i % len(q.values)] for i, q in enumerate(template.questions)}
    exam = exam_create(
        tenant=tenant,
        title="scale-out",
        template="default",
        answer_key={"questions": {label: [value] for label, value in right.items()}},
    )
    uploads = []
    for n in range(sheets):
        miss = template.questions[(n * 7) % len(template.questions)]
        other = next(v for v in miss.values if v != right[miss.label])
        jpeg = filled_sheet_jpeg(template, student_id=f"3100{n:04d}", answers={**right, miss.label: other})
        uploads.append(Upload(f"scaleout-{n}.jpg", jpeg))
    return exam, uploads


def _dispatch(ctx: Scaleout, n: int) -> list[str]:
    """n jobs round-robin over the tiers: every fourth a ``ping``, the rest a short ``probe_record``."""
    from academy.jobs.dispatch import job_dispatch

    ids = []
    for i in range(n):
        tier = TIERS[i % len(TIERS)]
        payload: dict[str, Any]
        if i % 4 == 3:
            job_type, payload = "ping", {"echo": f"scaleout-{i}"}
        else:
            log = str(ctx.runs_dir / f"{i}.log")
            job_type, payload = "probe_record", {"log": log, "sleep": 0.25, "sleep_attempts": [1, 2, 3, 4, 5]}
        reply = job_dispatch(job_type=job_type, payload=payload, tenant=ctx.tenant, tier=tier)
        assert reply["ok"], reply
        assert reply["tier"] == tier, reply
        ids.append(str(reply["job_id"]))
    return ids


def _running_on(host: str, ids: list[str], *, claimed_within: float | None = None) -> list[str]:
    """Jobs ``host`` is running; with ``claimed_within``, only probe runs it claimed that recently."""
    from datetime import timedelta

    from django.utils import timezone

    from academy.models import AIJob

    running = AIJob.objects.filter(job_id__in=ids, status="RUNNING", locked_by__contains=f"@{host}:")
    if claimed_within is not None:
        since = timezone.now() - timedelta(seconds=claimed_within)
        running = running.filter(job_type="probe_record", locked_at__gte=since)
    return [str(job_id) for job_id in running.values_list("job_id", flat=True)]


def test_killing_a_whole_host_loses_nothing_and_grades_each_sheet_once(scaleout: Scaleout, record: Any) -> None:
    from django.db.models import Count

    from academy.models import AIJob, Grade, OmrBatch
    from academy.services.omr_batches import omr_batch_create

    hosts = scaleout.hosts
    exam, uploads = _exam_and_sheets(scaleout.tenant, SHEETS)
    started = time.monotonic()
    batch, _ = omr_batch_create(tenant=scaleout.tenant, exam=exam, uploads=uploads)
    sheet_jobs = [str(j) for j in batch.submissions.exclude(job=None).values_list("job__job_id", flat=True)]
    ids = _dispatch(scaleout, JOBS)
    everything = ids + sheet_jobs

    # Kill h1 mid-run: once it has just started a probe (0.25 s of work left, so the run is
    # surely cut off) and plenty of work is still queued.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _running_on(VICTIM, everything, claimed_within=0.1) and len(unfinished(everything)) >= len(everything) // 3:
            break
        time.sleep(0.03)
    finished_before = len(everything) - len(unfinished(everything))
    processes = hosts.kill_host(VICTIM)
    killed_at = time.monotonic() - started
    assert hosts.network.pids(VICTIM) == []
    assert hosts.alive(VICTIM) == []
    # h1 can write nothing any more: what it was running now is what it was running when it died.
    in_flight = _running_on(VICTIM, everything)
    done_by_victim = AIJob.objects.filter(
        job_id__in=everything, finished_at__isnull=False, locked_by__contains=f"@{VICTIM}:"
    ).count()
    assert len(hosts.alive(SURVIVOR)) == 4, "the surviving host's workers must keep running"

    drain = wait_all(everything, timeout=60)
    graded_deadline = time.monotonic() + 30
    while not OmrBatch.objects.filter(pk=batch.pk, graded_at__isnull=False).exists():
        assert time.monotonic() < graded_deadline, "the OMR batch was never graded"
        time.sleep(0.2)
    total = time.monotonic() - started

    jobs = AIJob.objects.filter(job_id__in=everything)
    statuses = Counter(jobs.values_list("status", flat=True))
    lost = len(unfinished(everything))
    doubles = jobs.annotate(n=Count("result")).filter(n__gt=1).count()
    reruns = jobs.filter(attempt_count__gt=1).count()
    recovered = jobs.filter(last_error__contains="lease expired on ").filter(last_error__contains=f"@{VICTIM}:")
    finished_by = Counter(
        locked.split("@")[1].split(":")[0] for locked in jobs.values_list("locked_by", flat=True) if "@" in locked
    )
    runs_logged = sum(len(p.read_text().splitlines()) for p in scaleout.runs_dir.glob("*.log"))
    grades = list(Grade.objects.filter(submission__batch=batch).values_list("times_graded", "score"))
    applied = callback_applications(sheet_jobs)
    figures = record(
        {
            "scenario": "host_kill",
            "jobs": len(everything),
            "sheets": SHEETS,
            "host_killed": VICTIM,
            "killed_at_s": round(killed_at, 1),
            "processes_killed": processes,
            "finished_before_kill": finished_before,
            "done_by_victim": done_by_victim,
            "running_on_victim_at_kill": len(in_flight),
            "drain_after_kill_s": round(drain, 1),
            "total_s": round(total, 1),
            "jobs_rerun": reruns,
            "leases_recovered_from_victim": recovered.count(),
            "runs_logged": runs_logged,
            "finished_by": dict(sorted(finished_by.items())),
            "sweeper": dict(scaleout.sweeper.totals),
            "statuses": dict(sorted(statuses.items())),
            "lost": lost,
            "duplicates": doubles,
            "grades": len(grades),
        }
    )
    line = " ".join(f"{k}={v}" for k, v in figures.items())

    assert lost == 0, line
    assert doubles == 0, line
    assert dict(Counter(AIJob.objects.filter(job_id__in=ids).values_list("status", flat=True))) == {"DONE": JOBS}, line
    # Every job h1 was running when it died ran again, on h2, after its lease expired.
    for job in AIJob.objects.filter(job_id__in=in_flight):
        assert job.attempt_count >= 2, (job.job_id, line)
        assert f"@{SURVIVOR}:" in job.locked_by, (job.job_id, job.locked_by, line)
    assert reruns >= len(in_flight) >= 1, line
    # Nothing finished on h1 after it was killed.
    assert finished_by.get(VICTIM, 0) == done_by_victim, line
    # Each sheet graded exactly once, its reading applied once.
    assert len(grades) == SHEETS, (grades, line)
    assert all(times == 1 for times, _ in grades), (grades, line)
    assert sorted(score for _, score in grades) == [39.0] * SHEETS, (grades, line)
    assert jobs.filter(job_id__in=sheet_jobs, callback_done_at__isnull=False).count() == SHEETS, line
    assert sorted(applied.values()) == [1] * SHEETS, (dict(applied), line)
