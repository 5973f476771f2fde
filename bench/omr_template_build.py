"""How long building a template from one blank card takes (workers/omr/blank.py).

    .venv/bin/python bench/omr_template_build.py [--repeat 5] [DEV]

Times ``propose_template`` (decode, frame, bubbles, grid, template) in this process on:

- the omr-dev card's blank scan (a 200-dpi A4 scan, 45 questions, 8 ID digits) and its
  blank phone photo, when the omr-dev folder (``DEV``, default ``../shared/omr-dev``) is
  there;
- the generator's 200-question card (tests/omr/cards.py) printed blank and scanned
  (seeded), the biggest layout a card has.

Prints the median and the slowest of ``repeat`` runs for each; the target is under 5 s
on a 200-dpi A4 scan.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DEV = ROOT.parent / "shared" / "omr-dev"


def _time(label: str, data: bytes, repeat: int, **counts: int | bool) -> None:
    from workers.omr.blank import propose_template

    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        propose_template(data, **counts)  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - start)
    print(f"{label}: median {statistics.median(seconds):.2f} s, slowest {max(seconds):.2f} s over {repeat} runs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dev", nargs="?", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    blank = args.dev / "blank"
    if (blank / "blank-scan.jpg").exists():
        counts = {"questions": 45, "choices": 5, "id_digits": 8}
        _time("omr-dev blank scan", (blank / "blank-scan.jpg").read_bytes(), args.repeat, **counts)
        _time("omr-dev blank photo", (blank / "blank-photo.jpg").read_bytes(), args.repeat, photo=True, **counts)
    from tests.omr import cards
    from tests.omr.corpus import degrade

    card = cards.q200_card()
    rng = random.Random("bench-blank")
    data, _ = degrade(cards.fill_card(card, rng, blank=True).page, rng, upside_down=False)
    _time("200-question card, blank scan", data, args.repeat, questions=200, choices=5, id_digits=8)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
