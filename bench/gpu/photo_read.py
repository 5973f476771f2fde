"""Full photo reads with the mark classifier on the CPU and on CUDA, in one process.

    python bench/gpu/photo_read.py [--photos 24]

Reads the same generated phone photos (seeds ``gpu:0..N-1``) four times, alternating
the classifier's device (cpu, cuda, cpu, cuda) so that drift hits both alike, then once
threshold-only. For each pass: photos/s, ms per photo, the decode's share, and the
classifier call's own time per photo (``Scorer.__call__``, timed from outside). The
crops are cut on the CPU on every path. Needs what ``bench/gpu/devices.py`` needs; a
device that cannot run says why and is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args(argv)

    from bench.gpu.devices import _photo
    from workers.base import BadInput
    from workers.omr.decode import decode_gray
    from workers.omr.learned import model
    from workers.omr.reader import read_gray
    from workers.omr.template import default_template

    with ProcessPoolExecutor(args.jobs) as pool:
        shots = list(pool.map(_photo, range(args.photos)))
    template = default_template()
    scoring = [0.0]
    call = model.Scorer.__call__

    def timed(self: Any, crops: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(self, crops, context)
        finally:
            scoring[0] += time.perf_counter() - started

    model.Scorer.__call__ = timed  # type: ignore[method-assign]

    def read_all(learned: bool) -> tuple[float, float]:
        """(seconds for every photo, of which decoding)."""
        with contextlib.suppress(BadInput):  # warm: the template's layout, the session
            read_gray(decode_gray(shots[0]), template, photo=True, learned=learned)
        scoring[0] = decoding = 0.0
        started = time.perf_counter()
        for data in shots:
            t0 = time.perf_counter()
            gray = decode_gray(data)
            decoding += time.perf_counter() - t0
            with contextlib.suppress(BadInput):  # a refused photo costs its time too
                read_gray(gray, template, photo=True, learned=learned)
        return time.perf_counter() - started, decoding

    n = len(shots)
    print(f"{n} photos; onnxruntime providers seen per device below; {os.cpu_count()} CPUs")
    print("| pass | classifier on | photos/s | ms/photo | decode ms/photo | classifier call ms/photo |")
    print("|---|---|---:|---:|---:|---:|")
    for i, device in enumerate(("cpu", "cuda", "cpu", "cuda"), 1):
        scorer = model.scorer(device)  # type: ignore[arg-type]
        if scorer is None:
            print(f"| {i} | {device}: {model.unavailable(device)} (skipped) | | | | |")  # type: ignore[arg-type]
            continue
        os.environ["OMR_CLASSIFIER_DEVICE"] = device
        took, decoding = read_all(learned=True)
        print(
            f"| {i} | {scorer.provider} | {n / took:.2f} | {took / n * 1000:.1f} | {decoding / n * 1000:.1f}"
            f" | {scoring[0] / n * 1000:.2f} |"
        )
    took, decoding = read_all(learned=False)
    print(f"| 5 | none (threshold only) | {n / took:.2f} | {took / n * 1000:.1f} | {decoding / n * 1000:.1f} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
