"""A batch of answer sheets through the real basic pool and grading, against reading them in-process.

Run from the repository root::

    .venv/bin/python -m bench.omr_pipeline [--sheets 500] [--concurrency 1] [--rounds 3] [--own-core]

baseline  ``OmrGradingProcessor().run`` over every sheet, in ``--concurrency`` processes
          of a multiprocessing pool (decode, read, overlay PNG: the whole processor).
pipeline  ``omr_batch_create`` (the API's service: store each file, pre-validate it on
          its pixels, create a Submission and a job per sheet, publish after commit),
          then one real ``celery worker -Q basic -c <concurrency>`` reads every sheet
          (claim, lease, processor, write-once result, overlay artifact) and a real
          ``celery worker -Q domain`` applies each reading and grades the batch once
          its last sheet settles. Done when the batch's ``graded_at`` is set.

Overhead = pipeline wall time / baseline wall time - 1 (target: at most 20 %). This
machine's speed drifts by tens of percent within minutes, so the two alternate:
``--rounds`` pipeline batches (3 by default), each between two baseline runs, and each
round's overhead is taken against the mean of the baselines on either side of it. The
verdict is on the median round.

``--own-core`` models a deployment where the basic pool has a host of its own: the pool
and the baseline's reader run on the last CPU, with one OpenCV thread each, and this
process (the batch service), the domain pool, Postgres and Redis on the others (the
services are moved back when the run ends). Without it everything shares every CPU. The sheets
are the synthetic corpus's degraded 200-dpi scans (tests/omr/corpus.py), the same bytes
on both paths. Needs Postgres and Redis like bench/noop_roundtrip.py (database
``academy_bench``, Redis db 12, flushed).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

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
_POOL_CPUS: set[int] = set()


def _read_one(data: bytes) -> float:
    """CPU seconds the processor took for one sheet (all of its threads)."""
    from workers.base import JobInput
    from workers.registry import get

    processor = get("omr_grading")
    assert processor is not None
    started = time.process_time()
    processor.run(JobInput(params={"template": _TEMPLATE}, data=data))
    return time.process_time() - started


def _init(template: dict[str, object], cpus: set[int]) -> None:
    _TEMPLATE.update(template)
    if cpus:  # --own-core: the reader as the pool's child runs it, on the pool's core
        os.sched_setaffinity(0, cpus)
        os.environ["OPENCV_FOR_THREADS_NUM"] = "1"  # read when cv2 is first imported, below
    else:
        # Shared: the fastest reading in-process, on OpenCV's own threads (about 10 %
        # faster alone than on one). The app's processes default to one thread
        # (academy.apps), which this process inherited.
        import cv2

        cv2.setNumThreads(cv2.getNumberOfCPUs())


def baseline(sheets: list[bytes], concurrency: int, template: dict[str, object], cpus: set[int]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to run the processor over every sheet in
    ``concurrency`` processes (warm), on ``cpus`` when given. The processes come from a
    fork server: a child forked from this process once it has published would inherit
    its broker connections, which kombu's after-fork hook then tries to close and can
    hang on."""
    with get_context("forkserver").Pool(concurrency, initializer=_init, initargs=(template, cpus)) as pool:
        pool.map(_read_one, sheets[: concurrency * 2])  # warm: imports, template cache
        started = time.perf_counter()
        cpu = sum(pool.map(_read_one, sheets, chunksize=1))
        return time.perf_counter() - started, cpu


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


def timeline(batch: Any) -> dict[str, float]:
    """Where a batch's time went outside the reads, from its rows' timestamps, in seconds.

    ``head``: the batch made → its first message claimed; ``between``: the sum of the gaps
    from one message's finishes to the next message's claim (the finishes' write, the ack,
    the broker and the next claim's start); ``tail``: the last finish → the batch graded
    (the last callback and the batch's grading). A message's jobs share their claim's
    ``locked_at`` and their finishes' ``finished_at``. With more than one pool process the
    messages overlap and ``between`` means nothing (NaN).
    """
    from django.db.models import Max

    from academy.models import AIJob

    messages = list(
        AIJob.objects.filter(submissions__batch=batch, locked_at__isnull=False)
        .values("locked_at")
        .annotate(done=Max("finished_at"))
        .order_by("locked_at")
    )
    claims = [m["locked_at"] for m in messages]
    ends = [m["done"] for m in messages]
    sequential = all(end <= later for end, later in zip(ends, claims[1:], strict=False))
    between = sum((later - end).total_seconds() for end, later in zip(ends, claims[1:], strict=False))
    return {
        "messages": len(messages),
        "head": (claims[0] - batch.created_at).total_seconds(),
        "between": between if sequential else float("nan"),
        "tail": (batch.graded_at - max(ends)).total_seconds(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.omr_pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sheets", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1, help="basic pool processes = baseline processes")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--own-core",
        action="store_true",
        help="give the basic pool (and the baseline) the last CPU and everything else the others, "
        "as when the pool has a host of its own",
    )
    parser.add_argument("--rounds", type=int, default=3, help="pipeline batches, each between two baseline runs")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    bench_setup()

    from academy.models import AnswerKey, Exam, Grade, SubmissionStatus
    from academy.services.tenants import tenant_create
    from workers.omr.template import default_template

    print(f"generating (or reusing) {args.sheets} degraded 200-dpi scans ...", flush=True)
    sheets = corpus(args.sheets)
    template = default_template().to_dict()
    everything = os.sched_getaffinity(0)
    pool_cpus = {max(everything)} if args.own_core else set()
    if args.own_core and len(everything) < 2:
        parser.error("--own-core needs at least two CPUs")
    bases = [baseline(sheets, args.concurrency, template, pool_cpus)]

    tenant, _ = tenant_create(slug="bench-omr", username="bench-omr")
    exam = Exam.objects.create(tenant=tenant, title="bench", sheet_template=template)
    AnswerKey.objects.create(exam=exam, questions={str(q): {"correct": ["1"]} for q in range(1, 41)})
    logs = Path(tempfile.mkdtemp(prefix="academy-bench-omr-"))
    rest = everything - pool_cpus if pool_cpus else None
    basic = Worker(args.concurrency, logs / "basic.log", queue="basic", name="bench-basic@%h", cpus=pool_cpus or None)
    domain = Worker(1, logs / "domain.log", queue="domain", name="bench-domain@%h", cpus=rest)
    for worker in (basic, domain):
        worker.start()
    pinned = _pin_services(rest) if rest else []
    runs: list[tuple[float, float]] = []  # (batch creation, until graded) per round
    batches: list[Any] = []
    cpu = dict.fromkeys(ROLES, 0.0)
    try:
        for worker in (basic, domain):
            worker.wait_ready()
        # Warm the pools (first job imports cv2 and the lifecycle) with a small batch.
        pipeline(sheets[:4], tenant, exam, timeout=120)
        for _ in range(args.rounds):
            cpu0 = cpu_by_role(basic.pid)
            create_s, total_s, batch = pipeline(sheets, tenant, exam, timeout=args.timeout)
            cpu1 = cpu_by_role(basic.pid)
            runs.append((create_s, total_s))
            batches.append(batch)
            for role in ROLES:
                cpu[role] += max(0.0, cpu1[role] - cpu0[role])
            # The pools are idle now: the next baseline runs on the same CPUs as the last.
            bases.append(baseline(sheets, args.concurrency, template, pool_cpus))
    finally:
        for worker in (basic, domain):
            worker.stop()
        for pid in pinned:
            _set_cpus(pid, everything)
    read_cpu_ms = statistics.mean(c for _, c in bases) / args.sheets * 1000

    print()
    print("| round | baseline before (s) | pipeline (s) | baseline after (s) | overhead | batch creation (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    overheads = []
    for i, (create_s, total_s) in enumerate(runs):
        before, after = bases[i][0], bases[i + 1][0]
        overheads.append(total_s / ((before + after) / 2) - 1)
        print(f"| {i + 1} | {before:.1f} | {total_s:.1f} | {after:.1f} | {overheads[-1]:+.1%} | {create_s:.1f} |")
    print()
    print("| round | messages | head (s) | between messages (s) | tail (s) |")
    print("|---:|---:|---:|---:|---:|")
    for i, batch in enumerate(batches):
        batch.refresh_from_db()
        parts = timeline(batch)
        cells = [f"{parts['messages']:.0f}", *(f"{parts[k]:.2f}" for k in ("head", "between", "tail"))]
        print(f"| {i + 1} | {' | '.join(cells)} |")
    print()
    overhead = statistics.median(overheads)
    base_s = statistics.mean(b for b, _ in bases)
    total_s = statistics.median(t for _, t in runs)
    verdict = "meets" if overhead <= 0.20 else "MISSES"
    print(f"overhead, median of {args.rounds} round(s): {overhead:+.1%} (target <= +20%: {verdict})")
    print(
        f"baseline {base_s / args.sheets * 1000:.1f} ms a sheet ({args.sheets / base_s:.1f} sheets/s, mean of "
        f"{len(bases)} runs); pipeline {args.sheets / total_s:.1f} sheets/s (median round)"
    )
    statuses = dict.fromkeys(SubmissionStatus.values, 0)
    for status in batches[-1].submissions.values_list("status", flat=True):
        statuses[status] += 1
    grades = Grade.objects.filter(submission__batch__in=batches)
    graded_twice = grades.filter(times_graded__gt=1).count()
    seen = {k: v for k, v in statuses.items() if v}
    print(f"last batch's sheets by status: {seen}; grades {grades.count()}, graded more than once {graded_twice}")
    # client = this process (the batch service: store, pre-validate, dispatch; and polling),
    # worker = the basic pool, other = the domain pool and anything else on the machine.
    sheets_run = args.sheets * args.rounds
    per_sheet = {role: seconds / sheets_run * 1000 for role, seconds in cpu.items()}
    shown = ", ".join(f"{role} {ms:.1f}" for role, ms in per_sheet.items())
    print(f"CPU per sheet in the pipeline (ms): {shown}; total {sum(per_sheet.values()):.1f}")
    print(f"the processor's own CPU per sheet in the baseline (all its threads): {read_cpu_ms:.1f} ms")
    argv = [
        python_shown(),
        "-m",
        "bench.omr_pipeline",
        "--sheets",
        str(args.sheets),
        "--concurrency",
        str(args.concurrency),
        "--rounds",
        str(args.rounds),
        *(["--own-core"] if args.own_core else []),
    ]
    print(f"command: {shlex.join(argv)}")
    where = f"basic pool and baseline on CPU {sorted(pool_cpus)}, the rest on {sorted(rest)}" if rest else "shared"
    print(f"machine: {os.cpu_count()} CPUs ({where}); worker logs in {logs}")
    return 0


def _set_cpus(pid: int, cpus: set[int]) -> bool:
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError:  # gone, or not ours to move
        return False
    return True


def _pin_services(cpus: set[int]) -> list[int]:
    """Move this process, Postgres (its postmaster too, so new backends follow) and Redis
    onto ``cpus``, off the pool's core. Returns the pids moved, to be put back."""
    moved = [os.getpid()] if _set_cpus(os.getpid(), cpus) else []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith(("postgres", "redis-server")) and _set_cpus(int(entry.name), cpus):
            moved.append(int(entry.name))
    return moved


if __name__ == "__main__":
    sys.exit(main())
