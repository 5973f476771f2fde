"""Runtime flags, read through a short per-process cache.

Each value lives in the process for at most ``AI_FLAG_TTL_SECONDS`` (a value cached for
good would never see a flip in the admin): a flip reaches every worker process within
that many seconds, at the cost of one indexed query per flag per process per TTL.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from django.conf import settings

from academy.models import RuntimeFlag

SHADOW_MODE: Final = "ai_shadow_mode"

_cache: dict[str, tuple[float, str | None]] = {}
_lock = threading.Lock()


def _parse_bool(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def flag_value(key: str) -> str | None:
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    value = RuntimeFlag.objects.filter(key=key).values_list("value", flat=True).first()
    with _lock:
        _cache[key] = (now + settings.AI_FLAG_TTL_SECONDS, value)
    return value


def flag_enabled(key: str, *, default: bool) -> bool:
    return _parse_bool(flag_value(key), default)


def flag_cache_clear() -> None:
    """For tests and for the process that just wrote a flag."""
    with _lock:
        _cache.clear()
