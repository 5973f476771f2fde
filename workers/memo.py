"""A per-process cache for things a worker sets up once: engines, models, backends.

Built under a lock so two threads of one process never build the same thing twice; a
failure can be cached as a value too (a string saying why), so a missing engine is
probed once, not on every job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self) -> None:
        self._values: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        found = self._values.get(key)
        if found is None:
            with self._lock:
                found = self._values.get(key)
                if found is None:
                    found = self._values[key] = build()
        return found

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
