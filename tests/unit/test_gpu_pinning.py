"""The premium pool's children: one pinned device each, and models loaded at child start."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import pytest

from ai_tasks import gpu
from workers import registry
from workers.base import JobInput, ProcessorResult


class _Fake:
    job_type: ClassVar[str] = ""
    input_key: ClassVar[str | None] = None
    extensions: ClassVar[frozenset[str]] = frozenset()
    wants_gpu: ClassVar[bool] = False

    def __init__(self) -> None:
        self.warmed = 0

    def validate(self, params: Any) -> None:
        return None

    def run(self, job: JobInput) -> ProcessorResult:
        return ProcessorResult(data={})

    def warm(self) -> None:
        self.warmed += 1


class _GpuFake(_Fake):
    job_type = "test_gpu_model"
    wants_gpu = True


class _CpuFake(_Fake):
    job_type = "test_cpu_model"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[_Fake, _Fake]:
    gpu_one, cpu_one = _GpuFake(), _CpuFake()
    # Only the fakes: the built-in processors (and their imports) stay out of this test.
    monkeypatch.setattr(registry, "BUILTIN", {})
    monkeypatch.setattr(registry, "_registry", {p.job_type: p for p in (gpu_one, cpu_one)})
    return gpu_one, cpu_one


def test_each_child_pins_one_device_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "untouched")
    assert [gpu.pin_device(i, ["0", "1"]) for i in range(3)] == ["0", "1", "0"]
    assert gpu.pin_device(1, ["0", "1"]) == "1"

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert gpu.pin_device(0, []) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # no GPU: frameworks see none


def test_configured_devices_win_over_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_GPU_DEVICES", " 2, 3 ,")
    assert gpu.visible_devices() == ["2", "3"]


def test_only_processors_that_want_a_gpu_are_warmed(fakes: tuple[_Fake, _Fake]) -> None:
    gpu_one, cpu_one = fakes
    assert registry.warm_gpu_processors() == ["test_gpu_model"]
    assert (gpu_one.warmed, cpu_one.warmed) == (1, 0)


def test_a_premium_child_pins_then_warms(fakes: tuple[_Fake, _Fake], monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_one, _ = fakes
    monkeypatch.setenv("AI_GPU_DEVICES", "7")
    monkeypatch.setattr(gpu, "_consumes_premium", lambda: True)
    seen: list[str] = []
    monkeypatch.setattr(gpu_one, "warm", lambda: seen.append(os.environ["CUDA_VISIBLE_DEVICES"]))
    gpu._on_child_start()
    assert seen == ["7"]  # the model loaded after the device was pinned


def test_other_pools_neither_pin_nor_warm(fakes: tuple[_Fake, _Fake], monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_one, _ = fakes
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "untouched")
    monkeypatch.setattr(gpu, "_consumes_premium", lambda: False)
    gpu._on_child_start()
    assert gpu_one.warmed == 0

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "untouched"


def test_a_model_that_fails_to_load_does_not_kill_the_child(
    fakes: tuple[_Fake, _Fake], monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu_one, _ = fakes
    monkeypatch.setenv("AI_GPU_DEVICES", "")
    monkeypatch.setattr(gpu, "_consumes_premium", lambda: True)

    def broken() -> None:
        raise RuntimeError("no CUDA")

    monkeypatch.setattr(gpu_one, "warm", broken)
    gpu._on_child_start()  # logged, not raised
