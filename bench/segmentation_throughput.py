"""Pages per second of ``question_segmentation`` in one process, on an A4 page at 200 dpi.

    .venv/bin/python bench/segmentation_throughput.py [--repeat 10] [--columns 2] [--questions 12]

The page is the segmentation tests' worksheet (tests/workers/test_segmentation.py):
1654x2339 px, a title and name line, ``--columns`` columns of ``--questions`` numbered
questions in NanumGothic at 11 pt with figure boxes and lines of choices, a page number,
turned by 0.7 degrees and scanned with noise as a JPEG at quality 85. Prints the median
seconds per page and pages/s for

- ``segment``: decoding and layout analysis only (``read_numbers`` off, no artifacts);
- ``run``: the whole processor without Tesseract (crops and layout.png encoded);
- ``run+ocr``: the whole processor reading the question numbers with Tesseract (skipped
  when it is not installed);

and whether the regions found match the drawn questions.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.workers.test_segmentation import _check, worksheet
from workers.base import JobInput
from workers.segmentation import QuestionSegmentationProcessor, decode, segment


def _time(call: Callable[[], object], repeat: int) -> float:
    call()  # warm up: imports, font caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--columns", type=int, default=2)
    parser.add_argument("--questions", type=int, default=12)
    args = parser.parse_args()

    page, truth = worksheet(
        columns=args.columns, questions=args.questions, seed=42, angle=0.7, noise=5.0, jpeg=True, figure_rate=0.3
    )
    processor = QuestionSegmentationProcessor()
    print(f"page: 1654x2339 JPEG, {len(page) / 1024:.0f} KiB, {args.columns} column(s), {args.questions} questions")
    result = processor.run(JobInput(params={"read_numbers": False}, data=page))
    try:
        _check(result.data, truth)
        match = "all questions found, one region each"
    except AssertionError:
        match = f"MISMATCH: {len(result.data['questions'])} regions for {len(truth)} questions"
    print(f"regions: {match}; confidence {result.confidence}")

    settings: list[tuple[str, Callable[[], object]]] = [
        ("segment", lambda: segment(decode(page), read_numbers=False)),
        ("run", lambda: processor.run(JobInput(params={"read_numbers": False}, data=page))),
    ]
    if shutil.which("tesseract"):
        settings.append(("run+ocr", lambda: processor.run(JobInput(params={}, data=page))))
    print(f"{'setting':<10} {'s/page':>8} {'pages/s':>8}")
    for name, call in settings:
        seconds = _time(call, args.repeat)
        print(f"{name:<10} {seconds:8.3f} {1 / seconds:8.2f}")


if __name__ == "__main__":
    main()
