"""The OMR reader on vendor-style cards read through templates whose bubble boxes are
smaller than the print, as templates written by hand often are.

    .venv/bin/python bench/omr_card_sweep.py [--cards red,grey,...] [--shares 1.0,0.6,0.5,0.45,0.38]
        [--seeds x1,x2] [--sheets 3] [--photo [--frame WxH] | --circled | --crossed | --ticked]

OMRChecker reads only the box its template gives each bubble, so its users have no reason
to draw the box as large as the printed bubble; the reader measures the print itself
(docs/omr.md, step 4). Each card of ``tests/omr/cards.py`` (dropout-red ellipses with
digits inside, light-grey circles, pink wide ellipses, rectangles, a bubble size and
shape per block, black circles with bold digits, 200 questions) is filled and scanned
(or photographed, ``--photo``) with every seed, and read by the command line through its
OMRChecker template with each block's box cut to each share of the print, centred on
it. The sheets go to a temporary folder, never into the repository.

One line per card, seed and share: answers, flagged, silent misreads (a wrong answer not
in review), refused sheets and wrong student numbers (a "?" digit counts: it is flagged).
It exits 0 only when there is no silent misread.

``--frame WxH`` (with ``--photo``): the photos' frame in pixels, a phone's by default;
``1200x1600`` or ``900x1200`` for a photo sent through a messenger, ``4000x3000`` for
one taken in landscape.

``--circled``: the cards are left blank but for about half the questions, whose student
ringed one choice in pencil instead of filling it (``cards.circled_card``), read through
the card's own template (``--shares`` 1.0); the truth is the circled choice, as a person
reads it, and the student number is blank.

``--crossed``: the cards' student changed about half the answers by filling a bubble,
striking it out with an X drawn past it and filling another (``cards.crossed_card``),
scanned (or photographed, with ``--photo``) and read through the card's own template
(``--shares`` 1.0); the truth is the bubble not crossed out, and the student number is
blank.

``--ticked``: the cards are left blank but for about half the questions, whose student
ticked one choice or drew an X over it instead of filling it (``cards.ticked_card``),
scanned (or photographed, with ``--photo``) and read through the card's own template
(``--shares`` 1.0); the truth is the ticked choice, as a person reads it, and the
student number is blank.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.omr import cards as C
from workers.omr.cli import main as cli_main

#: OMRChecker's QTYPE_MCQ5 letters are the cards' printed choices 1..5.
LETTER = dict(zip(C.MCQ5_LETTERS, C.CHOICES, strict=True))
DEFAULT_CARDS = ("red", "grey", "circle", "corner", "mixed", "dark", "q200")


@dataclass
class Tally:
    answers: int = 0
    flagged: int = 0
    silent: int = 0
    refused: int = 0
    wrong_ids: int = 0
    #: flagged answers by what the pen did there (the truth's kind: "blank", "light",
    #: "erased_blank", ...), and whether the reading was right.
    flagged_kinds: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, other: Tally) -> None:
        for name in ("answers", "flagged", "silent", "refused", "wrong_ids"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.flagged_kinds.update(other.flagged_kinds)


def read(template: Path, sheets: list[C.CardScan], folder: Path, *, photo: bool) -> dict[str, Any]:
    for s in sheets:
        (folder / s.name).write_bytes(s.data)
    out = folder / "out.json"
    argv = ["read", "--template", str(template), "--out", str(out), *(["--mode", "photo"] if photo else [])]
    if cli_main([*argv, *(str(folder / s.name) for s in sheets)]) == 2:
        raise SystemExit(f"the command line refused the template {template}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def tally(sheets: list[C.CardScan], result: dict[str, Any]) -> Tally:
    t = Tally()
    for s in sheets:
        entry = result[s.name]
        if "error" in entry:
            t.refused += 1
            continue
        t.wrong_ids += entry["student_id"] != s.truth.student_id
        review = set(entry["review"])
        for label, want in s.truth.answers.items():
            got = sorted(LETTER.get(v, v) for v in entry["answers"].get(label, []))
            t.answers += 1
            right = got == sorted(want)
            t.flagged += label in review
            t.silent += not right and label not in review
            if label in review:
                t.flagged_kinds[f"{s.truth.kinds.get(label, '?')} ({'right' if right else 'wrong'})"] += 1
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cards", default=",".join(DEFAULT_CARDS))
    ap.add_argument("--shares", default="1.0,0.6,0.5,0.45,0.38", help="box size as a share of the print")
    ap.add_argument("--seeds", default="x1,x2")
    ap.add_argument("--sheets", type=int, default=3, help="sheets per card and seed")
    ap.add_argument("--photo", action="store_true", help="phone photos read in photo mode, not scans")
    ap.add_argument("--circled", action="store_true", help="choices ringed instead of filled, scanned")
    ap.add_argument("--crossed", action="store_true", help="marks struck out with an X beside the answer, scanned")
    ap.add_argument("--ticked", action="store_true", help="choices ticked or crossed instead of filled, scanned")
    ap.add_argument("--frame", help="the photos' frame, WxH pixels (with --photo; a phone's by default)")
    args = ap.parse_args()
    frame = None
    if args.frame:
        if not args.photo:
            ap.error("--frame goes with --photo")
        sides = args.frame.lower().split("x")
        if len(sides) != 2 or not all(side.isdigit() and int(side) > 0 for side in sides):
            ap.error(f"--frame takes WIDTHxHEIGHT in pixels, such as 1200x1600, not {args.frame!r}")
        frame = (int(sides[0]), int(sides[1]))
    total = Tally()
    for name in args.cards.split(","):
        card = C.CARDS[name]
        for seed in args.seeds.split(","):
            if args.circled:
                sheets = C.circled_scans(card, args.sheets, seed)
            elif args.crossed:
                sheets = C.crossed_scans(card, args.sheets, seed, photo=args.photo, frame=frame)
            elif args.ticked:
                sheets = C.ticked_scans(card, args.sheets, seed, photo=args.photo, frame=frame)
            else:
                sheets = list(C.make_cards(card, args.sheets, seed, how="photo" if args.photo else "scan", frame=frame))
            for share in (float(x) for x in args.shares.split(",")):
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    template = C.write_omrchecker(card, folder / "omrchecker", box_share=share)
                    t = tally(sheets, read(template, sheets, folder, photo=args.photo))
                print(
                    f"{name:7s} {seed:4s} boxes x{share:<5} answers {t.answers:4d} flagged {t.flagged:3d} "
                    f"silent {t.silent} refused {t.refused} wrong ids {t.wrong_ids}",
                    flush=True,
                )
                total.add(t)
    print(
        f"total: answers {total.answers}, flagged {total.flagged}, silent {total.silent}, "
        f"sheets refused {total.refused}, wrong student numbers {total.wrong_ids}"
    )
    print("flagged by mark: " + ", ".join(f"{kind} {n}" for kind, n in sorted(total.flagged_kinds.items())))
    return 0 if total.silent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
