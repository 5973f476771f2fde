"""Typed reads of the environment for the settings, strict about what they accept.

A value that does not parse stops the process with ``ImproperlyConfigured`` naming the
variable, instead of quietly becoming something else: ``DEBUG=ture`` read as False, or
``AI_LEASE_SECONDS=90s`` crashing later with a bare ``ValueError`` and no name. A variable
that is unset or empty (``DEBUG=``) takes the default, as a shell's ``unset`` would.
"""

from __future__ import annotations

import math
import os

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _raw(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def env_bool(name: str, default: bool) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); anything else is refused."""
    raw = _raw(name)
    if raw is None:
        return default
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    allowed = "/".join(sorted(TRUE_WORDS)) + " or " + "/".join(sorted(FALSE_WORDS))
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use {allowed}")


def env_int(name: str, default: int) -> int:
    """A whole number in decimal (``90``, ``-1``); ``90s`` or ``1.5`` is refused."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def env_float(name: str, default: float) -> float:
    """A finite number (``2``, ``0.5``, ``1e3``); ``nan``, ``inf`` and ``30s`` are refused."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a finite number")
    return value
