"""The chaos probe: a job that records every run and notices a second run at once.

``chaos_record`` takes ``dir`` (a folder shared by the test and the workers), ``tag``
(one per job) and ``sleep`` (seconds). Each run appends ``start`` and ``end`` lines to
``<dir>/runs.log`` and holds ``<dir>/<tag>.running`` (pid and process start time) while
it works. A run that finds the marker held by a live process is running at the same
time as another run of the same job: it says so in its start line (``overlap=1``).
A killed run leaves its marker behind; its process is gone, so the next run takes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from academy.policies import ALL_TIERS, JobTypeSpec, register_job_type
from workers import registry
from workers.base import BadInput, JobInput, ProcessorResult

RUNS_LOG = "runs.log"


def _identity(pid: int) -> str:
    """pid:start-time, so a recycled pid is not taken for the process that held the marker."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return f"{pid}:?"
    return f"{pid}:{stat[stat.rindex(')') + 2 :].split()[19]}"


def _alive(holder: str) -> bool:
    pid, _, _ = holder.partition(":")
    if not pid.isdigit():
        return True  # half-written by a run that started a moment ago: it is alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X"):
        return False
    return _identity(int(pid)) == holder


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())  # one write: lines from many processes never interleave
    finally:
        os.close(fd)


def _enter(marker: Path, me: str) -> bool:
    """Take the marker; True if another live run held it (two runs at once)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            holder = marker.read_text()
        except FileNotFoundError:
            holder = ""
        overlap = bool(holder) and _alive(holder)
        marker.write_text(me)
        return overlap
    with os.fdopen(fd, "w") as fh:
        fh.write(me)
    return False


def _leave(marker: Path, me: str) -> None:
    try:
        if marker.read_text() == me:
            marker.unlink()
    except FileNotFoundError:
        pass


class ChaosRecord:
    job_type: ClassVar[str] = "chaos_record"
    input_key: ClassVar[str | None] = None
    extensions: ClassVar[frozenset[str]] = frozenset()
    wants_gpu: ClassVar[bool] = False

    def validate(self, params: Mapping[str, Any]) -> None:
        if not params.get("dir") or not params.get("tag"):
            raise BadInput("chaos_record needs dir and tag", code="INVALID_PAYLOAD")

    def run(self, job: JobInput) -> ProcessorResult:
        runs = Path(str(job.params["dir"]))
        tag = str(job.params["tag"])
        pid = os.getpid()
        me = _identity(pid)
        marker = runs / f"{tag}.running"
        overlap = _enter(marker, me)
        _append(runs / RUNS_LOG, f"start {tag} {pid} {job.attempt} {time.time():.3f} overlap={int(overlap)}")
        try:
            deadline = time.monotonic() + float(job.params.get("sleep", 0))
            while (left := deadline - time.monotonic()) > 0:
                job.progress("sleeping", 50)
                time.sleep(min(0.1, left))
            _append(runs / RUNS_LOG, f"end {tag} {pid} {job.attempt} {time.time():.3f}")
        finally:
            _leave(marker, me)
        return ProcessorResult(data={"tag": tag, "attempt": job.attempt}, confidence=1.0)


registry.register(ChaosRecord())
register_job_type(ChaosRecord.job_type, JobTypeSpec("basic", ALL_TIERS))
