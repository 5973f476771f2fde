"""Where the web tier's CPU goes for one ``POST /api/v1/jobs/``.

Run from the repository root::

    .venv/bin/python -m bench.dispatch_cpu [--requests 400] [--rounds 5] [--cprofile]

It migrates the ``academy_bench_load`` database (``BENCH_DATABASE_URL``), flushes Redis
db 9 (``BENCH_BROKER_URL``), creates one premium tenant with an API token and, with the
production-like environment of ``bench.noop_roundtrip.BENCH_ENV`` (DEBUG off, Postgres,
Redis, JSON logs at WARNING), calls the real WSGI application (``config.wsgi``, every
middleware, DRF, token auth, ``job_dispatch``, the INSERT, publish after commit) with
the request gunicorn would hand it: ``{"job_type":"ping","payload":{"echo":...},
"tier":...}`` rotating the three tiers, ``Authorization: Token ...`` and
``X-Forwarded-Proto: https``. No worker runs: the messages stay in Redis db 9, which is
flushed again at the end.

Printed:

- **CPU per request**: this process's CPU time (``time.process_time``, user + system,
  so the psycopg and Redis client sides are in, Postgres's and Redis's own CPU is not)
  over ``--requests`` requests, ``--rounds`` times; the median, min and max per round, so
  the noise of a shared machine shows. gunicorn's own HTTP parsing is not in it (see
  ``bench.load_http`` for gunicorn CPU per request).
- **Stages**: inclusive CPU per request of each stage (token auth, the view's tenant
  lookup, body parsing, the serializer, ``job_dispatch`` and inside it pre-validation,
  the tenant policy, the INSERT, ``apply_async`` and the ``task-sent`` event, the UPDATE
  after publish, the re-read, response rendering), measured with ``process_time`` around
  each stage on a separate pass, as an indented tree; "rest" is the parent less its
  children.
- **Round trips per request**: SQL statements (by kind) and Redis commands (by name).
- ``--cprofile``: the 30 functions with the most time under cProfile (``--sort``).

``--gunicorn "ARGS"`` measures the same request through a real gunicorn instead:
``gunicorn config.wsgi ARGS`` on a free port (same environment), ``wrk`` with
``bench/load_http.lua`` at ``--rate`` requests/s for ``--duration`` seconds, and the
gunicorn process tree's CPU (from /proc) divided by the requests answered. Repeat the
option to compare server settings in one run, e.g.
``--gunicorn "--workers 2" --gunicorn "--workers 2 --worker-class gthread --threads 4"``.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/academy_bench_load")
os.environ.setdefault("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")

from bench.noop_roundtrip import BROKER_URL, DATABASE_URL, bench_setup

TIERS = ("lite", "basic", "premium")


# --- the request, as gunicorn hands it to the WSGI app ------------------------------------------


def make_caller(token: str) -> Callable[[int], int]:
    from config.wsgi import application

    def call(i: int) -> int:
        body = json.dumps({"job_type": "ping", "payload": {"echo": f"cpu-{i}"}, "tier": TIERS[i % 3]}).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "",
            "PATH_INFO": "/api/v1/jobs/",
            "QUERY_STRING": "",
            "RAW_URI": "/api/v1/jobs/",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "40000",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_AUTHORIZATION": f"Token {token}",
            "HTTP_X_FORWARDED_PROTO": "https",
            "HTTP_USER_AGENT": "bench.dispatch_cpu",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        status: list[str] = []

        def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(s)
            return lambda data: None

        result = application(environ, start_response)
        try:
            reply = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # request_finished: what gunicorn does after the response
        code = int(status[0].split()[0])
        if code != 202:
            raise RuntimeError(f"dispatch answered {status[0]}: {reply[:400]!r}")
        return code

    return call


# --- stage timers ---------------------------------------------------------------------------------


class Stages:
    """Inclusive process CPU per named stage, from wrappers installed on the real functions."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._undo: list[Callable[[], None]] = []
        self._active: Counter[str] = Counter()

    def wrap(self, owner: Any, attr: str, name: str, outside: str = "") -> None:
        """Time ``owner.attr`` as ``name``; not while the stage ``outside`` is running."""
        original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        func = original.__func__ if isinstance(original, (classmethod, staticmethod)) else original
        clock = time.process_time
        cpu, calls, active = self.cpu, self.calls, self._active

        def timed(*args: Any, **kwargs: Any) -> Any:
            if active[name] or (outside and active[outside]):  # count the outermost call only
                return func(*args, **kwargs)
            active[name] += 1
            start = clock()
            try:
                return func(*args, **kwargs)
            finally:
                cpu[name] += clock() - start
                calls[name] += 1
                active[name] -= 1

        timed.__wrapped__ = func  # type: ignore[attr-defined]
        replacement: Any = timed
        if isinstance(original, classmethod):
            replacement = classmethod(timed)
        elif isinstance(original, staticmethod):
            replacement = staticmethod(timed)
        setattr(owner, attr, replacement)
        self._undo.append(lambda: setattr(owner, attr, original))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


# name, parent, (module, owner attribute path, function attribute)
STAGES: list[tuple[str, str | None, str, str, str]] = [
    ("wsgi (whole request)", None, "django.core.handlers.wsgi", "WSGIHandler", "__call__"),
    ("token auth (+ academy, config)", "wsgi (whole request)", "rest_framework.authentication", "TokenAuthentication",
     "authenticate"),
    ("view: request_tenant", "wsgi (whole request)", "academy.api.jobs", "", "request_tenant"),
    ("body parse (JSON)", "wsgi (whole request)", "rest_framework.request", "Request", "_parse"),
    ("DispatchSerializer.is_valid", "wsgi (whole request)", "rest_framework.serializers", "BaseSerializer",
     "is_valid"),
    ("job_dispatch", "wsgi (whole request)", "academy.api.jobs", "", "job_dispatch"),
    ("job_type_check", "job_dispatch", "academy.jobs.dispatch", "", "job_type_check"),
    ("payload_check", "job_dispatch", "academy.jobs.dispatch", "", "payload_check"),
    ("tenant_policy (TenantConfig)", "job_dispatch", "academy.selectors", "", "tenant_policy"),
    ("prevalidate", "job_dispatch", "academy.jobs.dispatch", "", "prevalidate"),
    ("AIJob.save (INSERT)", "job_dispatch", "django.db.models.base", "Model", "save"),
    ("COMMIT", "job_dispatch", "django.db.backends.base.base", "BaseDatabaseWrapper", "commit"),
    ("publish after commit", "job_dispatch", "academy.jobs.dispatch", "", "job_publish"),
    ("job_send", "publish after commit", "academy.jobs.sending", "", "job_send"),
    ("Task.apply_async", "job_send", "celery.app.task", "Task", "apply_async"),
    ("producer.publish (task message)", "Task.apply_async", "kombu.messaging", "Producer", "publish"),
    ("task-sent event", "Task.apply_async", "celery.events.dispatcher", "EventDispatcher", "publish"),
    ("producer pool acquire", "Task.apply_async", "celery.app.base", "Celery", "producer_or_acquire"),
    ("UPDATE celery_task_id (ORM)", "publish after commit", "django.db.models.query", "QuerySet", "update"),
    ("UPDATE ... RETURNING (raw)", "publish after commit", "academy.jobs.publish", "", "_published_returning"),
    ("refresh_from_db", "job_dispatch", "django.db.models.base", "Model", "refresh_from_db"),
    ("response render (JSON)", "wsgi (whole request)", "rest_framework.response", "Response", "rendered_content"),
    ("close: request_finished", "wsgi (whole request)", "django.http.response", "HttpResponseBase", "close"),
]  # fmt: skip


def stages_install(stages: Stages) -> None:
    import importlib

    for name, _, module_name, owner_name, attr in STAGES:
        module = importlib.import_module(module_name)
        owner: Any = module
        for part in filter(None, owner_name.split(".")):
            owner = getattr(owner, part)
        if not hasattr(owner, attr):
            continue  # this version of the code has no such stage
        if attr == "rendered_content":  # a property
            prop = owner.__dict__[attr]
            holder = type("_Holder", (), {"f": staticmethod(prop.fget)})
            stages.wrap(holder, "f", name)
            fget = holder.__dict__["f"]
            setattr(owner, attr, property(fget.__func__ if isinstance(fget, staticmethod) else fget))
            stages._undo.append(functools.partial(setattr, owner, "rendered_content", prop))
            continue
        if attr == "producer_or_acquire":  # a context manager: time entering and leaving it
            original = owner.__dict__[attr]

            def timed_cm(self: Any, producer: Any = None, _orig: Any = original, _name: str = name) -> Any:
                @contextmanager
                def cm() -> Iterator[Any]:
                    start = time.process_time()
                    manager = _orig(self, producer)
                    value = manager.__enter__()
                    stages.cpu[_name] += time.process_time() - start
                    try:
                        yield value
                    finally:
                        start = time.process_time()
                        manager.__exit__(None, None, None)
                        stages.cpu[_name] += time.process_time() - start
                        stages.calls[_name] += 1

                return cm()

            setattr(owner, attr, timed_cm)
            stages._undo.append(functools.partial(setattr, owner, "producer_or_acquire", original))
            continue
        stages.wrap(owner, attr, name, outside="task-sent event" if attr == "publish" else "")


def stage_tree(stages: Stages, n: int) -> list[str]:
    children: dict[str | None, list[str]] = defaultdict(list)
    for name, parent, *_ in STAGES:
        children[parent].append(name)
    lines = [f"    {'stage':<44} {'ms/req':>7} {'calls/req':>9}"]

    def walk(name: str, depth: int) -> None:
        ms = stages.cpu.get(name, 0.0) * 1000 / n
        lines.append(f"    {'  ' * depth + name:<44} {ms:7.3f} {stages.calls.get(name, 0) / n:9.2f}")
        kids = children.get(name, [])
        for kid in kids:
            walk(kid, depth + 1)
        if kids:
            rest = ms - sum(stages.cpu.get(k, 0.0) * 1000 / n for k in kids)
            lines.append(f"    {'  ' * (depth + 1) + '(rest)':<44} {rest:7.3f}")

    for root in children[None]:
        walk(root, 0)
    return lines


# --- round trips ---------------------------------------------------------------------------------


@contextmanager
def round_trips() -> Iterator[tuple[Counter[str], Counter[str]]]:
    """SQL statements by first word and Redis commands by name, client side."""
    import redis.client
    from django.db import connection

    sql: Counter[str] = Counter()
    red: Counter[str] = Counter()

    def sql_wrapper(execute: Any, query: str, params: Any, many: bool, context: Any) -> Any:
        sql[query.split(None, 1)[0].upper()] += 1
        return execute(query, params, many, context)

    # redis leaves execute_command unannotated: it takes and returns anything.
    execute_command: Callable[..., Any] = redis.client.Redis.execute_command
    pipeline_execute = redis.client.Pipeline.execute

    def counted_command(self: Any, *args: Any, **options: Any) -> Any:
        red[str(args[0]).upper()] += 1
        return execute_command(self, *args, **options)

    def counted_pipeline(self: Any, *args: Any, **kwargs: Any) -> Any:
        red["(pipeline)"] += 1
        for command, _ in self.command_stack:
            red[str(command[0]).upper()] += 1
        return pipeline_execute(self, *args, **kwargs)

    redis.client.Redis.execute_command = counted_command  # type: ignore[method-assign]
    redis.client.Pipeline.execute = counted_pipeline  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(sql_wrapper):
            yield sql, red
    finally:
        redis.client.Redis.execute_command = execute_command  # type: ignore[method-assign]
        redis.client.Pipeline.execute = pipeline_execute  # type: ignore[method-assign]


# --- main -----------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per timed round (default 400)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first (default 100)")
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top 30 functions")
    parser.add_argument("--sort", default="cumulative", help="cProfile order: cumulative (default) or tottime")
    parser.add_argument("--gunicorn", action="append", default=[], help="gunicorn arguments to measure (repeatable)")
    parser.add_argument("--rate", type=float, default=25.0, help="--gunicorn: requests/s (default 25)")
    parser.add_argument("--duration", type=int, default=30, help="--gunicorn: seconds of load (default 30)")
    parser.add_argument("--connections", type=int, default=8, help="--gunicorn: wrk connections (default 8)")
    return parser.parse_args(argv)


def gunicorn_cpu(token: str, server_args: str, args: argparse.Namespace) -> list[str]:
    """gunicorn CPU per request for one server setting, at a paced rate (see the docstring)."""
    import shlex
    import signal
    import subprocess
    import tempfile
    from pathlib import Path

    from bench.load_http import LUA, api, cpu_by_group, free_port
    from bench.noop_roundtrip import ROOT

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", *shlex.split(server_args)]
    log = Path(tempfile.mkstemp(prefix="academy-dispatch-cpu-", suffix=".log")[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if api(url, token, "GET")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        for i in range(50):  # warm every worker
            body = {"job_type": "ping", "payload": {"echo": f"warm-{i}"}, "tier": TIERS[i % 3]}
            if api(url, token, "POST", body)[0] != 202:
                raise RuntimeError("warm-up dispatch failed")
        wrk = [
            "wrk", "-t", "1", "-c", str(args.connections), "-d", f"{args.duration}s", "--timeout", "10s",
            "-s", str(LUA), url, "--", f"{args.rate:g}", token,
        ]  # fmt: skip
        before = cpu_by_group({"gunicorn": proc.pid})
        done = subprocess.run(wrk, capture_output=True, text=True, check=True, env={**os.environ, "WRK_THREADS": "1"})
        after = cpu_by_group({"gunicorn": proc.pid})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    figures = {}
    for line in done.stdout.splitlines():
        if line.startswith("LOAD "):
            _, key, value = line.split()
            figures[key] = float(value)
    completed = figures["completed"]
    ok = figures.get("status_202", 0.0)
    cpu_ms = (after["gunicorn"] - before["gunicorn"]) * 1000 / completed
    other = sum(v for k, v in after.items() if k != "gunicorn") - sum(v for k, v in before.items() if k != "gunicorn")
    return [
        f"    gunicorn {server_args}",
        f"        {completed:.0f} requests ({ok:.0f} x 202) in {figures['duration_s']:.1f} s at {args.rate:g}/s asked; "
        f"gunicorn CPU {cpu_ms:.2f} ms/request (ticks of 10 ms: +-{10 * 2 / completed:.3f}); "
        f"p50 {figures['latency_p50_ms']:.1f} ms, p99 {figures['latency_p99_ms']:.1f} ms; "
        f"rest of the machine {other:.1f} CPU s",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    broker = bench_setup()
    from academy.services.tenants import tenant_create

    _, token = tenant_create(slug="cpu-0", username="cpu-0", premium=True)
    if args.gunicorn:
        lines = []
        for server_args in args.gunicorn:
            lines += gunicorn_cpu(token, server_args, args)
            broker.flushdb()
        load = os.getloadavg()
        print()
        print(f"gunicorn CPU per request (load avg {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores):")
        print("\n".join(lines))
        return 0
    call = make_caller(token)
    i = 0
    for _ in range(args.warmup):
        call(i)
        i += 1

    n = args.requests
    per_round = []
    for _ in range(args.rounds):
        start = time.process_time()
        for _ in range(n):
            call(i)
            i += 1
        per_round.append((time.process_time() - start) * 1000 / n)

    stages = Stages()
    stages_install(stages)
    try:
        for _ in range(n):
            call(i)
            i += 1
    finally:
        stages.restore()

    with round_trips() as (sql, red):
        for _ in range(n):
            call(i)
            i += 1

    profile_text = ""
    if args.cprofile:
        profiler = cProfile.Profile(time.process_time)  # CPU, not wall: waits on Postgres drop out
        profiler.enable()
        for _ in range(n):
            call(i)
            i += 1
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(30)
        profile_text = out.getvalue()

    broker.flushdb()
    load = os.getloadavg()
    print()
    print(
        f"command:   {' '.join([os.path.relpath(sys.executable), '-m', 'bench.dispatch_cpu', *(argv or sys.argv[1:])])}"
    )
    print(f"database:  {DATABASE_URL}   broker: {BROKER_URL}")
    print(f"load avg:  {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (1/5/15 min) on {os.cpu_count()} cores")
    print()
    print(f"CPU per request (process_time, {n} requests x {args.rounds} rounds, after {args.warmup} warm-up):")
    print(
        f"    median {statistics.median(per_round):.2f} ms, min {min(per_round):.2f}, max {max(per_round):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in per_round)})"
    )
    print()
    print(f"stages (inclusive CPU per request; one pass of {n} requests with timers installed):")
    print("\n".join(stage_tree(stages, n)))
    print()
    print(f"round trips per request ({n} requests):")
    print(
        "    SQL:   "
        + ", ".join(f"{k} {v / n:.2f}" for k, v in sql.most_common())
        + f"  (total {sum(sql.values()) / n:.2f})"
    )
    print("    Redis: " + ", ".join(f"{k} {v / n:.2f}" for k, v in red.most_common()))
    if profile_text:
        print()
        print(profile_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
