"""The chaos scenarios of tests/chaos at full size, with their figures.

Run from the repository root::

    .venv/bin/python -m bench.chaos [--jobs 2000] [--only worker_kills,poison]

It starts a private ``redis-server`` on a free port (6390 and up; the shared Redis on
6379 is not touched), recreates and migrates the ``academy_chaos`` database (Postgres on
127.0.0.1:5432, user postgres; ``CHAOS_DATABASE_URL`` to change it), starts the four
pools with ``tests.chaos.settings`` and runs the sweeper from a thread every second.
Then each scenario of :mod:`tests.chaos.scenarios`: worker kills (``--jobs`` jobs and
an OMR batch), a broker restart, dropped database connections, poison jobs, a slow job.
Prints one line of figures per scenario, every broken guarantee, and a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("CHAOS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/academy_chaos")
SCENARIOS = ("worker_kills", "broker_restart", "db_drops", "poison", "slow_job")


def database_recreate(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs in the worker-kill scenario (default 2000)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    parser.add_argument("--broker-down", type=float, default=3.0, help="seconds Redis stays down (default 3)")
    parser.add_argument("--seed", type=int, default=6, help="the kill monkey's random seed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    began = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the workers below
    os.chdir(ROOT)
    var = Path(tempfile.mkdtemp(prefix="academy-chaos-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.chaos.settings",
        DATABASE_URL=DATABASE_URL,
        ACADEMY_VAR_DIR=str(var / "var"),
        AI_PLUGIN_MODULES="tests.probes,tests.chaos.probes",
        LOG_LEVEL="WARNING",
    )
    from tests.chaos import scenarios

    redis = scenarios.RedisServer(scenarios.free_port(), var / "redis.log")
    redis.start()
    os.environ["CELERY_BROKER_URL"] = redis.url
    database_recreate(DATABASE_URL)

    import django

    django.setup()
    from django.core.management import call_command

    import tests.chaos.probes  # noqa: F401  (chaos_record in this process, for dispatch)
    from academy.services.tenants import tenant_create

    call_command("migrate", interactive=False, verbosity=0)
    cluster = scenarios.Cluster(broker_url=redis.url, database_url=DATABASE_URL, log_dir=var / "worker-logs")
    sizes = scenarios.Sizes.full(args.jobs)
    wanted = [name for name in args.only.split(",") if name]
    results: list[scenarios.Figures] = []
    sweeper = scenarios.Sweeper(every=1.0)
    cluster.start_all()
    try:
        with scenarios.use_broker(redis.url):
            cluster.wait_ready()
            ready = time.perf_counter()
            sweeper.start()
            for name in wanted:
                if redis.proc is None or redis.proc.poll() is not None:
                    redis.start()
                cluster.ensure_running()
                cluster.wait_ready()
                slug = f"chaos-{uuid.uuid4().hex[:8]}"
                tenant, _ = tenant_create(slug=slug, username=slug, premium=True)
                runs = var / f"runs-{name}"
                runs.mkdir()
                chaos = scenarios.Chaos(cluster=cluster, redis=redis, runs_dir=runs, tenant=tenant)
                if name == "worker_kills":
                    fig = scenarios.scenario_worker_kills(
                        chaos, jobs=sizes.kill_jobs, sheets=sizes.sheets, seed=args.seed
                    )
                elif name == "broker_restart":
                    fig = scenarios.scenario_broker_restart(
                        chaos, jobs=sizes.broker_jobs, down_s=args.broker_down, deadline=300.0
                    )
                elif name == "db_drops":
                    fig = scenarios.scenario_db_drops(chaos, jobs=sizes.db_jobs, drops=5)
                elif name == "poison":
                    fig = scenarios.scenario_poison(chaos, pings=sizes.poison_pings, timeout=300.0)
                elif name == "slow_job":
                    fig = scenarios.scenario_slow(chaos, sleep=sizes.slow_sleep)
                else:
                    raise SystemExit(f"unknown scenario {name!r}; pick from {SCENARIOS}")
                results.append(fig)
                print(fig.line(), flush=True)
                for problem in fig.problems:
                    print(f"    PROBLEM: {problem}", flush=True)
    finally:
        sweeper.stop()
        cluster.stop_all()
        redis.stop()

    print()
    print(
        "| scenario | jobs | kills | worker restarts | broker restarts | DB drops | drain s | lost | dups | overlaps |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in results:
        print(
            f"| {f.scenario} | {f.jobs} | {f.kills} | {f.worker_restarts} | {f.broker_restarts} | {f.db_drops} "
            f"| {f.drain_s:.1f} | {f.lost} | {f.duplicates} | {f.overlaps} |"
        )
    print()
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    print(f"command: {shlex.join([python, '-m', 'bench.chaos', '--jobs', str(args.jobs), '--only', args.only])}")
    print(f"setup:   {os.cpu_count()} CPUs; pools {scenarios.POOLS}; broker {redis.url}; database {DATABASE_URL}")
    print(f"sweeper: {sweeper.sweeps} sweeps, {len(sweeper.errors)} errors, totals {dict(sweeper.totals)}")
    print(f"runtime: {time.perf_counter() - began:.1f}s ({ready - began:.1f}s setup); logs in {var}")
    return 1 if any(f.problems for f in results) else 0


if __name__ == "__main__":
    sys.exit(main())
