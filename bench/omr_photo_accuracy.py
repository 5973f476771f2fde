"""Accuracy of the OMR reader in photo mode on synthetic phone photos (tests/omr/corpus.py).

    .venv/bin/python bench/omr_photo_accuracy.py [--sheets 100] [--seed photo] [--max-tilt 25] [--jobs 4]

Each sheet is filled as in bench/omr_accuracy.py, then photographed (``photograph``: a
desk, a hand at an edge, up to ``--max-tilt`` degrees of perspective, uneven light and a
shadow band, a colour cast, motion blur, JPEG 60-90 at a phone's resolution) and read
with ``photo=True``. Reports the same figures as the scan bench: answers right, wrong
split into flagged and *silent*, the flagged share, student IDs right, and the sheets
refused, counted by code; then the headline figures, counted over every photo (a refused
photo's answers and ID count as not right).
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.omr_accuracy import Tally
from tests.omr.corpus import fill_sheet, photograph
from workers.base import BadInput
from workers.omr.reader import read_sheet
from workers.omr.template import default_template

# (label, truth kind, wrong, review, read values, true values) per question
Row = tuple[str, str, bool, bool, tuple[str, ...], tuple[str, ...]]


def _one(seed: str, i: int, max_tilt: float) -> tuple[int, str | None, bool, list[Row], float]:
    """Photograph and read sheet i: (i, refusal code, id right, rows, read seconds)."""
    template = default_template()
    rng = random.Random(f"{seed}:{i}")
    page, truth = fill_sheet(template, rng)
    data = photograph(page, rng, max_tilt=max_tilt)
    start = time.perf_counter()
    try:
        reading = read_sheet(data, template, photo=True)
    except BadInput as exc:
        return i, exc.code, False, [], time.perf_counter() - start
    took = time.perf_counter() - start
    rows = [
        (
            q.label,
            truth.kinds[q.label],
            tuple(q.values) != truth.answers[q.label],
            q.review,
            tuple(q.values),
            truth.answers[q.label],
        )
        for q in reading.questions
    ]
    return i, None, reading.student_id == truth.student_id, rows, took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sheets", type=int, default=100)
    parser.add_argument("--seed", default="photo")
    parser.add_argument("--max-tilt", type=float, default=25.0)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    tally = Tally()
    id_right = read = 0
    refused: collections.Counter[str] = collections.Counter()
    read_time = 0.0
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(_one, args.seed, i, args.max_tilt) for i in range(args.sheets)]
        results = sorted((f.result() for f in futures), key=lambda r: r[0])
    for i, code, id_ok, rows, took in results:
        read_time += took
        if code is not None:
            refused[code] += 1
            print(f"sheet {i}: refused {code}")
            continue
        read += 1
        id_right += id_ok
        for label, kind_name, is_wrong, review, values, true in rows:
            if tally.add(kind=kind_name, is_wrong=is_wrong, review=review):
                print(f"SILENT sheet {i} q{label}: read {values} truth {true}")
    elapsed = time.perf_counter() - start
    print(
        f"photos {args.sheets} (max tilt {args.max_tilt:g} deg), read {read}, answers {tally.total}, "
        f"{elapsed:.1f} s wall, {read_time / max(args.sheets, 1):.2f} s read per photo"
    )
    print(tally.right_line())
    print(f"flagged {tally.flagged} ({tally.flagged / max(tally.total, 1):.3%})")
    print(f"student id right {id_right}/{read} ({id_right / max(read, 1):.1%} of sheets read)")
    print(f"refused {sum(refused.values())}: {dict(sorted(refused.items())) or '-'}")
    # The headline figures count a refused photo's answers and ID as not right.
    every = args.sheets * len(default_template().questions)
    right = tally.total - tally.wrong
    print(
        f"over all photos: answers right {right}/{every} ({right / max(every, 1):.2%}), "
        f"flagged {tally.flagged / max(every, 1):.2%}, student id right {id_right}/{args.sheets} "
        f"({id_right / max(args.sheets, 1):.1%}); {args.sheets / elapsed:.2f} photos/s generated and read"
    )
    print("\n".join(tally.kind_lines()))
    return 1 if tally.silent or refused else 0


if __name__ == "__main__":
    sys.exit(main())
