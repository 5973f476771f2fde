"""A batch of answer sheets through the real basic pool and grading, against reading them in-process.

Run from the repository root::

    .venv/bin/python -m bench.omr_pipeline [--sheets 500] [--concurrency 1]

baseline  ``OmrGradingProcessor().run`` over every sheet, in ``--concurrency`` processes
          of a multiprocessing pool (decode, read, overlay PNG: the whole processor).
pipeline  ``omr_batch_create`` (the API's service: store each file, pre-validate it on
          its pixels, create a Submission and a job per sheet, publish after commit),
          then one real ``celery worker -Q basic -c <concurrency>`` reads every sheet
          (claim, lease, processor, write-once result, overlay artifact) and a real
          ``celery worker -Q domain`` applies each reading and grades the batch once
          its last sheet settles. Done when the batch's ``graded_at`` is set.

Overhead = pipeline wall time / baseline wall time - 1 (target: at most 20 %), with the
baseline run before and after the pipeline and their mean taken. The sheets
are the synthetic corpus's degraded 200-dpi scans (tests/omr/corpus.py), the same bytes
on both paths. Needs Postgres and Redis like bench/noop_roundtrip.py (database
``academy_bench``, Redis db 12, flushed).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

from bench.noop_roundtrip import ROLES, Worker, bench_setup, cpu_by_role, python_shown


def corpus(count: int, *, seed: int = 2026) -> list[bytes]:
    """The corpus's degraded scans, kept as plain JPEG files between runs (making 500
    takes minutes): ``$TMPDIR/academy-omr-corpus-<count>-<seed>/``. Same seed, same bytes."""
    from tests.omr.corpus import make_corpus
    from workers.omr.template import default_template

    folder = Path(tempfile.gettempdir()) / f"academy-omr-corpus-{count}-{seed}"
    if (folder / "complete").exists():
        return [(folder / f"{i:04d}.jpg").read_bytes() for i in range(count)]
    sheets = [sheet.data for sheet in make_corpus(default_template(), count, seed=seed)]
    folder.mkdir(exist_ok=True)
    for i, data in enumerate(sheets):
        (folder / f"{i:04d}.jpg").write_bytes(data)
    (folder / "complete").touch()
    return sheets


_TEMPLATE: dict[str, object] = {}


def _read_one(data: bytes) -> float:
    from workers.base import JobInput
    from workers.registry import get

    processor = get("omr_grading")
    assert processor is not None
    result = processor.run(JobInput(params={"template": _TEMPLATE}, data=data))
    return result.confidence


def _init(template: dict[str, object]) -> None:
    _TEMPLATE.update(template)


def baseline(sheets: list[bytes], concurrency: int, template: dict[str, object]) -> float:
    """Seconds to run the processor over every sheet in ``concurrency`` processes (warm)."""
    with get_context("fork").Pool(concurrency, initializer=_init, initargs=(template,)) as pool:
        pool.map(_read_one, sheets[: concurrency * 2])  # warm: imports, template cache
        started = time.perf_counter()
        pool.map(_read_one, sheets, chunksize=1)
        return time.perf_counter() - started


def pipeline(sheets: list[bytes], tenant: object, exam: object, *, timeout: float) -> tuple[float, float, object]:
    """(seconds to create the batch, seconds until it is graded, the batch)."""
    from django.db import connection

    from academy.models import OmrBatch
    from academy.services.omr_batches import Upload, omr_batch_create

    started = time.perf_counter()
    batch, _ = omr_batch_create(
        tenant=tenant,  # type: ignore[arg-type]
        exam=exam,  # type: ignore[arg-type]
        uploads=[Upload(f"sheet-{i:04d}.jpg", data) for i, data in enumerate(sheets)],
    )
    created = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        connection.close_if_unusable_or_obsolete()
        if OmrBatch.objects.filter(pk=batch.pk, graded_at__isnull=False).exists():
            return created - started, time.perf_counter() - started, batch
        time.sleep(0.05)
    raise TimeoutError(f"batch not graded within {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.omr_pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sheets", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1, help="basic pool processes = baseline processes")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    bench_setup()

    from academy.models import AnswerKey, Exam, Grade, SubmissionStatus
    from academy.services.tenants import tenant_create
    from workers.omr.template import default_template

    print(f"generating (or reusing) {args.sheets} degraded 200-dpi scans ...", flush=True)
    sheets = corpus(args.sheets)
    template = default_template().to_dict()
    # This machine's speed drifts by tens of percent over minutes (a shared host), so the
    # baseline runs before and after the pipeline and the overhead is taken on their mean.
    base_before = baseline(sheets, args.concurrency, template)

    tenant, _ = tenant_create(slug="bench-omr", username="bench-omr")
    exam = Exam.objects.create(tenant=tenant, title="bench", sheet_template=template)
    AnswerKey.objects.create(exam=exam, questions={str(q): {"correct": ["1"]} for q in range(1, 41)})
    logs = Path(tempfile.mkdtemp(prefix="academy-bench-omr-"))
    basic = Worker(args.concurrency, logs / "basic.log", queue="basic", name="bench-basic@%h")
    domain = Worker(1, logs / "domain.log", queue="domain", name="bench-domain@%h")
    for worker in (basic, domain):
        worker.start()
    try:
        for worker in (basic, domain):
            worker.wait_ready()
        # Warm the pools (first job imports cv2 and the lifecycle) with a small batch.
        pipeline(sheets[:4], tenant, exam, timeout=120)
        cpu0 = cpu_by_role(basic.pid)
        create_s, total_s, batch = pipeline(sheets, tenant, exam, timeout=args.timeout)
        cpu1 = cpu_by_role(basic.pid)
    finally:
        for worker in (basic, domain):
            worker.stop()
    base_after = baseline(sheets, args.concurrency, template)
    base_s = (base_before + base_after) / 2

    statuses = dict.fromkeys(SubmissionStatus.values, 0)
    for status in batch.submissions.values_list("status", flat=True):  # type: ignore[attr-defined]
        statuses[status] += 1
    grades = Grade.objects.filter(submission__batch=batch)
    graded_twice = grades.filter(times_graded__gt=1).count()
    overhead = total_s / base_s - 1
    rows = [
        (f"baseline: processor in-process, {args.concurrency} process(es)", base_s),
        (f"pipeline: batch service + basic pool (-c {args.concurrency}) + grading", total_s),
    ]
    print()
    print("| path | sheets | wall time (s) | sheets/s |")
    print("|---|---:|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {args.sheets} | {seconds:.1f} | {args.sheets / seconds:.1f} |")
    print()
    verdict = "meets" if overhead <= 0.20 else "MISSES"
    print(f"overhead {overhead:+.1%} (target <= +20%: {verdict}); batch creation (store, pre-validate, dispatch)")
    print(f"took {create_s:.1f}s of the pipeline's {total_s:.1f}s")
    print(f"baseline before the pipeline {base_before:.1f}s, after it {base_after:.1f}s (mean used)")
    seen = {k: v for k, v in statuses.items() if v}
    print(f"sheets by status: {seen}; grades {grades.count()}, graded more than once {graded_twice}")
    # client = this process (the batch service: store, pre-validate, dispatch; and polling),
    # worker = the basic pool, other = the domain pool and anything else on the machine.
    per_sheet = {role: max(0.0, cpu1[role] - cpu0[role]) / args.sheets * 1000 for role in ROLES}
    shown = ", ".join(f"{role} {ms:.1f}" for role, ms in per_sheet.items())
    total_cpu, base_ms = sum(per_sheet.values()), base_s / args.sheets * 1000
    print(f"CPU per sheet (ms): {shown}; total {total_cpu:.1f}; baseline wall per sheet {base_ms:.1f}")
    argv = [
        python_shown(),
        "-m",
        "bench.omr_pipeline",
        "--sheets",
        str(args.sheets),
        "--concurrency",
        str(args.concurrency),
    ]
    print(f"command: {shlex.join(argv)}")
    print(f"machine: {os.cpu_count()} CPUs; worker logs in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
