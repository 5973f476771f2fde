"""Platform overhead: a ``ping`` job end to end against a bare Celery round trip.

Run from the repository root::

    .venv/bin/python -m bench.noop_roundtrip [--jobs N] [--concurrency C] [--samples S]

One run starts ONE real ``celery worker`` on the ``basic`` queue (Postgres + Redis, the
settings production uses) and measures two paths through that same worker:

bare      ``bench.noop`` (defined below) sent with ``apply_async`` to the ``basic`` queue;
          done when its row in the django-db result backend says SUCCESS.
platform  ``job_dispatch(job_type="ping", tier="basic")``: AIJob row, publish after
          commit, ``ai_tasks.basic.run_job``, the lifecycle (claim, lease, processor,
          status, write-once result); done when the AIJob row is DONE.

Completion is detected the same way for both: one query over the outstanding ids (the
oldest 64 of them) every ``--poll-ms`` while draining, every ``--latency-poll-ms`` for a
single round trip. Throughput submits all N at once and waits for the queue to drain
(``--rounds`` rounds per path, alternating); latency is ``--samples`` sequential
single-job round trips per path, interleaved. See bench/README.md.

Needs Postgres on 127.0.0.1:5432 (user postgres, trust auth) and Redis on 127.0.0.1:6379;
it creates and migrates the ``academy_bench`` database and flushes Redis db 12.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from config.celery import app

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "basic"
WORKER_NAME = "bench@%h"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/academy_bench")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")
POLL_WINDOW = 64

# The environment of this process and of the worker: identical for both paths.
BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DATABASE_URL": DATABASE_URL,
    "CELERY_BROKER_URL": BROKER_URL,
    # Production-like: DEBUG off (no per-query SQL log in the worker), so a key is needed.
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-not-a-secret",
    "LOG_LEVEL": "WARNING",
    # Child recycling (default every 500 tasks) would land a cold child in whichever
    # phase happened to be running; a run is several thousand tasks, so it is switched off.
    "WORKER_MAX_TASKS_PER_CHILD": "1000000",
    "PYTHONUNBUFFERED": "1",
}


@app.task(name="bench.noop", acks_late=True, reject_on_worker_lost=True, ignore_result=False)
def noop(token: str) -> str:
    """The bare baseline: same app, same queue, same result backend; no platform code."""
    return token


# --- setup --------------------------------------------------------------------------------


def database_ensure(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def bench_setup() -> Any:
    """This process as a benchmark's client: BENCH_ENV, a migrated database with empty job
    tables, an empty broker, Django set up. Returns the broker's Redis client.

    A plain kill must still reach the caller's ``finally`` that stops its workers, so
    SIGTERM becomes an exit.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.update(BENCH_ENV)
    os.environ.pop("AI_PLUGIN_MODULES", None)
    os.chdir(ROOT)

    import django
    import redis

    database_ensure(DATABASE_URL)
    broker = redis.Redis.from_url(BROKER_URL)
    broker.flushdb()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    tables_reset()
    return broker


def python_shown() -> str:
    """The interpreter as a command line should show it (relative inside the repository)."""
    return os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable


def tables_reset() -> None:
    """Empty the job and result tables, so every run starts from the same (empty) state."""
    from django.db import connection
    from django_celery_results.models import TaskResult

    from academy.models import AIJob

    with connection.cursor() as cursor:
        cursor.execute(f'TRUNCATE "{AIJob._meta.db_table}", "{TaskResult._meta.db_table}" CASCADE')


class Worker:
    """One real ``celery worker`` on one queue, in its own session (so it can be killed whole)."""

    def __init__(
        self,
        concurrency: int,
        log_path: Path,
        *,
        queue: str = QUEUE,
        name: str = WORKER_NAME,
        include: str = "bench.noop_roundtrip",
        cpus: set[int] | None = None,
    ) -> None:
        self.cpus = cpus  # the CPUs it and its pool children may run on (None: any)
        self.argv = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-n", name,
            "-c", str(concurrency), "--loglevel", "WARNING", "--include", include,
        ]  # fmt: skip
        self.name = name.split("@")[0] + "@"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("wb") as log:
            cpus = self.cpus
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            replies = app.control.ping(timeout=0.5) or []
            if any(name.startswith(self.name) for reply in replies for name in reply):
                return
        raise TimeoutError(f"worker did not answer a ping within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the worker's own session: it and its children
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no worker log)"


# --- the two paths --------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One way of running a trivial job: how to submit one, and which of a set are done."""

    name: str
    submit: Callable[[int], str]
    done: Callable[[list[str]], Iterable[tuple[str, bool]]]  # (id, succeeded) for finished ids


def bare_route() -> Route:
    from celery import states
    from django_celery_results.models import TaskResult

    def submit(i: int) -> str:
        result = noop.apply_async(args=(f"bench-{i}",), queue=QUEUE, routing_key=QUEUE)
        return str(result.id)

    def done(ids: list[str]) -> Iterable[tuple[str, bool]]:
        rows = TaskResult.objects.filter(task_id__in=ids, status__in=states.READY_STATES)
        return ((task_id, status == states.SUCCESS) for task_id, status in rows.values_list("task_id", "status"))

    return Route("bare", submit, done)


def platform_route(tenant: Any) -> Route:
    from academy.jobs.dispatch import job_dispatch
    from academy.models import TERMINAL_STATUSES, AIJob, JobStatus

    def submit(i: int) -> str:
        reply = job_dispatch(job_type="ping", payload={"echo": f"bench-{i}"}, tenant=tenant, tier=QUEUE)
        if not reply["ok"] or reply["tier"] != QUEUE:
            raise RuntimeError(f"dispatch refused: {reply}")
        return str(reply["job_id"])

    def done(ids: list[str]) -> Iterable[tuple[str, bool]]:
        rows = AIJob.objects.filter(job_id__in=ids, status__in=list(TERMINAL_STATUSES))
        return ((job_id, status == JobStatus.DONE) for job_id, status in rows.values_list("job_id", "status"))

    return Route("platform", submit, done)


def wait_all(route: Route, ids: Iterable[str], *, poll_s: float, timeout: float = 120.0) -> None:
    """Return once every id is finished; raise if one failed or time ran out.

    Each poll asks about the oldest ``POLL_WINDOW`` outstanding ids only (the queue is
    FIFO, so those finish first): one indexed query of bounded size, however many are
    outstanding. A poll that finds its whole window finished looks at the next window
    at once instead of sleeping, so the end of a drain is seen within one poll.
    """
    pending = list(ids)
    failed: list[str] = []
    deadline = time.monotonic() + timeout
    while pending:
        window = pending[:POLL_WINDOW]
        finished = dict(route.done(window))
        failed += [job_id for job_id, ok in finished.items() if not ok]
        if finished:
            pending = [job_id for job_id in pending if job_id not in finished]
        if not pending or len(finished) == len(window):
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"{route.name}: {len(pending)} still unfinished after {timeout}s")
        time.sleep(poll_s)
    if failed:
        raise RuntimeError(f"{route.name}: {len(failed)} finished unsuccessfully, e.g. {failed[:3]}")


ROLES = ("client", "worker", "postgres", "redis", "other", "unattributed")


def cpu_by_role(worker_pid: int) -> dict[str, float]:
    """CPU seconds used so far by each role's live processes, from /proc (Linux only).

    client: this process; worker: the celery worker and its pool children; postgres and
    redis: every process of those servers (their work for this bench, and anyone else's);
    other: every other process on the machine; unattributed: the machine's busy time
    (/proc/stat) that no live process's counters hold: interrupts and softirq (loopback
    networking), steal, processes that exited, and the gap between the kernel's
    tick-sampled totals and its per-process counters. Idle is not counted.
    """
    if not Path("/proc/stat").exists():
        return dict.fromkeys(ROLES, math.nan)
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, str, float]] = {}  # pid: (ppid, comm, cpu seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        procs[int(entry.name)] = (int(rest[1]), comm, (int(rest[11]) + int(rest[12])) / tick)
    workers = {worker_pid}
    for _ in range(3):  # the worker's descendants (pool children), a few levels down
        workers |= {pid for pid, (ppid, _, _) in procs.items() if ppid in workers}
    out = dict.fromkeys(ROLES, 0.0)
    ticks = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    out["unattributed"] = (sum(ticks) - ticks[3] - ticks[4]) / tick  # all busy time; processes' share subtracted below
    for pid, (_, comm, cpu) in procs.items():
        if pid == os.getpid():
            role = "client"
        elif pid in workers:
            role = "worker"
        elif comm.startswith("postgres"):
            role = "postgres"
        elif comm.startswith("redis-server"):
            role = "redis"
        else:
            role = "other"
        out[role] += cpu
        out["unattributed"] -= cpu
    return out


@dataclass(frozen=True)
class Round:
    rate: float  # jobs/s
    submit_s: float  # time spent submitting
    cpu_ms: dict[str, float]  # CPU time per job, by role and "total"
    busy: float  # share of the machine's CPUs busy during the round


def throughput(route: Route, n: int, *, poll_s: float, worker_pid: int) -> Round:
    """All n submitted back to back, then drained."""
    cpu0, started = cpu_by_role(worker_pid), time.perf_counter()
    ids = [route.submit(i) for i in range(n)]
    submitted = time.perf_counter()
    wait_all(route, ids, poll_s=poll_s)
    elapsed = time.perf_counter() - started
    cpu1 = cpu_by_role(worker_pid)
    # A process that ended during the round loses its CPU time here: clamp at zero.
    cpu = {role: max(0.0, cpu1[role] - cpu0[role]) / n * 1000 for role in ROLES}
    cpu["total"] = sum(cpu.values())
    return Round(n / elapsed, submitted - started, cpu, cpu["total"] * n / 1000 / (elapsed * (os.cpu_count() or 1)))


def round_trip(route: Route, i: int, *, poll_s: float) -> float:
    """One job on an idle worker, submission to observed completion, in ms."""
    started = time.perf_counter()
    wait_all(route, [route.submit(i)], poll_s=poll_s, timeout=30.0)
    return (time.perf_counter() - started) * 1000


def warm_up(route: Route, concurrency: int, *, poll_s: float) -> None:
    # A burst reaches every pool child (each imports the lifecycle on its first job),
    # then a few single round trips.
    wait_all(route, [route.submit(i) for i in range(10 * concurrency)], poll_s=poll_s)
    for i in range(10):
        round_trip(route, i, poll_s=poll_s)


# --- where the platform's time goes ----------------------------------------------------------


def query_profile(tenant: Any) -> dict[str, list[str]]:
    """SQL statements of one dispatch (client side) and one lifecycle run (worker side).

    The lifecycle runs in this process on a row that is never published, so the worker
    does not race it. The Celery result-backend writes are common to both paths and are
    not included.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from academy.jobs.dispatch import job_dispatch
    from academy.models import AIJob
    from ai_tasks import lifecycle

    with CaptureQueriesContext(connection) as dispatch:
        reply = job_dispatch(job_type="ping", payload={"echo": "profile"}, tenant=tenant, tier=QUEUE)
    wait_all(platform_route(tenant), [reply["job_id"]], poll_s=0.005)

    job = AIJob.objects.create(job_type="ping", payload={"echo": "profile"}, tenant=tenant, tier=QUEUE)
    lifecycle.execute(job_id=job.job_id, tier=QUEUE, worker="bench-profile")  # warms the flag cache
    job = AIJob.objects.create(job_type="ping", payload={"echo": "profile"}, tenant=tenant, tier=QUEUE)
    with CaptureQueriesContext(connection) as run:
        decision = lifecycle.execute(job_id=job.job_id, tier=QUEUE, worker="bench-profile")
    if decision["decision"] != "DONE":
        raise RuntimeError(f"profiled run ended {decision}")
    return {"dispatch": [q["sql"] for q in dispatch], "lifecycle": [q["sql"] for q in run]}


def sql_label(sql: str) -> str:
    words = sql.split()
    verb = words[0].upper() if words else "?"
    if verb in {"SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "SET"}:
        return verb
    after = {"FROM", "INTO", "UPDATE"}
    table = next((w.strip('"') for before, w in pairwise(words) if before.upper() in after), "")
    suffix = " FOR UPDATE" if "FOR UPDATE" in sql else ""
    return f"{verb} {table}{suffix}".strip()


# --- reporting ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Measured:
    rounds: list[Round] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)  # ms, one per round trip

    @property
    def rates(self) -> list[float]:
        return [r.rate for r in self.rounds]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    def median(self, attr: str) -> float:
        return statistics.median(float(getattr(r, attr)) for r in self.rounds)

    def cpu(self, role: str) -> float:
        return statistics.median(r.cpu_ms[role] for r in self.rounds)


def _row(label: str, b: float, p: float, fmt: str, target: str | None = "", ratio: float | None = None) -> str:
    if ratio is None:
        ratio = p / b if b else math.nan  # a role that used no CPU in the bare rounds
    return f"| {label} | {b:{fmt}} | {p:{fmt}} | {ratio:.2f} |" + (f" {target} |" if target is not None else "")


def table(bare: Measured, plat: Measured, args: argparse.Namespace) -> str:
    n, k = args.jobs, len(bare.lat)
    lines = [
        "| metric | bare Celery (`bench.noop`) | platform (`ping` job) | platform/bare | target |",
        "|---|---:|---:|---:|---|",
        _row(f"throughput, {n} submitted at once, median of {args.rounds} rounds (jobs/s) [1]", bare.rate, plat.rate,
             ".1f", ">= 0.5", paired_ratio(bare, plat)),
        _row(f"latency p50, {k} sequential round trips (ms)", percentile(bare.lat, 50), percentile(plat.lat, 50),
             ".1f", "<= 2.0"),
        _row(f"latency p90, {k} sequential round trips (ms)", percentile(bare.lat, 90), percentile(plat.lat, 90),
             ".1f"),
        _row(f"latency p99, {k} sequential round trips (ms)", percentile(bare.lat, 99), percentile(plat.lat, 99),
             ".1f"),
        _row("latency mean (ms)", statistics.fmean(bare.lat), statistics.fmean(plat.lat), ".1f"),
    ]  # fmt: skip
    lines.append(
        "\n[1] Ratio: the median over rounds of platform/bare, each platform round run right after its bare\n"
        "round, so the least exposed to drift and to other load; the ratio of the two medians is printed below."
    )
    return "\n".join(lines)


def paired_ratio(bare: Measured, plat: Measured) -> float:
    return statistics.median(p / b for b, p in zip(bare.rates, plat.rates, strict=True))


def cpu_table(bare: Measured, plat: Measured, args: argparse.Namespace) -> str:
    """Where the time goes while draining: the throughput rounds, medians over rounds."""
    lines = [
        "| during the throughput rounds (medians) | bare | platform | platform/bare |",
        "|---|---:|---:|---:|",
        _row(f"time to submit {args.jobs} (s)", bare.median("submit_s"), plat.median("submit_s"), ".2f", None),
        _row("machine CPU busy (%)", bare.median("busy") * 100, plat.median("busy") * 100, ".0f", None),
        *(_row(f"CPU per job, {role} (ms)", bare.cpu(role), plat.cpu(role), ".2f", None) for role in (*ROLES, "total")),
    ]
    return "\n".join(lines)


def verdict(bare: Measured, plat: Measured) -> str:
    tput, p50 = paired_ratio(bare, plat), percentile(plat.lat, 50) / percentile(bare.lat, 50)
    return (
        f"throughput ratio {tput:.2f} ({'meets' if tput >= 0.5 else 'MISSES'} >= 0.5; ratio of the medians "
        f"{plat.rate / bare.rate:.2f}); p50 latency ratio {p50:.2f} ({'meets' if p50 <= 2.0 else 'MISSES'} <= 2.0)\n"
        f"throughput per round (jobs/s): bare {', '.join(f'{r:.1f}' for r in bare.rates)}; "
        f"platform {', '.join(f'{r:.1f}' for r in plat.rates)}"
    )


def command_line(args: argparse.Namespace) -> str:
    argv = [
        python_shown(),
        "-m",
        "bench.noop_roundtrip",
        "--jobs",
        str(args.jobs),
        "--concurrency",
        str(args.concurrency),
    ]
    argv += ["--rounds", str(args.rounds), "--samples", str(args.samples)]
    argv += ["--poll-ms", f"{args.poll_ms:g}", "--latency-poll-ms", f"{args.latency_poll_ms:g}"]
    return shlex.join(argv)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.noop_roundtrip", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--jobs", type=int, default=300, help="jobs per throughput round (default 300)")
    add("--concurrency", type=int, default=2, help="worker pool processes, celery -c (default 2)")
    add("--rounds", type=int, default=5, help="throughput rounds per path, alternating; the median counts (default 5)")
    add("--samples", type=int, default=200, help="sequential round trips per path, interleaved (default 200)")
    add("--poll-ms", type=float, default=10.0, help="completion poll interval while draining (default 10)")
    add("--latency-poll-ms", type=float, default=1.0, help="completion poll interval for round trips (default 1)")
    add("--profile", action="store_true", help="also print every SQL statement of one platform job")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    began = time.perf_counter()
    drain_s, trip_s = args.poll_ms / 1000, args.latency_poll_ms / 1000
    broker = bench_setup()

    from django.db import connection

    from academy.services.tenants import tenant_create

    tenant, _ = tenant_create(slug="bench", username="bench")
    routes = (bare_route(), platform_route(tenant))
    results = {route.name: Measured() for route in routes}

    log_dir = Path(tempfile.mkdtemp(prefix="academy-bench-"))
    worker = Worker(args.concurrency, log_dir / "worker.log")
    worker.start()
    try:
        worker.wait_ready()
        ready = time.perf_counter()
        for route in routes:
            warm_up(route, args.concurrency, poll_s=trip_s)
        for _ in range(args.rounds):  # alternating, so drift hits both paths alike
            for route in routes:
                results[route.name].rounds.append(throughput(route, args.jobs, poll_s=drain_s, worker_pid=worker.pid))
        for i in range(args.samples):  # interleaved, likewise
            for route in routes:
                results[route.name].lat.append(round_trip(route, i, poll_s=trip_s))
        measured = time.perf_counter()
        profile = query_profile(tenant)
    finally:
        worker.stop()

    bare, plat = results["bare"], results["platform"]
    pg = connection.cursor().connection.info.server_version
    print()
    print(table(bare, plat, args))
    print()
    print(verdict(bare, plat))
    print()
    print(cpu_table(bare, plat, args))
    print()
    print(f"command: {command_line(args)}")
    print(f"worker:  {shlex.join(['celery', *worker.argv[3:]])}  (log: {worker.log_path})")
    print(
        f"setup:   {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, PostgreSQL {pg // 10000}.{pg % 10000}, "
        f"Redis {broker.info('server')['redis_version']}; broker {BROKER_URL}, database {DATABASE_URL}"
    )
    print(
        f"runtime: {time.perf_counter() - began:.1f}s in all (setup and worker start {ready - began:.1f}s, "
        f"warm-up and measurement {measured - ready:.1f}s)"
    )
    print()
    for part, statements in profile.items():
        labels: dict[str, int] = {}
        for sql in statements:
            labels[sql_label(sql)] = labels.get(sql_label(sql), 0) + 1
        summary = ", ".join(f"{label} x{count}" if count > 1 else label for label, count in labels.items())
        print(f"SQL per platform job, {part}: {len(statements)} statements: {summary}")
        if args.profile:
            for sql in statements:
                print(f"    {sql[:200]}")
    print("(plus Celery's result-backend write of SUCCESS for the bare task; run_job stores none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
