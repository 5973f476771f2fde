"""Accuracy of the OMR reader on a large synthetic corpus (tests/omr/corpus.py).

    .venv/bin/python bench/omr_accuracy.py [--sheets 500] [--seed 1] [--clean]

Reports answers read right, wrong answers split into flagged and *silent* (wrong and
not flagged - the number that must stay 0), the flagged share, student-ID misses and
sheets the reader refused, then a breakdown by what the student did on the question.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.omr.corpus import clean, degrade, fill_sheet
from workers.base import BadInput
from workers.omr.reader import read_sheet
from workers.omr.template import default_template


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sheets", type=int, default=500)
    parser.add_argument("--seed", default="bench")
    parser.add_argument("--clean", action="store_true", help="read clean renders instead of scans")
    args = parser.parse_args()
    template = default_template()
    total = wrong = silent = flagged = bad_id = refused = 0
    by_kind: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])  # n, wrong, silent, flagged
    start = time.perf_counter()
    for i in range(args.sheets):
        rng = random.Random(f"{args.seed}:{i}")
        page, truth = fill_sheet(template, rng)
        data = clean(page) if args.clean else degrade(page, rng)[0]
        try:
            reading = read_sheet(data, template)
        except BadInput as exc:
            refused += 1
            print(f"sheet {i}: refused {exc.code}: {exc.message}")
            continue
        bad_id += reading.student_id != truth.student_id
        for q in reading.questions:
            kind = by_kind[truth.kinds[q.label]]
            is_wrong = tuple(q.values) != truth.answers[q.label]
            total += 1
            wrong += is_wrong
            silent += is_wrong and not q.review
            flagged += q.review
            kind[0] += 1
            kind[1] += is_wrong
            kind[2] += is_wrong and not q.review
            kind[3] += q.review
            if is_wrong and not q.review:
                print(f"SILENT sheet {i} q{q.label}: read {q.values} truth {truth.answers[q.label]} scores {q.scores}")
    elapsed = time.perf_counter() - start
    print(f"sheets {args.sheets} ({'clean' if args.clean else 'scanned'}), answers {total}, {elapsed:.1f} s")
    print(f"right {total - wrong} ({(total - wrong) / max(total, 1):.4%}), wrong {wrong}, silent {silent}")
    print(f"flagged {flagged} ({flagged / max(total, 1):.3%}), student id wrong {bad_id}, refused {refused}")
    for name, (n, w, s, f) in sorted(by_kind.items()):
        print(f"  {name:14s} n={n:6d} wrong={w:4d} silent={s:3d} flagged={f:4d}")
    return 1 if silent or refused else 0


if __name__ == "__main__":
    sys.exit(main())
