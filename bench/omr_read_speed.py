"""Per-sheet time of the OMR reader against cv2.imdecode of the same JPEG.

    .venv/bin/python bench/omr_read_speed.py [--repeat 40] [--profile]

One filled 200-dpi A4 sheet is scanned (a small tilt, JPEG quality 85) once. Then, in
this one process, each round times, back to back on the same bytes:

- ``cv2.imdecode(IMREAD_COLOR)``: the baseline of the target (at most 3x);
- ``cv2.imdecode(IMREAD_GRAYSCALE)``: for reference (the reader decodes in grey);
- ``read_sheet``: decode + markers + sampling + classification (read only);
- ``processor``: ``OmrGradingProcessor().run(JobInput(...))``, the full job path:
  decode, read, overlay PNG and the result dict.

Rounds alternate the four, so a neighbour's load on a shared machine hits them alike;
medians over ``repeat`` rounds are reported, with each path's ratio to the colour
decode and its sheets/s. ``--profile`` prints a cProfile of the processor path instead.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from tests.omr.corpus import fill_sheet
from workers.base import JobInput
from workers.omr.processor import OmrGradingProcessor
from workers.omr.reader import read_sheet
from workers.omr.template import DEFAULT_TEMPLATE, load_template


def scan_bytes() -> bytes:
    template = load_template(DEFAULT_TEMPLATE)
    page, _ = fill_sheet(template, random.Random(1))
    img = np.clip(page * 255, 0, 255).astype(np.uint8)
    m = cv2.getRotationMatrix2D((img.shape[1] / 2, img.shape[0] / 2), 1.2, 1.0)
    img = np.asarray(cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderValue=255), np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(buf)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    template_json = json.loads(DEFAULT_TEMPLATE.read_text(encoding="utf-8"))
    template = load_template(template_json)
    data = scan_bytes()
    arr = np.frombuffer(data, np.uint8)
    processor = OmrGradingProcessor()
    job = JobInput(params={"template": template_json}, data=data, filename="sheet.jpg")
    gray = cv2.imdecode(arr, cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    h, w = gray.shape
    load = os.getloadavg()[0]
    print(f"sheet: {w}x{h} JPEG, {len(data) / 1024:.0f} KiB; cv2 threads {cv2.getNumThreads()}, load {load:.2f}")
    steps: dict[str, Callable[[], object]] = {
        "imdecode colour": lambda: cv2.imdecode(arr, cv2.IMREAD_COLOR),
        "imdecode grey": lambda: cv2.imdecode(arr, cv2.IMREAD_GRAYSCALE),
        "read_sheet": lambda: read_sheet(data, template),
        "processor": lambda: processor.run(job),
    }
    for step in steps.values():  # warm up imports and caches
        step()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.repeat):
            processor.run(job)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return
    timings: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeat):
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            timings[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in timings.items()}
    base = med["imdecode colour"]
    print(f"{'step':16s} {'median':>9s} {'sheets/s':>9s} {'/ colour':>9s}")
    for k, v in med.items():
        print(f"{k:16s} {v * 1000:6.1f} ms {1 / v:9.1f} {v / base:9.2f}")
    print(f"ratio processor (decode+read+overlay) / imdecode colour: {med['processor'] / base:.2f}")
    print(f"ratio read_sheet (decode+read) / imdecode colour:        {med['read_sheet'] / base:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
