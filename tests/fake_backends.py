"""Test doubles for workers.backends: stand-in backends the tests name in AI_BACKEND_*.

Nothing here is a model: each double answers from its request in a fixed, obvious way
(so a test can tell that the processor delegated), or returns something broken on
purpose. They live under tests/ and are never configured in a real environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.backends import BackendRequest

calls: list[BackendRequest] = []


class EchoHandwritingDouble:
    """Reports the size of the image it was given as its "text"."""

    def run(self, request: BackendRequest) -> Mapping[str, Any]:
        calls.append(request)
        return {
            "text": f"{len(request.data or b'')} bytes",
            "lines": [{"text": "line", "box": [0, 0, 10, 10], "confidence": 0.9}],
            "confidence": 0.9,
        }


class EchoProblemsDouble:
    """Makes ``count`` "problems" that quote the source text back."""

    def validate(self, params: Mapping[str, Any]) -> None:
        calls.append(BackendRequest("validate", params))

    def run(self, request: BackendRequest) -> Mapping[str, Any]:
        calls.append(request)
        count = int(request.params.get("count", 1))
        source = str(request.params["ocr_text"])
        return {
            "problems": [{"question": f"{i}: {source}", "answer": None, "choices": None} for i in range(count)],
            "confidence": 0.4,
        }


class EchoHomeworkDouble:
    def run(self, request: BackendRequest) -> Mapping[str, Any]:
        calls.append(request)
        return {"summary": "seen", "items": [{"label": "page"}], "confidence": 0.8}


class MalformedDouble:
    """Returns the wrong shape for every job type."""

    def run(self, request: BackendRequest) -> Mapping[str, Any]:
        return {"text": 3, "problems": "none", "confidence": 0.9}


class NotJsonDouble:
    def run(self, request: BackendRequest) -> Mapping[str, Any]:
        return {"text": "ok", "confidence": 0.9, "extra": object()}


class UnreachableDouble:
    def run(self, request: BackendRequest) -> Mapping[str, Any]:
        raise ConnectionError("connection refused")


class CrashingDouble:
    def run(self, request: BackendRequest) -> Mapping[str, Any]:
        raise KeyError("bug")


def echo_handwriting() -> EchoHandwritingDouble:
    return EchoHandwritingDouble()


def echo_problems() -> EchoProblemsDouble:
    return EchoProblemsDouble()


def echo_homework() -> EchoHomeworkDouble:
    return EchoHomeworkDouble()


def malformed() -> MalformedDouble:
    return MalformedDouble()


def not_json() -> NotJsonDouble:
    return NotJsonDouble()


def unreachable() -> UnreachableDouble:
    return UnreachableDouble()


def crashing() -> CrashingDouble:
    return CrashingDouble()


def failing_factory() -> Any:
    raise RuntimeError("no model file")


def not_a_backend() -> object:
    return object()
