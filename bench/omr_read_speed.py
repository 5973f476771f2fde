"""Per-sheet read time of the OMR reader against cv2.imdecode of the same JPEG.

    .venv/bin/python bench/omr_read_speed.py [--repeat 40]

One filled 200-dpi A4 sheet is scanned (a small tilt, JPEG quality 85) once; then, in
this one process, it is decoded with cv2.imdecode and read with read_sheet, alternately,
``repeat`` times. Prints median times, the ratio, and sheets/s (read only, and read plus
the overlay PNG that the processor also makes).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from tests.omr.corpus import fill_sheet
from workers.omr.decode import decode_gray
from workers.omr.overlay import overlay_png
from workers.omr.reader import read_gray, read_sheet
from workers.omr.template import default_template


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    template = default_template()
    page, _ = fill_sheet(template, random.Random(1))
    img = np.clip(page * 255, 0, 255).astype(np.uint8)
    m = cv2.getRotationMatrix2D((img.shape[1] / 2, img.shape[0] / 2), 1.2, 1.0)
    img = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderValue=255)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    data = bytes(buf)
    arr = np.frombuffer(data, np.uint8)
    print(f"sheet: {img.shape[1]}x{img.shape[0]} JPEG, {len(data) / 1024:.0f} KiB, cv2 threads {cv2.getNumThreads()}")
    timings: dict[str, list[float]] = {"imdecode_color": [], "imdecode_gray": [], "read_sheet": [], "read+overlay": []}
    read_sheet(data, template)  # warm up imports and caches
    for _ in range(args.repeat):
        t = time.perf_counter()
        cv2.imdecode(arr, cv2.IMREAD_COLOR)
        timings["imdecode_color"].append(time.perf_counter() - t)
        t = time.perf_counter()
        cv2.imdecode(arr, cv2.IMREAD_GRAYSCALE)
        timings["imdecode_gray"].append(time.perf_counter() - t)
        t = time.perf_counter()
        read_sheet(data, template)
        timings["read_sheet"].append(time.perf_counter() - t)
        t = time.perf_counter()
        gray = decode_gray(data)
        overlay_png(gray, template, read_gray(gray, template))
        timings["read+overlay"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in timings.items()}
    for k, v in med.items():
        print(f"{k:15s} {v * 1000:7.1f} ms   {1 / v:6.1f} /s")
    print(f"ratio read_sheet / imdecode(color): {med['read_sheet'] / med['imdecode_color']:.2f}")
    print(f"ratio read_sheet / imdecode(gray):  {med['read_sheet'] / med['imdecode_gray']:.2f}")
    print(f"sheets/s (read only): {1 / med['read_sheet']:.1f}; with overlay: {1 / med['read+overlay']:.1f}")


if __name__ == "__main__":
    main()
