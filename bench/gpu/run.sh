#!/usr/bin/env bash
# GPU against CPU for the premium pool's OMR photo reader, in one run, in under 5 minutes:
# the learned mark classifier's throughput (one sheet per call, and stacked sheets), then
# the full photo read (decode, align, read, classify) on 24 photos with the classifier
# on each device in alternating passes (bench/gpu/photo_read.py), photos/s in one process.
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
# Measured on an NVIDIA H100 on 2026-11-26 (docs/benchmarks.md). That host had no network
# and took at most 64 MiB per call, so the 255 MB onnxruntime-gpu wheel went over in five
# pieces, was joined and checked against its sha256 there, installed with
# `pip install --no-deps --target /tmp/site`, and run with PYTHONPATH=/tmp/site:. and
# LD_LIBRARY_PATH naming the host's CUDA 13 and cuDNN 9 libraries; PYTHON=$(command -v python3).
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
# The whole run stays under 5 minutes even on a slow host.
timeout 180 "$PY" bench/gpu/devices.py "$@"
timeout 110 "$PY" bench/gpu/photo_read.py
