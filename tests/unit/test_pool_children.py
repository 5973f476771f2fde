"""What each pool child sets up for itself after fork."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config.celery import _one_opencv_thread_per_child


def test_a_pool_child_reads_with_one_opencv_thread_unless_the_operator_said_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENCV_FOR_THREADS_NUM", raising=False)
    _one_opencv_thread_per_child()
    assert os.environ["OPENCV_FOR_THREADS_NUM"] == "1"
    monkeypatch.setenv("OPENCV_FOR_THREADS_NUM", "4")
    _one_opencv_thread_per_child()
    assert os.environ["OPENCV_FOR_THREADS_NUM"] == "4"


def test_this_opencv_build_honours_the_thread_setting_when_it_is_first_imported() -> None:
    # The hook only sets the variable; it works because cv2 reads it on import.
    code = "import cv2; print(cv2.getNumThreads())"
    env = {**os.environ, "OPENCV_FOR_THREADS_NUM": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_a_web_process_measures_uploads_with_one_opencv_thread() -> None:
    # django.setup() runs AppConfig.ready, which sets it before the gate first imports cv2.
    code = "import django; django.setup(); import cv2; print(cv2.getNumThreads())"
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FOR_THREADS_NUM"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
