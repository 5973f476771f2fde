"""Probe processors for the tests: each one misbehaves on purpose, on request.

Loaded through AI_PLUGIN_MODULES in the test process and in the worker processes the
integration tests start. They register job types that every tier may run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from academy.policies import ALL_TIERS, JobTypeSpec, register_job_type
from workers import registry
from workers.base import BadInput, JobInput, ProcessingError, ProcessorResult, RetryableError


class _Probe:
    input_key: ClassVar[str | None] = None
    extensions: ClassVar[frozenset[str]] = frozenset()
    wants_gpu: ClassVar[bool] = False
    job_type: ClassVar[str] = ""

    def validate(self, params: Mapping[str, Any]) -> None:
        if params.get("reject_at_dispatch"):
            raise BadInput("asked to reject", code=str(params["reject_at_dispatch"]))


def _log_run(job: JobInput) -> None:
    log = job.params.get("log")
    if log:
        with Path(log).open("a") as fh:
            fh.write(f"{os.getpid()} attempt={job.attempt}\n")


class RecordProbe(_Probe):
    """Logs each run to ``log``, sleeps ``sleep`` seconds on ``sleep_attempts``, returns a result."""

    job_type = "probe_record"

    def run(self, job: JobInput) -> ProcessorResult:
        _log_run(job)
        if job.attempt in job.params.get("sleep_attempts", [1]):
            deadline = time.monotonic() + float(job.params.get("sleep", 0))
            while time.monotonic() < deadline:
                job.progress("sleeping", 50)
                time.sleep(0.1)
        data = dict(job.params.get("result", {"ok": True}))
        return ProcessorResult(data=data, confidence=float(job.params.get("confidence", 1.0)))


class FailProbe(_Probe):
    """Raises what ``raise`` names: bug, bad_input, processing, or retryable (until ``ok_on``)."""

    job_type = "probe_fail"

    def run(self, job: JobInput) -> ProcessorResult:
        _log_run(job)
        kind = job.params.get("raise", "bug")
        if kind == "retryable":
            if job.attempt < int(job.params.get("ok_on", 10**6)):
                raise RetryableError(f"transient failure on attempt {job.attempt}")
            return ProcessorResult(data={"recovered_on": job.attempt})
        if kind == "bad_input":
            raise BadInput("the probe calls this input bad", code="FILE_UNREADABLE")
        if kind == "processing":
            raise ProcessingError("the probe could not process this", code=job.params.get("code", "low_quality"))
        raise ZeroDivisionError("a processor bug")


class KillProbe(_Probe):
    """SIGKILLs its own process (an OOM kill, a segfault in a native library)."""

    job_type = "probe_kill"

    def run(self, job: JobInput) -> ProcessorResult:
        _log_run(job)
        if job.attempt <= int(job.params.get("kill_until", 10**6)):
            os.kill(os.getpid(), signal.SIGKILL)
        return ProcessorResult(data={"survived_on": job.attempt})


for probe in (RecordProbe(), FailProbe(), KillProbe()):
    registry.register(probe)
    register_job_type(probe.job_type, JobTypeSpec("basic", ALL_TIERS))
