"""``ping``: the platform's own probe job.

It does no AI work; it proves a tier's pool is consuming and measures the platform's
overhead (see ``bench/``). It echoes back what it was sent, so a caller can tell its
answer from another's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from workers.base import BadInput, JobInput, ProcessorResult


class PingProcessor:
    job_type: ClassVar[str] = "ping"
    input_key: ClassVar[str | None] = None
    extensions: ClassVar[frozenset[str]] = frozenset()
    wants_gpu: ClassVar[bool] = False

    def validate(self, params: Mapping[str, Any]) -> None:
        echo = params.get("echo", "")
        if not isinstance(echo, str) or len(echo) > 256:
            raise BadInput("echo must be a string of at most 256 characters", code="INVALID_PAYLOAD")

    def run(self, job: JobInput) -> ProcessorResult:
        job.progress("pong", 100)
        return ProcessorResult(data={"pong": True, "echo": job.params.get("echo", "")})
