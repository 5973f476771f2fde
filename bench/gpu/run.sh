#!/usr/bin/env bash
# GPU against CPU for the premium pool's OMR photo reader, in one run, in under 5 minutes:
# the learned mark classifier's throughput (one sheet per call, and stacked sheets) and
# the full photo read (decode, align, read, classify), photos/s in one process.
#
#   bench/gpu/run.sh [--photos 8] [--stack 16] [--seconds 3]
#
# Run it on the GPU host from the repository root's checkout. That host has no network:
# this script installs nothing and uses .venv as bin/setup left it. CUDA needs the
# onnxruntime-gpu build (1.31.1, same as the pinned onnxruntime) installed into .venv in
# place of onnxruntime beforehand (see workers/omr/learned/README.md); without it, or
# without a GPU, the CUDA rows read "no GPU" with the reason, and the CPU rows are still
# measured.
#
# NOT YET MEASURED ON A GPU: no GPU host was available when this was written; the only
# run so far is the CPU-only one recorded in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "bench/gpu/run.sh: $PY is missing; run bin/setup first (nothing is installed from here)" >&2
  exit 2
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L || true
else
  echo "bench/gpu/run.sh: nvidia-smi not found: no GPU on this host, CPU rows only"
fi
# 290 s: the whole run stays under 5 minutes even on a slow host.
exec timeout 290 "$PY" bench/gpu/devices.py "$@"
