"""HTTP dispatch under sustained load: ping jobs POSTed to /api/v1/jobs/ at a fixed rate.

Run from the repository root (needs ``wrk``: ``apt-get install -y wrk``)::

    .venv/bin/python -m bench.load_http [--rate 200] [--duration 60] [--tenants 4]

It creates and migrates the ``academy_bench`` database (emptying the job tables),
flushes Redis db 12 (``BENCH_DATABASE_URL`` and ``BENCH_BROKER_URL`` point it elsewhere,
e.g. to run beside another benchmark), creates ``--tenants`` tenants (premium
subscribers, so a premium request stays premium) and starts, with the production-like
environment of ``bench.noop_roundtrip.BENCH_ENV`` (DEBUG off, Postgres, Redis):

- gunicorn ``config.wsgi`` with ``--web-workers`` sync workers on a free port;
- one real ``celery worker`` per tier (``-Q lite|basic|premium -c 2``) and the domain
  pool (``-Q domain -c 1``). Beat is not started: the run needs no recovery.

Then ``wrk`` with ``bench/load_http.lua`` sends ``--rate`` requests/s for ``--duration``
seconds, paced wrk2-style inside the script (plain wrk has no rate option), rotating the
tenants' tokens and the three tiers, with the ``X-Forwarded-Proto: https`` header a TLS
load balancer would add. After wrk stops, the job table is polled until every job the
load created is terminal. Printed: requests sent and completed, the achieved rate (wrk's
and per second of job creation in the database), 5xx and every non-2xx code, wrk's
request latency percentiles, jobs by status and tier, the drain time after the load
stopped, dispatch-to-finish lag, and CPU by process group during the load and the drain
(from /proc). Exits 1 on any non-2xx answer or socket error (a job left unfinished raises).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.noop_roundtrip import ROOT, Worker, bench_setup, python_shown, tables_reset

LUA = ROOT / "bench" / "load_http.lua"
TIERS = ("lite", "basic", "premium")


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Web:
    """gunicorn serving config.wsgi, in its own session."""

    def __init__(self, port: int, workers: int, log_path: Path) -> None:
        self.argv = [
            sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--backlog", "2048", "--timeout", "60",
        ]  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, token: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if api(self.url, token, "GET")[0] == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"gunicorn did not answer within {timeout}s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def api(base: str, token: str, method: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{base}/api/v1/jobs/",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json", "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --- CPU by process group, from /proc ----------------------------------------------------------


def proc_table() -> dict[int, tuple[int, str, float]]:
    """pid: (ppid, comm, CPU seconds so far) for every live process.

    For this process the figure is its children's time (cutime + cstime): wrk's, once
    it has exited and been waited for (this process's own polling is left out).
    """
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        fields = (13, 14) if int(entry.name) == os.getpid() else (11, 12)
        cpu = sum(int(rest[f]) for f in fields) / tick
        procs[int(entry.name)] = (int(rest[1]), raw[raw.index("(") + 1 : raw.rindex(")")], cpu)
    return procs


def machine_busy() -> float:
    tick = os.sysconf("SC_CLK_TCK")
    ticks = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / tick


def cpu_by_group(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far per group: each named process tree, postgres, redis, the rest."""
    procs = proc_table()
    owner: dict[int, str] = {}
    for name, pid in roots.items():
        tree = {pid}
        for _ in range(4):
            tree |= {p for p, (ppid, _, _) in procs.items() if ppid in tree}
        owner.update(dict.fromkeys(tree, name))
    owner[os.getpid()] = "wrk"
    out: dict[str, float] = {}
    for pid, (_, comm, cpu) in procs.items():
        group = owner.get(pid) or (
            "postgres" if comm.startswith("postgres") else "redis" if comm.startswith("redis") else "other"
        )
        out[group] = out.get(group, 0.0) + cpu
    out["unattributed"] = machine_busy() - sum(out.values())  # irq/softirq (loopback), other exited processes
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: max(0.0, after.get(k, 0.0) - before.get(k, 0.0)) for k in after}


def cpu_lines(delta: dict[str, float], seconds: float) -> list[str]:
    cores = os.cpu_count() or 1
    total = sum(delta.values())
    lines = [f"    {'group':<22} {'CPU s':>8} {'% of 1 core':>12}"]
    for group, cpu in sorted(delta.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {group:<22} {cpu:8.1f} {cpu / seconds * 100:11.0f}%")
    lines.append(f"    {'total':<22} {total:8.1f} {total / seconds * 100:11.0f}%  (machine: {cores} cores)")
    return lines


# --- the load ------------------------------------------------------------------------------------


def wrk_run(url: str, tokens: list[str], args: argparse.Namespace) -> tuple[dict[str, float], str]:
    argv = [
        args.wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
        "--timeout", "10s", "--latency", "-s", str(LUA), url, "--", f"{args.rate:g}", *tokens,
    ]  # fmt: skip
    env = {**os.environ, "WRK_THREADS": str(args.threads)}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"wrk exited with {out.returncode}:\n{out.stdout}\n{out.stderr}")
    figures = {}
    for line in out.stdout.splitlines():
        if line.startswith("LOAD "):
            _, key, value = line.split()
            figures[key] = float(value)
    return figures, out.stdout


def jobs_counts(tenant_ids: list[int]) -> tuple[int, int]:
    from academy.models import TERMINAL_STATUSES, AIJob

    jobs = AIJob.objects.filter(tenant_id__in=tenant_ids)
    return jobs.count(), jobs.filter(status__in=list(TERMINAL_STATUSES)).count()


def drain(tenant_ids: list[int], expected: int, timeout: float) -> tuple[float, int]:
    """Seconds until every job is terminal (and at least ``expected`` exist); the backlog at start."""
    started = time.monotonic()
    total, terminal = jobs_counts(tenant_ids)
    backlog = total - terminal
    while total < expected or terminal < total:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{total - terminal} of {total} jobs unfinished after {timeout}s")
        time.sleep(0.2)
        total, terminal = jobs_counts(tenant_ids)
    return time.monotonic() - started, backlog


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


def job_figures(tenant_ids: list[int]) -> dict[str, Any]:
    from academy.models import AIJob

    rows = list(
        AIJob.objects.filter(tenant_id__in=tenant_ids).values_list("status", "tier", "created_at", "finished_at")
    )
    by_status = Counter(status for status, _, _, _ in rows)
    by_tier = Counter(tier for _, tier, _, _ in rows)
    lag = [(f - c).total_seconds() for _, _, c, f in rows if f is not None]
    first = min(c for _, _, c, _ in rows)
    per_second = Counter(int((c - first).total_seconds()) for _, _, c, _ in rows)
    full = [per_second.get(s, 0) for s in range(1, max(per_second))]  # whole seconds only
    return {"by_status": by_status, "by_tier": by_tier, "lag": lag, "per_second": full}


def command_line(args: argparse.Namespace) -> str:
    argv = [python_shown(), "-m", "bench.load_http", "--rate", f"{args.rate:g}", "--duration", str(args.duration)]
    argv += ["--tenants", str(args.tenants), "--web-workers", str(args.web_workers)]
    argv += ["--concurrency", str(args.concurrency), "--connections", str(args.connections)]
    return shlex.join(argv)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load_http", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--rate", type=float, default=200.0, help="requests per second, all tenants together (default 200)")
    add("--duration", type=int, default=60, help="seconds of load (default 60)")
    add("--tenants", type=int, default=4, help="tenants whose tokens rotate (default 4)")
    add("--web-workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    add("--concurrency", type=int, default=2, help="celery -c of each tier's worker (default 2)")
    add("--connections", type=int, default=32, help="wrk connections (default 32)")
    add("--threads", type=int, default=1, help="wrk threads (default 1)")
    add("--drain-timeout", type=float, default=900.0, help="give up draining after this many seconds")
    add("--wrk", default=shutil.which("wrk") or "wrk", help="the wrk binary")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which(args.wrk) is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    bench_setup()

    from academy.services.tenants import tenant_create

    tenants = [tenant_create(slug=f"load-{i}", username=f"load-{i}", premium=True) for i in range(args.tenants)]
    tenant_ids = [t.pk for t, _ in tenants]
    tokens = [token for _, token in tenants]

    log_dir = Path(tempfile.mkdtemp(prefix="academy-load-"))
    web = Web(free_port(), args.web_workers, log_dir / "gunicorn.log")
    workers = {
        f"worker {q}": Worker(c, log_dir / f"worker-{q}.log", queue=q, name=f"{q}@%h")
        for q, c in [*((t, args.concurrency) for t in TIERS), ("domain", 1)]
    }
    try:
        web.start()
        for worker in workers.values():
            worker.start()
        web.wait_ready(tokens[0])
        for worker in workers.values():
            worker.wait_ready()
        # Warm every gunicorn worker and pool child: a few jobs per tier, then drained.
        for i in range(8 * args.web_workers):
            body = {"job_type": "ping", "payload": {"echo": f"warm-{i}"}, "tier": TIERS[i % 3]}
            code, reply = api(web.url, tokens[i % len(tokens)], "POST", body)
            if code != 202:
                raise RuntimeError(f"warm-up dispatch answered {code}: {reply[:300]!r}")
        drain(tenant_ids, 0, 60)
        tables_reset()

        roots = {"gunicorn": web.pid, **{name: w.pid for name, w in workers.items()}}
        cpu0, t0 = cpu_by_group(roots), time.monotonic()
        figures, raw = wrk_run(web.url, tokens, args)
        cpu1, t1 = cpu_by_group(roots), time.monotonic()
        ok = int(sum(v for k, v in figures.items() if k.startswith("status_2")))
        drain_s, backlog = drain(tenant_ids, ok, args.drain_timeout)
        cpu2, t2 = cpu_by_group(roots), time.monotonic()
        jobs = job_figures(tenant_ids)
    finally:
        web.stop()
        for worker in workers.values():
            worker.stop()

    statuses = {int(k.split("_")[1]): int(v) for k, v in figures.items() if k.startswith("status_")}
    fivexx = sum(v for k, v in statuses.items() if k >= 500)
    non2xx = {k: v for k, v in sorted(statuses.items()) if not 200 <= k < 300}
    socket_errors = {k[7:]: int(v) for k, v in figures.items() if k.startswith("errors_") and v}
    achieved = figures["completed"] / figures["duration_s"]
    per_second = jobs["per_second"]
    print()
    print(f"command: {command_line(args)}")
    print(f"wrk:     {args.wrk} -t {args.threads} -c {args.connections} -d {args.duration}s -s bench/load_http.lua")
    print(f"web:     gunicorn config.wsgi --workers {args.web_workers} (sync); workers: "
          + ", ".join(f"-Q {q} -c {args.concurrency if q in TIERS else 1}" for q in (*TIERS, "domain")))  # fmt: skip
    print(f"logs:    {log_dir}")
    print()
    print(f"requests sent        {int(figures['sent'])} ({args.rate:g}/s asked for {args.duration} s)")
    print(f"requests completed   {int(figures['completed'])} in {figures['duration_s']:.1f} s")
    print(f"achieved rate        {achieved:.1f} req/s ({achieved / args.rate * 100:.1f} % of asked)")
    if per_second:
        print(
            f"jobs created/s (db)  median {statistics.median(per_second):.0f}, min {min(per_second)}, "
            f"max {max(per_second)} over {len(per_second)} whole seconds"
        )
    print(f"5xx                  {fivexx}")
    print(f"non-2xx by code      {non2xx or 'none'}")
    print(f"socket errors        {socket_errors or 'none'}")
    lat = ", ".join(f"{p} {figures[f'latency_{p}_ms']:.1f}" for p in ("p50", "p90", "p99", "p99.9"))
    print(f"dispatch latency ms  {lat}, max {figures['latency_max_ms']:.1f} (wrk, write to response)")
    by_status, by_tier = dict(jobs["by_status"]), dict(jobs["by_tier"])
    print(f"jobs                 {sum(by_status.values())}: {by_status}; tiers {by_tier}")
    print(f"backlog at load end  {backlog} jobs not yet terminal")
    print(f"drain after load     {drain_s:.1f} s until every job was terminal")
    lag = jobs["lag"]
    print(
        f"dispatch->finished   p50 {percentile(lag, 50):.2f} s, p99 {percentile(lag, 99):.2f} s, "
        f"max {max(lag, default=math.nan):.2f} s (job created_at to finished_at)"
    )
    print()
    print(f"CPU during the load ({t1 - t0:.1f} s):")
    print("\n".join(cpu_lines(cpu_delta(cpu0, cpu1), t1 - t0)))
    print(f"CPU during the drain ({t2 - t1:.1f} s):")
    print("\n".join(cpu_lines(cpu_delta(cpu1, cpu2), t2 - t1)))
    if os.environ.get("LOAD_WRK_RAW"):
        print(raw)
    return 1 if fivexx or non2xx or socket_errors else 0


if __name__ == "__main__":
    sys.exit(main())
