"""Settings read from the environment refuse a value they cannot parse, naming it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw", ["ture", "flase", "2", "enabled", "y es"])
def test_a_misspelt_boolean_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SOME_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match=re.escape(f"SOME_FLAG={raw!r} is not a boolean")):
        env_bool("SOME_FLAG", False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("NO", False),
        ("off", False),
    ],
)
def test_the_boolean_words_read_both_ways(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_an_unset_or_empty_variable_takes_the_default(monkeypatch: pytest.MonkeyPatch, raw: str | None) -> None:
    if raw is None:
        monkeypatch.delenv("SOME_KNOB", raising=False)
    else:
        monkeypatch.setenv("SOME_KNOB", raw)
    assert env_bool("SOME_KNOB", True) is True
    assert env_int("SOME_KNOB", 7) == 7
    assert env_float("SOME_KNOB", 2.5) == 2.5


@pytest.mark.parametrize("raw", ["90s", "1.5", "ninety", "0x10"])
def test_an_integer_setting_that_does_not_parse_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SOME_SECONDS", raw)
    with pytest.raises(ImproperlyConfigured, match=r"SOME_SECONDS=.* is not a whole number"):
        env_int("SOME_SECONDS", 90)


@pytest.mark.parametrize("raw", ["30s", "nan", "inf", "-inf", "1,5"])
def test_a_number_setting_that_does_not_parse_or_is_not_finite_is_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("SOME_RATE", raw)
    with pytest.raises(ImproperlyConfigured, match="SOME_RATE="):
        env_float("SOME_RATE", 1.0)


def test_numbers_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SECONDS", " -3 ")
    monkeypatch.setenv("SOME_RATE", "1e-1")
    assert env_int("SOME_SECONDS", 0) == -3
    assert env_float("SOME_RATE", 0.0) == pytest.approx(0.1)


def _load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Import the real settings module in a fresh process with ``env`` added."""
    child_env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    child_env.update(env)
    code = "import config.settings as s; print(s.DEBUG, s.AI_LEASE_SECONDS)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=60
    )


def test_debug_ture_stops_the_settings_instead_of_reading_false() -> None:
    done = _load_settings(DEBUG="ture", SECRET_KEY="x")
    assert done.returncode != 0
    assert "ImproperlyConfigured: DEBUG='ture' is not a boolean" in done.stderr


def test_a_lease_given_in_seconds_with_a_unit_stops_the_settings() -> None:
    done = _load_settings(DEBUG="0", SECRET_KEY="x", AI_LEASE_SECONDS="90s")
    assert done.returncode != 0
    assert "ImproperlyConfigured: AI_LEASE_SECONDS='90s' is not a whole number" in done.stderr


def test_good_values_load() -> None:
    done = _load_settings(DEBUG="off", SECRET_KEY="x", AI_LEASE_SECONDS="45")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "45"]
