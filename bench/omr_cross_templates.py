"""Sheets read through templates of other cards: what a wrong template lets through.

    .venv/bin/python bench/omr_cross_templates.py [--photo] [--markers-only] FOLDER...

Each FOLDER is laid out as OMRChecker has it (a template.json, its pictures in it or in
folders below; e.g. OMRChecker's ``samples/``, a fork's ``inputs/``). Every template
found is one card; every picture under it is one of that card's sheets. Each sheet is
read through every other card's template, and the bench prints each reading that is not
refused, with how many of its answers went to review: a sheet read through another
card's template is wrong wherever an answer is not flagged. ``--markers-only`` takes
only templates that find their sheet by corner markers (CropOnMarkers). Nothing of those
folders ships with this repository.

It exits 0 always: the count is a figure, kept in docs/benchmarks.md, not a gate (a
template that lists a part of a dense card's bubbles can fit another card's grid).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.omr_public_samples import images, template_for
from workers.base import BadInput
from workers.omr.omrchecker import OmrCheckerTemplate, load_omrchecker_template
from workers.omr.reader import read_sheet


def cards(folders: list[Path], *, markers_only: bool) -> dict[Path, tuple[OmrCheckerTemplate, list[Path]]]:
    """template.json -> (its template, its sheets), for every template that loads."""
    out: dict[Path, tuple[OmrCheckerTemplate, list[Path]]] = {}
    for root in folders:
        for image in images(root.resolve()):
            tpath = template_for(image, root.resolve())
            assert tpath is not None
            if tpath not in out:
                try:
                    sheet = load_omrchecker_template(tpath)
                except BadInput:
                    continue
                if markers_only and sheet.template.marker_image is None:
                    continue
                out[tpath] = (sheet, [])
            out[tpath][1].append(image)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--photo", action="store_true", help="read in photo mode")
    parser.add_argument("--markers-only", action="store_true", help="only templates with CropOnMarkers")
    args = parser.parse_args()
    found = cards(args.folders, markers_only=args.markers_only)
    readings = read = unflagged = 0
    for tpath, (sheet, _) in found.items():
        for other, (_, pictures) in found.items():
            if other == tpath:
                continue
            for picture in pictures:
                readings += 1
                try:
                    reading = read_sheet(picture.read_bytes(), sheet.template, photo=args.photo)
                except BadInput:
                    continue
                read += 1
                fields = len(reading.questions)
                flagged = sum(q.review for q in reading.questions)
                unflagged += fields - flagged
                print(f"read: {picture} through {tpath}: {flagged} of {fields} answers in review")
    print(f"cards {len(found)}, readings {readings}: {read} not refused, {unflagged} answers in them not in review")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
