"""Chaos scenarios, shared by the CI suite (tests/chaos) and the full-size bench (bench/chaos.py).

The machinery: a private ``redis-server`` (:class:`RedisServer`), real ``celery worker``
pools on it (:class:`Cluster`), the sweeper run every second from a thread of this
process (:class:`Sweeper`) and a monkey that SIGKILLs pool children and whole workers
(:class:`Monkey`). Each ``scenario_*`` function takes a :class:`Chaos` context and a
size, does its damage, waits for every job to settle and returns :class:`Figures`:
what it did, how long the jobs took to drain, and ``problems``, the broken guarantees
(an empty list is a pass). The callers decide what to do with them: the tests assert
``problems == []``, the bench prints everything.

Everything here runs inside a configured Django (the test settings or the bench's).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.chaos.probes import RUNS_LOG

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MODULE = "tests.chaos.settings"
#: pool: concurrency. Tier pools run two children, so one can be killed while the other works.
POOLS: dict[str, int] = {"lite": 2, "basic": 2, "premium": 2, "domain": 1}
TIERS = ("lite", "basic", "premium")


# --- infrastructure -----------------------------------------------------------------------------


def free_port(start: int = 6390, stop: int = 6490) -> int:
    for port in range(start, stop):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{stop}")


class RedisServer:
    """A throw-away ``redis-server``: no snapshots, no AOF, so a restart loses every message."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.log_path}")
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on {self.port} did not answer; see {self.log_path}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> None:
        self.kill()
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == pid and rest[0] not in ("Z", "X"):
            kids.append(int(entry.name))
    return kids


class Cluster:
    """One ``celery worker`` per pool, each in its own session so it can be killed whole."""

    def __init__(self, *, broker_url: str, database_url: str, log_dir: Path, pools: dict[str, int] = POOLS) -> None:
        self.broker_url = broker_url
        self.database_url = database_url
        self.log_dir = log_dir
        self.pools = dict(pools)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            AI_PLUGIN_MODULES="tests.probes,tests.chaos.probes",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
        )
        return env

    def log_path(self, pool: str) -> Path:
        return self.log_dir / f"{pool}.log"

    def start(self, pool: str) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "tests.chaos.worker_app", "worker", "-Q", pool,
                "-n", f"chaos-{pool}@%h", "-c", str(self.pools[pool]), "--loglevel", "INFO",
                "--without-gossip", "--without-mingle"]  # fmt: skip
        with self.log_path(pool).open("ab") as log:
            self.procs[pool] = subprocess.Popen(
                argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start_all(self) -> None:
        for pool in self.pools:
            self.start(pool)

    def ensure_running(self) -> None:
        for pool in self.pools:
            if pool not in self.procs:
                self.start(pool)
        self.revive()

    def wait_ready(self, timeout: float = 90.0) -> None:
        from config.celery import app

        wanted = {f"chaos-{pool}@" for pool in self.pools}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pool, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {pool} exited with {proc.returncode}; see {self.log_path(pool)}")
            # A fresh connection each time: a pooled one may predate a broker restart.
            try:
                with app.connection_for_write() as conn:
                    replies = app.control.ping(timeout=1.0, connection=conn) or []
            except Exception:  # the broker is still coming back
                time.sleep(0.5)
                continue
            names = {name.split("@")[0] + "@" for reply in replies for name in reply}
            if wanted <= names:
                return
        raise TimeoutError(f"workers {sorted(wanted)} did not answer a ping; see {self.log_dir}")

    def children(self, pool: str) -> list[int]:
        proc = self.procs.get(pool)
        return _children(proc.pid) if proc is not None and proc.poll() is None else []

    def kill_child(self, pool: str, rng: random.Random) -> int | None:
        """SIGKILL one pool child (the parent starts a new one); its message is requeued."""
        kids = self.children(pool)
        if not kids:
            return None
        pid = rng.choice(kids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def kill_worker(self, pool: str) -> None:
        """SIGKILL a whole worker (parent and children), then start it again."""
        proc = self.procs.get(pool)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.start(pool)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def revive(self) -> list[str]:
        """What a process supervisor does in production (docs/deployment.md): start again any
        pool whose worker exited. Returns "pool (exit code)" for each one restarted."""
        revived = []
        for pool, proc in list(self.procs.items()):
            if proc.poll() is not None:
                revived.append(f"{pool} (exit {proc.returncode})")
                self.start(pool)
        return revived

    def log_tail(self, pool: str, lines: int = 25) -> str:
        try:
            text = self.log_path(pool).read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path(pool)})"
        return "\n".join(text.splitlines()[-lines:])

    def log_lines(self, needle: str) -> list[str]:
        lines: list[str] = []
        for pool in self.pools:
            try:
                text = self.log_path(pool).read_text(errors="replace")
            except OSError:
                continue
            lines += [line for line in text.splitlines() if needle in line]
        return lines


def _detach_pools() -> list[Any]:
    from config.celery import app

    state = app.__dict__  # private: the app builds a new pool for the current URL on next use
    used = [state.get("_pool")]
    state["_pool"] = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        used.append(amqp._producer_pool)
        amqp._producer_pool = None
    return [pool for pool in used if pool is not None]


@contextmanager
def use_broker(url: str) -> Iterator[None]:
    """This process publishes to ``url`` inside the block, and to its usual broker after it.

    ``broker_read_url``/``broker_write_url`` win over ``broker_url``, which the test
    settings pin through the ``CELERY_BROKER_URL`` environment variable.
    """
    from config.celery import app

    saved = {key: app.conf.get(key) for key in ("broker_read_url", "broker_write_url")}
    app.conf.update(broker_read_url=url, broker_write_url=url)
    _detach_pools()
    try:
        yield
    finally:
        app.conf.update(saved)
        # kombu keeps the private pools in its registry (keyed by URL) for the next block.
        _detach_pools()


class Sweeper(threading.Thread):
    """``sweep_once()`` every ``every`` seconds, as beat would run it; survives any error."""

    def __init__(self, every: float = 1.0) -> None:
        super().__init__(name="chaos-sweeper", daemon=True)
        self.every = every
        self.halt = threading.Event()
        self.sweeps = 0
        self.errors: list[str] = []
        self.totals: Counter[str] = Counter()

    def run(self) -> None:
        from django.db import connection

        from academy.jobs.sweep import sweep_once

        try:
            while not self.halt.wait(self.every):
                try:
                    connection.close_if_unusable_or_obsolete()
                    self.totals.update(sweep_once())
                    self.sweeps += 1
                except Exception as exc:  # a dropped DB connection, a broker that is down
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


class Monkey(threading.Thread):
    """Every ``every`` s SIGKILL a random pool child; every ``whole_every``-th time a whole worker."""

    def __init__(self, cluster: Cluster, *, every: float = 2.0, whole_every: int = 5, seed: int = 6) -> None:
        super().__init__(name="chaos-monkey", daemon=True)
        self.cluster = cluster
        self.every = every
        self.whole_every = whole_every
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.kills = 0
        self.worker_restarts = 0

    def run(self) -> None:
        n = 0
        pools = sorted(self.cluster.pools)
        while not self.halt.wait(self.every):
            n += 1
            pool = self.rng.choice(pools)
            if self.whole_every and n % self.whole_every == 0:
                self.cluster.kill_worker(pool)
                self.worker_restarts += 1
            elif self.cluster.kill_child(pool, self.rng) is not None:
                self.kills += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


# --- what a scenario works with and reports -------------------------------------------------------


@dataclass
class Chaos:
    cluster: Cluster
    redis: RedisServer
    runs_dir: Path
    tenant: Any


@dataclass
class Figures:
    scenario: str
    jobs: int = 0
    kills: int = 0
    worker_restarts: int = 0
    broker_restarts: int = 0
    db_drops: int = 0
    drain_s: float = 0.0
    lost: int = 0
    duplicates: int = 0
    overlaps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        base = (
            f"{self.scenario}: jobs={self.jobs} kills={self.kills} worker_restarts={self.worker_restarts} "
            f"broker_restarts={self.broker_restarts} db_drops={self.db_drops} drain={self.drain_s:.1f}s "
            f"lost={self.lost} duplicates={self.duplicates} overlaps={self.overlaps}"
        )
        extra = " ".join(f"{k}={v}" for k, v in self.extra.items())
        problems = "".join(f"\nproblem: {problem}" for problem in self.problems)
        return f"{base} {extra}".strip() + problems


@dataclass(frozen=True)
class Sizes:
    kill_jobs: int = 150
    sheets: int = 3
    broker_jobs: int = 60
    db_jobs: int = 60
    poison_pings: int = 24
    slow_sleep: float = 8.0

    @classmethod
    def full(cls, jobs: int) -> Sizes:
        return cls(
            kill_jobs=jobs,
            sheets=max(3, jobs // 100),
            broker_jobs=max(60, jobs // 4),
            db_jobs=max(60, jobs // 4),
            poison_pings=max(24, jobs // 20),
        )


# --- helpers ------------------------------------------------------------------------------------------


def dispatch(
    chaos: Chaos, job_type: str, tier: str, payload: dict[str, Any], *, max_attempts: int | None = None
) -> str:
    from academy.jobs.dispatch import job_dispatch

    reply = job_dispatch(job_type=job_type, payload=payload, tenant=chaos.tenant, tier=tier, max_attempts=max_attempts)
    if not reply["ok"] or reply["tier"] != tier:
        raise RuntimeError(f"dispatch refused: {reply}")
    return str(reply["job_id"])


def dispatch_mix(chaos: Chaos, n: int, *, label: str, sleep: float, tiers: tuple[str, ...] = TIERS) -> list[str]:
    """n jobs over the tiers: every third a ``ping``, the rest ``chaos_record`` (which logs its runs)."""
    ids = []
    for i in range(n):
        tier = tiers[i % len(tiers)]
        if i % 3 == 2:
            ids.append(dispatch(chaos, "ping", tier, {"echo": f"{label}-{i}"}))
        else:
            payload = {"dir": str(chaos.runs_dir), "tag": f"{label}-{i}", "sleep": sleep}
            ids.append(dispatch(chaos, "chaos_record", tier, payload))
    return ids


def unfinished(ids: list[str]) -> list[str]:
    from django.db import connection

    from academy.models import TERMINAL_STATUSES, AIJob

    connection.close_if_unusable_or_obsolete()
    finished = AIJob.objects.filter(job_id__in=ids, status__in=list(TERMINAL_STATUSES))
    done = set(finished.values_list("job_id", flat=True))
    return [job_id for job_id in ids if job_id not in done]


def wait_all(ids: list[str], *, timeout: float, every: float = 0.5, during: Callable[[], None] | None = None) -> float:
    """Seconds until every job is terminal, or ``timeout`` if some never are."""
    started = time.monotonic()
    pending = list(ids)
    while pending:
        if time.monotonic() - started > timeout:
            return timeout
        if during is not None:
            during()
        time.sleep(every)
        try:
            pending = unfinished(pending)
        except Exception:  # the connection was just dropped on purpose
            from django.db import connection

            connection.close()
    return time.monotonic() - started


@dataclass
class Runs:
    """chaos_record runs per tag, from runs.log."""

    started: dict[str, list[tuple[int, int, float, bool]]]  # tag: (pid, attempt, t, overlap)
    ended: dict[str, list[tuple[int, int, float]]]

    def overlaps(self) -> int:
        """Runs that found another live run of their job (marker), plus finished runs whose spans cross."""
        flagged = sum(1 for runs in self.started.values() for run in runs if run[3])
        crossing = 0
        for tag, ends in self.ended.items():
            spans = []
            for pid, attempt, t_end in ends:
                t0 = next((t for p, a, t, _ in self.started.get(tag, []) if (p, a) == (pid, attempt)), None)
                if t0 is not None:
                    spans.append((t0, t_end))
            spans.sort()
            crossing += sum(1 for a, b in pairwise(spans) if b[0] < a[1])
        return flagged + crossing


def runs_read(runs_dir: Path) -> Runs:
    started: dict[str, list[tuple[int, int, float, bool]]] = defaultdict(list)
    ended: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    path = runs_dir / RUNS_LOG
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts[0] == "start":
                started[parts[1]].append((int(parts[2]), int(parts[3]), float(parts[4]), parts[5] == "overlap=1"))
            elif parts[0] == "end":
                ended[parts[1]].append((int(parts[2]), int(parts[3]), float(parts[4])))
    return Runs(dict(started), dict(ended))


def job_summary(ids: list[str]) -> tuple[Counter[str], int, int]:
    """(statuses, jobs with more than one AIResult, jobs whose final status is FAILED for a publish error)."""
    from django.db.models import Count

    from academy.models import AIJob

    jobs = AIJob.objects.filter(job_id__in=ids)
    statuses = Counter(jobs.values_list("status", flat=True))
    doubles = jobs.annotate(n=Count("result")).filter(n__gt=1).count()
    publish_failed = jobs.filter(status="FAILED", error_message__startswith="publish failed").count()
    return statuses, doubles, publish_failed


def callback_applications(job_ids: list[str]) -> Counter[str]:
    """How many domain-callback task results say a job's callback was applied, per job:
    ``applied: true`` for one job, or its id in ``applied`` for a message of several."""
    from django_celery_results.models import TaskResult

    applied: Counter[str] = Counter()
    wanted = set(job_ids)
    names = ["ai_tasks.domain.job_callback", "ai_tasks.domain.job_callbacks"]
    for raw in TaskResult.objects.filter(task_name__in=names, status="SUCCESS").values_list("result", flat=True):
        try:
            body = json.loads(raw or "null")
        except ValueError:
            continue
        if not isinstance(body, dict):
            continue
        if body.get("applied") is True and body.get("job_id") in wanted:
            applied[body["job_id"]] += 1
        elif isinstance(body.get("applied"), list):
            applied.update(j for j in body["applied"] if j in wanted)
    return applied


def _check_jobs(fig: Figures, ids: list[str], *, expect: str | None = "DONE") -> None:
    statuses, doubles, publish_failed = job_summary(ids)
    not_terminal = len(unfinished(ids))
    fig.lost = not_terminal + publish_failed
    fig.duplicates += doubles
    fig.extra["statuses"] = dict(sorted(statuses.items()))
    if not_terminal:
        fig.problems.append(f"{not_terminal} jobs never reached a terminal state")
    if publish_failed:
        fig.problems.append(f"{publish_failed} jobs FAILED because a re-publish hit the broker while it was down")
    if doubles:
        fig.problems.append(f"{doubles} jobs have more than one result")
    if expect is not None:
        wrong = sum(n for status, n in statuses.items() if status != expect) - not_terminal
        if wrong > 0:
            fig.problems.append(f"{wrong} jobs ended other than {expect}: {dict(statuses)}")


def _check_runs(fig: Figures, runs_dir: Path) -> Runs:
    runs = runs_read(runs_dir)
    fig.overlaps = runs.overlaps()
    fig.extra["runs"] = sum(len(r) for r in runs.started.values())
    fig.extra["reruns"] = sum(len(r) - 1 for r in runs.started.values() if len(r) > 1)
    if fig.overlaps:
        fig.problems.append(f"{fig.overlaps} runs overlapped another run of the same job")
    return runs


def _exam_with_sheets(chaos: Chaos, sheets: int) -> tuple[Any, list[Any]]:
    from academy.services.exams import exam_create
    from academy.services.omr_batches import Upload
    from workers.omr.render import filled_sheet_jpeg
    from workers.omr.template import default_template

    template = default_template()
    key = {q.label: q.values[(i * 3) % len(q.values)] for i, q in enumerate(template.questions)}
    exam = exam_create(
        tenant=chaos.tenant,
        title="chaos",
        template="default",
        answer_key={"questions": {label: [answer] for label, answer in key.items()}},
    )
    uploads = []
    for i in range(sheets):
        # Each student gets question (i % 40) + 1 wrong: 39 of 40.
        wrong = str(i % len(template.questions) + 1)
        answers = {**key, wrong: "1" if key[wrong] != "1" else "2"}
        jpeg = filled_sheet_jpeg(template, student_id=f"2026{i:04d}", answers=answers)
        uploads.append(Upload(f"sheet-{i}.jpg", jpeg))
    return exam, uploads


# --- the scenarios --------------------------------------------------------------------------------------


def scenario_worker_kills(
    chaos: Chaos,
    *,
    jobs: int,
    sheets: int,
    sleep: float = 0.4,
    every: float = 1.5,
    seed: int = 6,
    timeout: float = 600.0,
) -> Figures:
    """Jobs on every tier and an OMR batch while pool children and whole workers are SIGKILLed."""
    from academy.models import AIJob, Grade, OmrBatch
    from academy.services.omr_batches import omr_batch_create

    fig = Figures("worker_kills")
    exam, uploads = _exam_with_sheets(chaos, sheets)
    monkey = Monkey(chaos.cluster, every=every, whole_every=5, seed=seed)
    started = time.monotonic()
    monkey.start()
    try:
        batch, _ = omr_batch_create(tenant=chaos.tenant, exam=exam, uploads=uploads)
        ids = dispatch_mix(chaos, jobs, label="kill", sleep=sleep)
        sheet_jobs = [str(j) for j in batch.submissions.exclude(job=None).values_list("job__job_id", flat=True)]
        everything = ids + sheet_jobs

        def batch_graded() -> bool:
            return OmrBatch.objects.filter(pk=batch.pk, graded_at__isnull=False).exists()

        fig.drain_s = wait_all(everything, timeout=timeout)
        # The batch is graded by the last sheet's callback, a moment after the jobs end.
        deadline = time.monotonic() + 60
        while not batch_graded() and time.monotonic() < deadline:
            time.sleep(0.5)
        fig.extra["graded_s"] = round(time.monotonic() - started, 1)
    finally:
        monkey.stop()
    fig.jobs = len(everything)
    fig.kills, fig.worker_restarts = monkey.kills, monkey.worker_restarts
    _check_jobs(fig, ids)
    _check_jobs_terminal_only(fig, sheet_jobs)
    _check_runs(fig, chaos.runs_dir)
    # Exactly one grade per sheet, graded once; every callback applied exactly once.
    grades = list(Grade.objects.filter(submission__batch=batch).values_list("times_graded", "score"))
    fig.extra["sheets"] = sheets
    fig.extra["grades"] = len(grades)
    if not batch_graded():
        fig.problems.append("the OMR batch was never graded")
    if len(grades) != sheets or any(times != 1 for times, _ in grades):
        fig.problems.append(f"grades {grades} for {sheets} sheets (want one each, times_graded == 1)")
        fig.duplicates += sum(1 for times, _ in grades if times > 1)
    scores = sorted(score for _, score in grades)
    if scores != [39.0] * len(grades):
        fig.problems.append(f"unexpected scores {scores}")
    called = AIJob.objects.filter(job_id__in=sheet_jobs, callback_done_at__isnull=False).count()
    applied = callback_applications(sheet_jobs)
    fig.extra["callbacks_done"] = called
    fig.extra["callback_results_applied"] = sum(applied.values())
    if called != sheets:
        fig.problems.append(f"callback_done_at set on {called} of {sheets} sheet jobs")
    twice = [job_id for job_id, n in applied.items() if n > 1]
    if twice:
        fig.duplicates += len(twice)
        fig.problems.append(f"callbacks applied more than once: {twice}")
    return fig


def _check_jobs_terminal_only(fig: Figures, ids: list[str]) -> None:
    left = unfinished(ids)
    if left:
        fig.lost += len(left)
        fig.problems.append(f"{len(left)} sheet jobs never reached a terminal state")


def _first_done_per_tier(
    ids_by_tier: dict[str, list[str]], since: float, timeout: float, during: Callable[[], None] | None = None
) -> dict[str, float]:
    """Seconds after ``since`` (monotonic) at which each tier finished its first job."""
    from academy.models import AIJob

    firsts: dict[str, float] = {}
    deadline = since + timeout
    while len(firsts) < len(ids_by_tier) and time.monotonic() < deadline:
        if during is not None:
            during()
        for tier, ids in ids_by_tier.items():
            if tier not in firsts and AIJob.objects.filter(job_id__in=ids, status="DONE").exists():
                firsts[tier] = round(time.monotonic() - since, 1)
        time.sleep(0.2)
    return firsts


def scenario_broker_restart(chaos: Chaos, *, jobs: int, down_s: float = 3.0, deadline: float = 60.0) -> Figures:
    """Redis is SIGKILLed mid-run (every queued and unacked message with it) and started again.

    The cluster is supervised as production is: a worker process that exits is started
    again (kombu 5.7 can exit on a broker restart, docs/reliability-chaos.md finding 2),
    and each such exit is recorded. A pool whose worker stays up but consumes nothing is
    the failure this scenario exists to catch; its log's tail goes into the problem.
    """
    fig = Figures("broker_restart")
    exits: list[str] = []

    def supervise() -> None:
        exits.extend(chaos.cluster.revive())

    half = jobs // 2
    started = time.monotonic()
    before = dispatch_mix(chaos, half, label="before", sleep=1.0)
    time.sleep(1.0)
    fig.extra["in_flight_at_kill"] = len(unfinished(before))
    chaos.redis.kill()
    time.sleep(down_s)
    chaos.redis.start()
    chaos.redis.restarts += 1
    fig.broker_restarts = 1
    restarted = time.monotonic()
    after: dict[str, list[str]] = {tier: [] for tier in TIERS}
    for i, job_id in enumerate(dispatch_mix(chaos, jobs - half, label="after", sleep=0.2)):
        after[TIERS[i % len(TIERS)]].append(job_id)
    # The pain point: a pool that reconnected but silently stopped consuming.
    firsts = _first_done_per_tier(after, restarted, deadline, during=supervise)
    fig.extra["first_new_done_s"] = firsts
    stalled = [tier for tier in TIERS if tier not in firsts]
    if stalled:
        tails = "".join(f"\n--- {tier} worker log (tail) ---\n{chaos.cluster.log_tail(tier)}" for tier in stalled)
        fig.problems.append(
            f"pools {stalled} finished no new job within {deadline:.0f}s of the broker restart; "
            f"workers restarted: {exits or 'none'}{tails}"
        )
    new_ids = [job_id for ids in after.values() for job_id in ids]
    new_drain = wait_all(new_ids, timeout=deadline, during=supervise)
    fig.extra["new_jobs_drain_s"] = round(new_drain, 1)
    if new_drain >= deadline:
        fig.problems.append(f"new jobs did not all finish within {deadline:.0f}s of the restart")
    all_ids = before + new_ids
    wait_all(all_ids, timeout=deadline, during=supervise)
    fig.extra["workers_exited_and_restarted"] = exits
    fig.drain_s = time.monotonic() - started
    fig.jobs = len(all_ids)
    _check_jobs(fig, all_ids)
    _check_runs(fig, chaos.runs_dir)
    return fig


def scenario_db_drops(
    chaos: Chaos, *, jobs: int, drops: int = 3, every: float = 1.0, timeout: float = 300.0
) -> Figures:
    """Every connection to the database but this one is terminated, a few times, mid-run."""
    from django.db import connection
    from django_celery_results.models import TaskResult

    fig = Figures("db_drops")
    name = connection.settings_dict["NAME"]
    started = time.monotonic()
    ids = dispatch_mix(chaos, jobs, label="db", sleep=0.5)
    terminated = []
    for _ in range(drops):
        time.sleep(every)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            terminated.append(cursor.fetchone()[0])
        fig.db_drops += 1
    fig.extra["in_flight_after_drops"] = len(unfinished(ids))
    fig.drain_s = wait_all(ids, timeout=timeout)
    fig.jobs = len(ids)
    fig.extra["connections_terminated"] = terminated
    fig.extra["task_failures_recorded"] = TaskResult.objects.filter(
        task_name__endswith=".run_job", status="FAILURE"
    ).count()
    fig.drain_s = time.monotonic() - started if fig.drain_s < timeout else timeout
    _check_jobs(fig, ids)
    _check_runs(fig, chaos.runs_dir)
    return fig


def scenario_poison(chaos: Chaos, *, pings: int, max_attempts: int = 3, timeout: float = 90.0) -> Figures:
    """probe_kill SIGKILLs its own child on every attempt, on each tier; ping jobs keep flowing."""
    from academy.models import AIJob

    fig = Figures("poison")
    logs = {tier: chaos.runs_dir / f"poison-{tier}.log" for tier in TIERS}
    poison = {
        tier: dispatch(chaos, "probe_kill", tier, {"log": str(logs[tier])}, max_attempts=max_attempts) for tier in TIERS
    }
    started = time.monotonic()
    ping_ids: list[str] = []
    # Pings spread over the poison jobs' life (about max_attempts leases), then drained.
    spacing = max(0.05, (max_attempts * 5.0) / max(1, pings))
    for i in range(pings):
        ping_ids.append(dispatch(chaos, "ping", TIERS[i % 3], {"echo": f"poison-{i}"}))
        time.sleep(spacing)
    wait_all(list(poison.values()) + ping_ids, timeout=timeout)
    fig.drain_s = time.monotonic() - started
    fig.jobs = len(poison) + len(ping_ids)
    _check_jobs_terminal_only(fig, list(poison.values()) + ping_ids)
    want = {"lite": "DONE", "basic": "DONE", "premium": "FAILED"}
    ends = {}
    for tier, job_id in poison.items():
        job = AIJob.objects.get(job_id=job_id)
        runs = len(logs[tier].read_text().splitlines()) if logs[tier].exists() else 0
        ends[tier] = f"{job.status} poison={job.flags.get('poison')} attempts={job.attempt_count} runs={runs}"
        if job.status != want[tier] or not job.flags.get("poison"):
            fig.problems.append(f"{tier} poison job ended {job.status} flags={job.flags} (want {want[tier]}+poison)")
        if want[tier] == "DONE" and not job.needs_review:
            fig.problems.append(f"{tier} poison job is not marked for review")
        if job.attempt_count != max_attempts or runs != max_attempts:
            fig.problems.append(f"{tier} poison job: {job.attempt_count} attempts, {runs} runs (want {max_attempts})")
        fig.kills += runs
    fig.extra["poison"] = ends
    latencies = []
    for created, finished, status in AIJob.objects.filter(job_id__in=ping_ids).values_list(
        "created_at", "finished_at", "status"
    ):
        if status != "DONE" or finished is None:
            fig.problems.append(f"a ping ended {status}")
            continue
        latencies.append((finished - created).total_seconds())
    if latencies:
        fig.extra["ping_latency_p50_s"] = round(statistics.median(latencies), 2)
        fig.extra["ping_latency_max_s"] = round(max(latencies), 2)
    return fig


def scenario_slow(chaos: Chaos, *, sleep: float, timeout: float = 60.0) -> Figures:
    """A run longer than the broker's visibility timeout: Redis hands the message out again."""
    from academy.models import AIJob

    fig = Figures("slow_job")
    tag = f"slow-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    job_id = dispatch(chaos, "chaos_record", "basic", {"dir": str(chaos.runs_dir), "tag": tag, "sleep": sleep})
    wait_all([job_id], timeout=timeout)
    fig.drain_s = time.monotonic() - started
    fig.jobs = 1
    _check_jobs(fig, [job_id])
    runs = _check_runs(fig, chaos.runs_dir)
    job = AIJob.objects.get(job_id=job_id)
    starts, ends = len(runs.started.get(tag, [])), len(runs.ended.get(tag, []))
    skipped = len(chaos.cluster.log_lines(f"ai_claim_skipped job_id={job_id}"))
    fig.extra.update(runs_started=starts, runs_finished=ends, redelivered_and_skipped=skipped)
    fig.extra["attempts"] = job.attempt_count
    if (starts, ends, job.attempt_count) != (1, 1, 1):
        fig.problems.append(f"the slow job started {starts}x, finished {ends}x, attempts {job.attempt_count}")
    if skipped < 1:
        fig.problems.append("the broker never redelivered the slow job's message (the scenario proved nothing)")
    return fig
