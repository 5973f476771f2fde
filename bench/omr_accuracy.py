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
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.omr.corpus import clean, degrade, fill_sheet
from workers.base import BadInput
from workers.omr.reader import read_sheet
from workers.omr.template import default_template


@dataclass
class Tally:
    """Answers read, wrong, silent (wrong and not flagged) and flagged, also by question kind."""

    total: int = 0
    wrong: int = 0
    silent: int = 0
    flagged: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(lambda: [0, 0, 0, 0]))

    def add(self, *, kind: str, is_wrong: bool, review: bool) -> bool:
        """Count one answer; True when it is a silent misread (the caller prints it)."""
        silent = is_wrong and not review
        self.total += 1
        self.wrong += is_wrong
        self.silent += silent
        self.flagged += review
        n = self.by_kind[kind]
        n[0] += 1
        n[1] += is_wrong
        n[2] += silent
        n[3] += review
        return silent

    def right_line(self) -> str:
        right = self.total - self.wrong
        return f"right {right} ({right / max(self.total, 1):.4%}), wrong {self.wrong}, silent {self.silent}"

    def kind_lines(self) -> list[str]:
        return [
            f"  {name:14s} n={n:6d} wrong={w:4d} silent={s:3d} flagged={f:4d}"
            for name, (n, w, s, f) in sorted(self.by_kind.items())
        ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sheets", type=int, default=500)
    parser.add_argument("--seed", default="bench")
    parser.add_argument("--clean", action="store_true", help="read clean renders instead of scans")
    args = parser.parse_args()
    template = default_template()
    tally = Tally()
    bad_id = refused = 0
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
            is_wrong = tuple(q.values) != truth.answers[q.label]
            if tally.add(kind=truth.kinds[q.label], is_wrong=is_wrong, review=q.review):
                print(f"SILENT sheet {i} q{q.label}: read {q.values} truth {truth.answers[q.label]} scores {q.scores}")
    elapsed = time.perf_counter() - start
    print(f"sheets {args.sheets} ({'clean' if args.clean else 'scanned'}), answers {tally.total}, {elapsed:.1f} s")
    print(tally.right_line())
    share = tally.flagged / max(tally.total, 1)
    print(f"flagged {tally.flagged} ({share:.3%}), student id wrong {bad_id}, refused {refused}")
    print("\n".join(tally.kind_lines()))
    return 1 if tally.silent or refused else 0


if __name__ == "__main__":
    sys.exit(main())
