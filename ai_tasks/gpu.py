"""GPU pinning for the premium pool's children.

The parent never imports a CUDA library. Each prefork child takes one device by its
index (child 1 -> the first listed device, and so on) and exports it as
CUDA_VISIBLE_DEVICES before any model is loaded, so a framework imported later sees
exactly one GPU. With no GPU the child runs on the CPU and says so once.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from celery.signals import worker_process_init

logger = logging.getLogger(__name__)

_installed = False


def visible_devices() -> list[str]:
    """Devices from AI_GPU_DEVICES ("0,1"), else what nvidia-smi lists, else none."""
    configured = os.environ.get("AI_GPU_DEVICES")
    if configured is not None:
        return [d.strip() for d in configured.split(",") if d.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def pin_device(child_index: int, devices: list[str]) -> str | None:
    if not devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return None
    device = devices[child_index % len(devices)]
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    return device


def _consumes_premium() -> bool:
    from config.celery import app

    return "premium" in (app.amqp.queues.consume_from or {})


def _on_child_start(**_: object) -> None:
    from billiard.process import current_process

    if not _consumes_premium():  # every pool imports this module; only premium pins
        return
    index = max(0, (getattr(current_process(), "index", 1) or 1) - 1)
    device = pin_device(index, visible_devices())
    if device is None:
        logger.warning("premium child %s: no GPU found; running on the CPU", os.getpid())
    else:
        logger.info("premium child %s pinned to GPU %s", os.getpid(), device)
    # Models load here, once, in the child and on its device, not in the first job.
    from workers import registry

    try:
        warmed = registry.warm_gpu_processors()
    except Exception:  # a model that cannot load leaves its processor to say so per job
        logger.exception("premium child %s: warming the GPU processors failed", os.getpid())
    else:
        logger.info("premium child %s warmed %s", os.getpid(), ", ".join(warmed) or "nothing")


def install_hooks() -> None:
    global _installed
    if not _installed:
        worker_process_init.connect(_on_child_start, weak=False)
        _installed = True
