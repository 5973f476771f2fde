"""The premium pool's OMR classifier and photo read, CUDA against the CPU, in one process.

Run it through ``bench/gpu/run.sh`` (which bounds it to 5 minutes). It installs nothing:
it uses the project's venv as it is. CUDA needs the ``onnxruntime-gpu`` build in that
venv in place of ``onnxruntime`` (see workers/omr/learned/README.md); where it is
missing, or there is no GPU, the CUDA rows say why and only the CPU is measured.

1. Classifier alone: crops of ``--photos`` generated phone photos (280 bubbles a sheet),
   scored one sheet per call (as the reader does) and ``--stack`` sheets per call,
   repeated for about ``--seconds`` each; bubbles/s and ms per call.
2. Full photo read, one process: decode + align + threshold read + classifier, photos/s,
   threshold-only and with the classifier on each device.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _photo(i: int) -> bytes:
    from tests.omr.corpus import fill_sheet, photograph
    from workers.omr.template import default_template

    rng = random.Random(f"gpu:{i}")
    page, _ = fill_sheet(default_template(), rng)
    return photograph(page, rng)


def _timed(call, seconds: float) -> tuple[int, float]:
    call()  # warm up (CUDA: the first call pays for kernels and the transfer setup)
    n, start = 0, time.perf_counter()
    while True:
        call()
        n += 1
        took = time.perf_counter() - start
        if took >= seconds:
            return n, took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--stack", type=int, default=16, help="sheets per call in the stacked run")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args(argv)

    import numpy as np

    from workers.base import BadInput
    from workers.omr.align import align
    from workers.omr.classify import sheet_levels
    from workers.omr.decode import decode_gray
    from workers.omr.learned import model
    from workers.omr.learned.crops import context, crops
    from workers.omr.reader import read_gray
    from workers.omr.sample import sample
    from workers.omr.template import default_template

    try:
        import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information

        print(f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            print("onnxruntime-gpu is not installed in this venv: CUDA rows cannot be measured")
    except ImportError:
        print("onnxruntime is not installed in this venv: nothing to measure")
        return 2
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}, {os.cpu_count()} CPUs")

    template = default_template()
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        shots = list(pool.map(_photo, range(args.photos)))
    print(f"{len(shots)} photos (seeds gpu:0..{len(shots) - 1}) made in {time.perf_counter() - start:.0f} s")
    grays, xs, cs = [], [], []
    for data in shots:
        gray = decode_gray(data)
        try:
            alignment = align(gray, template, photo=True)
        except BadInput:
            continue
        samples = sample(gray, template, alignment, spacing=template)
        grays.append(gray)
        xs.append(crops(gray, template, alignment))
        cs.append(context(samples.fill, samples.index, sheet_levels(samples.fill, samples.index)))
    if not grays:
        print("no photo aligned")
        return 1
    per_sheet = len(xs[0])
    reps = -(-args.stack // len(xs))
    stack_x = np.concatenate(xs * reps)[: args.stack * per_sheet]
    stack_c = np.concatenate(cs * reps)[: args.stack * per_sheet]

    def read_pair() -> tuple[str, str]:
        """Photos/s threshold-only and with the classifier, interleaved photo by photo (two
        passes, alternating which goes first) so that load drift hits both alike."""
        for learned in (False, True):  # warm up: the template's layout and blank mask
            with contextlib.suppress(BadInput):
                read_gray(decode_gray(shots[0]), template, photo=True, learned=learned)
        took = {False: 0.0, True: 0.0}
        for rep in range(2):
            for i, data in enumerate(shots):
                for learned in (False, True) if (i + rep) % 2 == 0 else (True, False):
                    t0 = time.perf_counter()
                    with contextlib.suppress(BadInput):  # a refused photo costs its time too
                        read_gray(decode_gray(data), template, photo=True, learned=learned)
                    took[learned] += time.perf_counter() - t0
        n = 2 * len(shots)
        return f"{n / took[False]:.2f} photos/s", f"{n / took[True]:.2f} photos/s"

    threshold_rate = ""
    rows: list[tuple[str, str, str, str]] = []
    for device in ("cpu", "cuda"):
        score = model.scorer(device)
        if score is None:
            why = model.unavailable(device)
            rows.append((f"classifier, 1 sheet/call ({per_sheet} bubbles)", device, "no GPU", why or ""))
            rows.append((f"classifier, {args.stack} sheets/call", device, "no GPU", ""))
            rows.append(("photo read with classifier", device, "no GPU", ""))
            continue
        k = [0]

        def one(score=score, k=k) -> None:
            score(xs[k[0] % len(xs)], cs[k[0] % len(cs)])
            k[0] += 1

        n, took = _timed(one, args.seconds)
        rows.append(
            (
                f"classifier, 1 sheet/call ({per_sheet} bubbles)",
                score.provider,
                f"{n * per_sheet / took:,.0f} bubbles/s",
                f"{took / n * 1000:.2f} ms/call",
            )
        )
        n, took = _timed(lambda score=score: score(stack_x, stack_c), args.seconds)
        rows.append(
            (
                f"classifier, {args.stack} sheets/call",
                score.provider,
                f"{n * len(stack_x) / took:,.0f} bubbles/s",
                f"{took / n * 1000:.2f} ms/call",
            )
        )
        os.environ["OMR_CLASSIFIER_DEVICE"] = device
        plain, learned_rate = read_pair()
        threshold_rate = threshold_rate or plain
        rows.append(("photo read with classifier", score.provider, learned_rate, ""))
    rows.append(("photo read, threshold only", "-", threshold_rate, "timed beside the CPU classifier row"))
    print()
    print("| what | device | rate | per call / note |")
    print("|---|---|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
