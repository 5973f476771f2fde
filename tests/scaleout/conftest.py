"""Scale-out across hosts: worker pools in network namespaces of their own, on one machine.

Each "host" is a network namespace (``academy-h1``, ``academy-h2``) joined to the root
namespace by a veth pair whose root end sits on a bridge holding the gateway address
(10.231.0.1/24). A host reaches nothing but the gateway: a private ``redis-server``
bound there, and a TCP forwarder (a thread of this process) that hands the gateway's
Postgres port on to 127.0.0.1:5432, so the system Postgres keeps its own config.

Every fixture here cleans up after itself, also when a test fails or the setup breaks
half-way: processes in the namespaces are SIGKILLed, namespaces, veths and the bridge
deleted. The module is skipped when this process is not root, ``ip`` is missing or
``ip netns add`` is refused (a container without the capability).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.chaos.scenarios import Sweeper, use_broker

ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("ACADEMY_VAR_DIR", "/tmp")) / "scaleout"
PREFIX = "10.231.0"
GATEWAY = f"{PREFIX}.1"
BRIDGE = "academy-br0"
#: host: the pools it runs. Both run lite, basic and domain, so either can take the other's place.
HOSTS: dict[str, tuple[str, ...]] = {
    "h1": ("lite", "basic", "domain"),
    "h2": ("lite", "basic", "premium", "domain"),
}
FIGURES: list[dict[str, Any]] = []


# --- the network ----------------------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and proc.returncode != 0:
        raise NetworkError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc


class NetworkError(RuntimeError):
    pass


def netns_unavailable() -> str | None:
    """Why this machine cannot run the scale-out test, or None if it can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (run as root, e.g. in the CI container)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    probe = f"academy-probe-{os.getpid()}"
    added = _ip("netns", "add", probe, check=False)
    if added.returncode != 0:
        return f"`ip netns add` failed: {added.stderr.strip() or added.returncode}"
    _ip("netns", "del", probe, check=False)
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


def ns_name(host: str) -> str:
    return f"academy-{host}"


def gw_link(host: str) -> str:
    return f"academy-{host}-gw"  # the root end of the host's veth (15 characters at most)


class Network:
    """The bridge, one namespace and veth per host; ``down()`` undoes all of it, always."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts

    def address(self, host: str) -> str:
        return f"{PREFIX}.{10 + self.hosts.index(host) + 1}"

    def up(self) -> None:
        self.down()  # leftovers of a run that was killed before its cleanup
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        for host in self.hosts:
            ns = ns_name(host)
            _ip("netns", "add", ns)
            _ip("link", "add", gw_link(host), "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", gw_link(host), "master", BRIDGE, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def pids(self, host: str) -> list[int]:
        listed = _ip("netns", "pids", ns_name(host), check=False)
        return [int(p) for p in listed.stdout.split() if p.isdigit()]

    def kill(self, host: str, *, timeout: float = 10.0) -> int:
        """SIGKILL every process in the host's namespace, then take its link down. Returns the count."""
        killed: set[int] = set()
        deadline = time.monotonic() + timeout
        while (pids := self.pids(host)) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
            time.sleep(0.05)
        # Links go down after the processes died: their sockets were closed, not left hanging.
        _ip("-n", ns_name(host), "link", "set", "eth0", "down", check=False)
        _ip("link", "set", gw_link(host), "down", check=False)
        return len(killed)

    def down(self) -> None:
        listed = _ip("netns", "list", check=False).stdout.split()
        for host in self.hosts:
            if ns_name(host) in listed:
                self.kill(host, timeout=5.0)
                _ip("netns", "del", ns_name(host), check=False)
            _ip("link", "del", gw_link(host), check=False)  # gone with the namespace; in case
        _ip("link", "del", BRIDGE, check=False)


# --- what the hosts reach on the gateway ------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class GatewayRedis:
    """A throw-away ``redis-server`` bound to the gateway address only."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port(GATEWAY)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{GATEWAY}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", GATEWAY, "--protected-mode", "no",
                "--save", "", "--appendonly", "no"]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((GATEWAY, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.log_path}")
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on {GATEWAY}:{self.port} did not answer; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Forwarder(threading.Thread):
    """Accepts on ``GATEWAY:<port>`` and pipes each connection to ``target`` (asyncio, one thread)."""

    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__(name="scaleout-forwarder", daemon=True)
        self.target = target
        self.port = 0
        self.connections = 0
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._main = loop.create_task(self._serve())
            loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by start_and_wait
            self.error = exc
        finally:
            self.ready.set()
            loop.close()

    def start_and_wait(self, timeout: float = 10.0) -> None:
        self.start()
        if not self.ready.wait(timeout) or self.error is not None or not self.port:
            raise RuntimeError(f"the Postgres forwarder did not start: {self.error!r}")

    async def _serve(self) -> None:
        links: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            links.add(task)
            try:
                await self._link(reader, writer)
            finally:
                links.discard(task)

        server = await asyncio.start_server(accept, GATEWAY, 0)
        self.port = int(server.sockets[0].getsockname()[1])
        self.ready.set()
        try:
            await server.serve_forever()
        finally:
            server.close()
            for task in list(links):
                task.cancel()
            await asyncio.gather(*links, return_exceptions=True)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            writer.close()
            up_writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()  # one side gone: the other is closed too (Postgres needs no half-close)

    def stop(self) -> None:
        loop, main = self._loop, self._main
        if loop is not None and main is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(main.cancel)
        self.join(timeout=10)


# --- the workers ------------------------------------------------------------------------------------


@dataclass
class Hosts:
    network: Network
    redis: GatewayRedis
    forwarder: Forwarder
    database_url: str
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    killed: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.settings",
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.redis.url,
            AI_PLUGIN_MODULES="tests.probes",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
        )
        return env

    def start(self, host: str, pool: str) -> None:
        node = f"{pool}@{host}"
        argv = ["ip", "netns", "exec", ns_name(host), sys.executable, "-m", "celery", "-A", "config", "worker",
                "-Q", pool, "-n", node, "-c", "1", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle"]  # fmt: skip
        with (self.log_dir / f"{node}.log").open("ab") as log:
            self.procs[node] = subprocess.Popen(
                argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        from config.celery import app

        wanted = set(self.procs)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {node} exited with {proc.returncode}; see {self.log_dir}")
            replies = app.control.ping(timeout=1.0) or []
            if wanted <= {name for reply in replies for name in reply}:
                return
        raise TimeoutError(f"workers {sorted(wanted)} did not all answer a ping; see {self.log_dir}")

    def kill_host(self, host: str) -> int:
        """The host dies at once: SIGKILL for everything in its namespace, its link down."""
        count = self.network.kill(host)
        self.killed[host] = time.monotonic()
        for node, proc in self.procs.items():
            if node.endswith(f"@{host}"):
                proc.wait(timeout=10)
        return count

    def alive(self, host: str) -> list[str]:
        return [n for n, p in self.procs.items() if n.endswith(f"@{host}") and p.poll() is None]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _database_url(host: str, port: int) -> str:
    db = settings.DATABASES["default"]  # the test database, once pytest-django made it
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{host}:{port}/{db['NAME']}"


@pytest.fixture(scope="package")
def hosts(request: pytest.FixtureRequest) -> Iterator[Hosts]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"scale-out test skipped: {reason}")
    request.getfixturevalue("django_db_setup")  # the test database, only once the module can run
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    log_dir = VAR_DIR / "worker-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir()
    network = Network(list(HOSTS))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(network.down)
        try:
            network.up()
        except NetworkError as exc:
            pytest.skip(f"scale-out test skipped: could not build the test network: {exc}")
        redis = GatewayRedis(VAR_DIR / "redis.log")
        cleanup.callback(redis.stop)
        redis.start()
        db = settings.DATABASES["default"]
        forwarder = Forwarder((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
        cleanup.callback(forwarder.stop)
        forwarder.start_and_wait()
        running = Hosts(network, redis, forwarder, _database_url(GATEWAY, forwarder.port), log_dir)
        cleanup.callback(running.stop)
        for host, pools in HOSTS.items():
            for pool in pools:
                running.start(host, pool)
        with use_broker(redis.url):
            running.wait_ready()
        yield running


@dataclass
class Scaleout:
    hosts: Hosts
    tenant: Any
    runs_dir: Path
    sweeper: Sweeper


@pytest.fixture
def scaleout(hosts: Hosts, transactional_db: Any, tmp_path: Path) -> Iterator[Scaleout]:
    """Hosts up, this process publishing to their broker, the sweeper running every second."""
    from academy.services.tenants import tenant_create

    slug = f"scaleout-{uuid.uuid4().hex[:8]}"
    tenant, _ = tenant_create(slug=slug, username=slug, premium=True)
    runs = tmp_path / "runs"
    runs.mkdir()
    with use_broker(hosts.redis.url):
        sweeper = Sweeper(every=1.0)
        sweeper.start()
        try:
            yield Scaleout(hosts=hosts, tenant=tenant, runs_dir=runs, sweeper=sweeper)
        finally:
            sweeper.stop()


@pytest.fixture
def record() -> Any:
    def keep(figures: dict[str, Any]) -> dict[str, Any]:
        FIGURES.append(figures)
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        (VAR_DIR / "figures.json").write_text(json.dumps(FIGURES, indent=2, default=str))
        return figures

    return keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("scale-out figures")
        for figures in FIGURES:
            terminalreporter.write_line(" ".join(f"{k}={v}" for k, v in figures.items()))
