"""The photo reader with and without the learned mark classifier, on the same photos.

    .venv/bin/python bench/omr_classifier.py [--sheets 100] [--seed photo] [--max-tilt 25] [--jobs 2]
                                             [--cache DIR] [--device auto|cpu|cuda]

Photos are made as bench/omr_photo_accuracy.py makes them (``fill_sheet`` then
``photograph``, seeds ``<seed>:<i>``, so ``--seed photo`` gives the same 100 photos),
``--jobs`` processes generating them (the slow part; ``--cache`` keeps the JPEGs for the
next run). Then *this* process reads each photo twice, one after the other: threshold
only (``learned=False``) and with the classifier (``learned=True``), timing decode +
read for each, so the photos/s figures are one process's, on whatever device the
classifier got (``--device``, via OMR_CLASSIFIER_DEVICE). The classifier's own cost
(cut the crops, score the sheet's bubbles in one batch) is timed apart as well.

Reports, for each reader: answers right, wrong, silent (wrong and not flagged: must be
0), flagged, student IDs right, photos/s; and what the classifier did (fields cleared,
fields sent to a person on a disagreement). Exit 1 on a silent wrong answer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.omr_accuracy import Tally
from tests.omr.corpus import Truth, fill_sheet, photograph
from workers.base import BadInput
from workers.omr.template import default_template


def _photo(seed: str, i: int, max_tilt: float, cache: Path | None) -> tuple[int, bytes, Truth]:
    template = default_template()
    rng = random.Random(f"{seed}:{i}")
    page, truth = fill_sheet(template, rng)
    path = cache / f"{seed}-{i:04d}-{max_tilt:g}.jpg" if cache else None
    if path is not None and path.is_file():
        return i, path.read_bytes(), truth
    data = photograph(page, rng, max_tilt=max_tilt)
    if path is not None:
        path.write_bytes(data)
    return i, data, truth


def photos(seed: str, count: int, max_tilt: float, jobs: int, cache: Path | None) -> list[tuple[int, bytes, Truth]]:
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(_photo, seed, i, max_tilt, cache) for i in range(count)]
        return sorted((f.result() for f in futures), key=lambda r: r[0])


def classifier_cost(gray, template, runs: int = 5) -> tuple[float, float]:
    """Seconds to cut one sheet's crops, and to score them in one batch (best of ``runs``)."""
    from workers.omr.align import align
    from workers.omr.classify import sheet_levels
    from workers.omr.learned import scorer
    from workers.omr.learned.crops import context, crops
    from workers.omr.sample import sample

    score = scorer()
    assert score is not None
    alignment = align(gray, template, photo=True)
    samples = sample(gray, template, alignment, spacing=template)
    levels = sheet_levels(samples.fill, samples.index)
    cut, run = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        x = crops(gray, template, alignment)
        c = context(samples.fill, samples.index, levels)
        t1 = time.perf_counter()
        score(x, c)
        run.append(time.perf_counter() - t1)
        cut.append(t1 - t0)
    return min(cut), min(run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sheets", type=int, default=100)
    parser.add_argument("--seed", default="photo")
    parser.add_argument("--max-tilt", type=float, default=25.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    os.environ["OMR_CLASSIFIER_DEVICE"] = args.device
    from workers.omr.decode import decode_gray
    from workers.omr.learned import scorer
    from workers.omr.reader import read_gray

    template = default_template()
    score = scorer()
    if score is None:
        print("the classifier cannot run here (see the log line above)")
        return 2
    start = time.perf_counter()
    shots = photos(args.seed, args.sheets, args.max_tilt, args.jobs, args.cache)
    made = time.perf_counter() - start
    tallies = {"threshold": Tally(), "classifier": Tally()}
    seconds = {"threshold": 0.0, "classifier": 0.0}
    ids = {"threshold": 0, "classifier": 0}
    verdicts: dict[str, int] = {}
    read = 0
    refused: dict[str, int] = {}
    costs: list[tuple[float, float]] = []
    refused_at: set[int] = set()
    for learned in (False, True):  # one-time work (template layout, blank mask, session) is not timed
        with contextlib.suppress(BadInput):
            read_gray(decode_gray(shots[0][1]), template, photo=True, learned=learned)
    for i, data, truth in shots:
        reading = None
        # Alternate which reader goes first, so neither always finds the caches warm.
        pair = (("threshold", False), ("classifier", True))
        for name, learned in pair if i % 2 == 0 else pair[::-1]:
            t0 = time.perf_counter()
            try:
                reading = read_gray(decode_gray(data), template, photo=True, learned=learned)
            except BadInput as exc:
                seconds[name] += time.perf_counter() - t0
                reading = None
                if learned:
                    refused[exc.code] = refused.get(exc.code, 0) + 1
                    refused_at.add(i)
                continue
            seconds[name] += time.perf_counter() - t0
            if learned:
                read += 1
                assert reading.classifier == score.name
            ids[name] += reading.student_id == truth.student_id
            for q in reading.questions:
                true = truth.answers[q.label]
                if tallies[name].add(kind=truth.kinds[q.label], is_wrong=tuple(q.values) != true, review=q.review):
                    print(f"SILENT ({name}) sheet {i} q{q.label}: read {q.values} truth {true} scores {q.scores}")
                if learned and q.classifier:
                    verdicts[q.classifier] = verdicts.get(q.classifier, 0) + 1
        if len(costs) < 10 and i not in refused_at:
            costs.append(classifier_cost(decode_gray(data), template))
    n = len(shots)
    print(
        f"photos {n} (seeds {args.seed}:0..{n - 1}, max tilt {args.max_tilt:g}), read {read}, "
        f"refused {sum(refused.values())} {refused or ''}; made in {made:.0f} s with {args.jobs} processes"
    )
    print(f"classifier {score.name} on {score.provider}")
    print("| reader | answers | right | wrong | silent | flagged | student id right | photos/s (1 process) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, t in tallies.items():
        right = t.total - t.wrong
        print(
            f"| {name} | {t.total} | {right} ({right / max(t.total, 1):.2%}) | {t.wrong} | {t.silent} | "
            f"{t.flagged} ({t.flagged / max(t.total, 1):.2%}) | {ids[name]} / {read} | {n / seconds[name]:.2f} |"
        )
    print(f"question verdicts of the classifier: {dict(sorted(verdicts.items()))}")
    if costs:
        cut = statistics.median(c[0] for c in costs)
        run = statistics.median(c[1] for c in costs)
        print(f"classifier per sheet (median of {len(costs)}): crops {cut * 1000:.1f} ms, score {run * 1000:.1f} ms")
    for name, t in tallies.items():
        print(f"{name} by kind:")
        print("\n".join(t.kind_lines()))
    return 1 if any(t.silent for t in tallies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
