"""Inference of the mark classifier (``marks.onnx``) with onnxruntime.

One ONNX session per process, made on first use and kept at module level: in a prefork
worker that first use is a job in the child, after fork, and after ``ai_tasks.gpu`` has
pinned the child's device in CUDA_VISIBLE_DEVICES. A session made by another process
(inherited through fork) is never reused: its threads did not survive the fork.

Device: CUDA when onnxruntime offers the CUDA provider (the ``onnxruntime-gpu`` build)
and CUDA_VISIBLE_DEVICES does not hide every GPU (``ai_tasks.gpu`` sets it to "" on a
premium child with no GPU); otherwise the CPU, with one intra-op thread, because a
worker host runs one prefork child per core. The choice is logged once per process.
The command line, alone in its process, gives the CPU session every core
(``set_threads``), as OpenCV uses them.

``OMR_CLASSIFIER_DEVICE`` (``auto``, ``cpu`` or ``cuda``) overrides the choice; the
GPU bench uses it to time both devices in one process.

No runtime or no model file is not an error: ``scorer()`` returns None, says why once
in the log, and the reader stays threshold-only.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

MODEL_NAME: Final = "marks-v2"
MODEL_PATH: Final = Path(__file__).with_name("marks.onnx")
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class Scorer:
    session: Any  # onnxruntime.InferenceSession
    provider: str  # the provider the session really runs on
    name: str = MODEL_NAME

    def __call__(self, crops: npt.NDArray[np.float32], context: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """P(marked) per bubble, for a whole sheet's bubbles in one call."""
        import numpy as np

        if len(crops) == 0:
            return np.zeros(0, np.float32)
        out = self.session.run(["p_marked"], {"crops": crops, "context": context})[0]
        return np.asarray(out, np.float32).reshape(-1)


_lock = threading.Lock()
# (pid, device, path, intra-op threads) -> Scorer, or the reason there is none
_cache: dict[tuple[int, str, str, int], Scorer | str] = {}
#: intra-op threads of a CPU session made from now on (set_threads).
_threads = 1


def set_threads(threads: int) -> None:
    """Give the CPU sessions made from now on in this process ``threads`` intra-op
    threads (1 by default: a worker host runs one prefork child per core). For a process
    that reads alone on its machine, such as the command line. The scores stay the same
    to the bit (the omr-dev photos; tests/omr/test_learned.py)."""
    global _threads
    _threads = max(1, threads)


def _cuda_allowed() -> bool:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible is None or visible.strip() not in ("", "-1")


def _load(device: Device, path: Path, threads: int = 1) -> Scorer | str:
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError:
        return "onnxruntime is not installed"
    if not path.is_file():
        return f"no model file at {path}"
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in available and _cuda_allowed():
        providers.insert(0, "CUDAExecutionProvider")
    elif device == "cuda":
        why = "CUDA_VISIBLE_DEVICES hides every GPU" if not _cuda_allowed() else "onnxruntime has no CUDA provider"
        return f"CUDA asked for, but {why} (providers: {', '.join(available)})"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if threads > 1:
        # Idle pool threads sleep instead of spinning: between two sheets' calls the
        # cores belong to OpenCV's own threads.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # a broken file or a provider that fails to start
        return f"the model at {path} did not load: {exc}"
    used = session.get_providers()[0]
    if device == "cuda" and used != "CUDAExecutionProvider":
        return f"CUDA asked for, but the session fell back to {used}"
    return Scorer(session, used)


def _key(device: Device | None, path: Path | None) -> tuple[int, str, str, int]:
    if device is None:
        env = os.environ.get("OMR_CLASSIFIER_DEVICE", "auto")
        device = cast(Device, env) if env in ("auto", "cpu", "cuda") else "auto"
    return (os.getpid(), device, str(path or MODEL_PATH), _threads)


def _get(device: Device | None, path: Path | None) -> Scorer | str:
    key = _key(device, path)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        hit = _load(cast(Device, key[1]), Path(key[2]), key[3])
        _cache[key] = hit
    pid = key[0]
    if isinstance(hit, str):
        logger.warning("OMR mark classifier off in process %s: %s; photos are read threshold-only", pid, hit)
    elif hit.provider == "CUDAExecutionProvider":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<all>")
        logger.info("OMR mark classifier %s on the GPU (CUDA_VISIBLE_DEVICES=%s) in process %s", hit.name, visible, pid)
    else:
        logger.warning("OMR mark classifier %s on the CPU in process %s (no GPU in use)", hit.name, pid)
    return hit


def scorer(device: Device | None = None, path: Path | None = None) -> Scorer | None:
    """This process's classifier, or None (logged once) when it cannot run here.

    ``device`` None: OMR_CLASSIFIER_DEVICE, else "auto"; ``path`` None: ``MODEL_PATH``.
    """
    hit = _get(device, path)
    return hit if isinstance(hit, Scorer) else None


def unavailable(device: Device | None = None, path: Path | None = None) -> str | None:
    """Why ``scorer(device, path)`` is None in this process; None when it is not."""
    hit = _get(device, path)
    return hit if isinstance(hit, str) else None


def reset() -> None:
    """Forget every session and go back to one thread (tests)."""
    global _threads
    with _lock:
        _cache.clear()
        _threads = 1
