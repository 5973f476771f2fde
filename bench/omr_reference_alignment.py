"""The OMR reader on sheets aligned by a reference picture of the blank card (OMRChecker's
``FeatureBasedAlignment``), small and compressed, scanned and photographed.

    .venv/bin/python bench/omr_reference_alignment.py [--seeds 6]

The sheet is the plain card of ``tests/omr/test_alignment_kinds.py``: a heading, two
blocks of bubbles, hundreds alike, so the features the alignment pairs lie in the
heading. Scans: each seed turned by a few degrees and shrunk to 0.5, 0.6 and 0.7 of the
reference, through a template with ``2d`` and one without. Photos: the page on a desk in
perspective, upright and upside down, shrunk to 1.0, 0.8, 0.6 and 0.5, at JPEG quality
70 and 90, in photo mode. Nothing is written to disk.

One line per kind: sheets read right, sheets refused, answers wrong, silent misreads (a
wrong answer not in review), and the median time ``read_gray`` took a sheet (decoded
already; one process). It exits 0 only when there is no silent misread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from tests.omr import test_alignment_kinds as kinds
from workers.omr.errors import OmrError
from workers.omr.reader import read_gray
from workers.omr.template import Template


@dataclass
class Tally:
    right: int = 0
    refused: int = 0
    wrong: int = 0
    silent: int = 0
    seconds: list[float] = field(default_factory=list)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_GRAYSCALE), np.uint8)


def _scans(seeds: int, *, affine: bool) -> Iterator[tuple[np.ndarray, Template]]:
    template = kinds.reference_template(affine=affine)
    page = kinds._page(template, kinds._marks(template))
    for seed in range(seeds):
        for size in (0.5, 0.6, 0.7):
            scan, _ = kinds._scan(page, angle=2 + seed, scale=size, upside_down=False, seed=seed)
            yield _jpeg(scan, 70), template


def _photos() -> Iterator[tuple[np.ndarray, Template]]:
    template = kinds.reference_template()
    page = kinds._page(template, kinds._marks(template))
    for upside_down in (False, True):
        photo, _ = kinds._photo(page, upside_down=upside_down)
        for size in (1.0, 0.8, 0.6, 0.5):
            small = cv2.resize(photo, None, fx=size, fy=size, interpolation=cv2.INTER_AREA)
            for quality in (70, 90):
                yield _jpeg(small, quality), template


def tally(sheets: Iterator[tuple[np.ndarray, Template]], *, photo: bool) -> Tally:
    t = Tally()
    for image, template in sheets:
        truth = kinds._marks(template)
        began = time.perf_counter()
        try:
            reading = read_gray(image, template, photo=photo)
        except OmrError:
            t.seconds.append(time.perf_counter() - began)
            t.refused += 1
            continue
        t.seconds.append(time.perf_counter() - began)
        wrong = [q for q, want in truth.items() if reading.answers[q] != want]
        t.right += not wrong
        t.wrong += len(wrong)
        t.silent += len(set(wrong) - set(reading.review))
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=6, help="scans per size and template kind")
    args = ap.parse_args()
    runs = (
        ("scans, 2d", tally(_scans(args.seeds, affine=True), photo=False), 3 * args.seeds),
        ("scans, homography", tally(_scans(args.seeds, affine=False), photo=False), 3 * args.seeds),
        ("photos", tally(_photos(), photo=True), 16),
    )
    silent = 0
    for name, t, sheets in runs:
        print(
            f"{name:18s} sheets {sheets:3d} right {t.right:3d} refused {t.refused:3d} "
            f"wrong {t.wrong:3d} silent {t.silent} median {1000 * statistics.median(t.seconds):.0f} ms a sheet"
        )
        silent += t.silent
    return 0 if silent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
