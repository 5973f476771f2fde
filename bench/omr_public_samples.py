"""OMRChecker's public sample sheets, each read through its own template.json.

    .venv/bin/python bench/omr_public_samples.py [SAMPLES_DIR] [--truth FILE] [--photo] [--shrink K] [-v]

SAMPLES_DIR is a copy of OMRChecker's ``samples/`` folder (default
/work/omrchecker/samples); nothing of it ships with this repository. As OMRChecker does,
each picture is read with the template.json (and config.json) of its own folder or the
nearest folder above it. The truth is OMRChecker's own expected output for those samples,
its test snapshot (``src/tests/__snapshots__/test_all_samples.ambr``, found next to the
samples folder or given with --truth): one CSV row per sheet, one column per output
field, a blank as the template's emptyValue, several marks joined ("AC").

Counted per output column of each sheet with a truth row: right, wrong, *silent* (wrong
and not in ``review``: must stay 0) and flagged. A refused sheet counts all its columns
wrong (not silent). Sheets without a truth row (community samples the snapshot leaves
out) are read and listed, not scored. ``--shrink K`` reads each sheet at K of its size
(area averaging, encoded again as JPEG or PNG): the copies people send through messengers.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.base import BadInput
from workers.omr.omrchecker import OmrCheckerTemplate, load_omrchecker_template
from workers.omr.reader import read_sheet

DEFAULT_SAMPLES = Path("/work/omrchecker/samples")
SNAPSHOT = "src/tests/__snapshots__/test_all_samples.ambr"
IMAGES = {".png", ".jpg", ".jpeg"}
_BLOCK = re.compile(r"'(?P<name>[^']*\.csv)': '''\n(?P<body>.*?)\n\s*''',", re.S)


def load_truth(text: str) -> dict[str, dict[str, str]]:
    """input path relative to samples/ -> {output column: OMRChecker's value}."""
    out: dict[str, dict[str, str]] = {}
    for block in _BLOCK.finditer(text):
        if "Results" not in block.group("name"):
            continue
        if '"file_id"' not in block.group("body"):
            out.update(_table_rows(block.group("body"), _spaced_names(text)))
            continue
        lines = [line.strip() for line in block.group("body").splitlines() if line.strip()]
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
        header: list[str] | None = None
        for row in rows:
            if row[:2] == ["file_id", "input_path"]:
                header = row
                continue
            if header is None or len(row) != len(header):
                continue
            rel = row[1].removeprefix("samples/")
            out[rel] = dict(zip(header[4:], row[4:], strict=True))
    return out


def _spaced_names(text: str) -> set[str]:
    """Column names with a space in them, from the snapshot's empty tables, which list
    their columns by name ("Columns: [file_id, ..., Subject Code, ...]")."""
    return {
        name.strip()
        for listed in re.findall(r"Columns: \[(.*?)\]", text)
        for name in listed.split(",")
        if " " in name.strip()
    }


def _table_rows(body: str, spaced: set[str]) -> dict[str, dict[str, str]]:
    """The rows of a results table as OMRChecker v2's snapshot prints it (a pandas frame:
    an index column, then every column right-aligned under its name, a space or more
    apart, a blank value printed as spaces). ``spaced``: the column names that hold a
    space (``_spaced_names``)."""
    lines = [line for line in body.splitlines() if line.strip()]
    header = next((i for i, line in enumerate(lines) if line.split()[:2] == ["file_id", "input_path"]), None)
    if header is None:
        return {}
    names: list[tuple[str, int]] = []
    for word in re.finditer(r"\S+", lines[header]):
        joined = f"{names[-1][0]} {word.group()}" if names else ""
        if joined in spaced:
            names[-1] = (joined, word.end())
        else:
            names.append((word.group(), word.end()))
    out: dict[str, dict[str, str]] = {}
    for line in lines[header + 1 :]:
        start = len(line) - len(line.lstrip())
        start += len(line[start:].split()[0])  # past the row's index
        values: dict[str, str] = {}
        for name, end in names:
            values[name] = line[start:end].strip()
            start = end
        rel = values.get("input_path", "").removeprefix("samples/")
        if rel:
            out[rel] = {name: value for name, value in values.items() if name not in _NOT_READ}
    return out


#: a results table's columns that are not read from the sheet.
_NOT_READ = frozenset({"file_id", "input_path", "output_path", "score"})


def _same(got: str | None, truth: str) -> bool:
    """Whether a column reads as the truth has it. OMRChecker v2's snapshot tables went
    through pandas, which reads a column of digits as a number ("0234" became 234), so
    digits match digits of the same number, and printed its cells without the spaces at
    their ends."""
    if got is None:
        return False
    if got.strip() == truth.strip():  # a blank written as a space at either end is no mark
        return True
    return got.isdigit() and truth.isdigit() and int(got) == int(truth)


def template_for(image: Path, root: Path) -> Path | None:
    for folder in [image.parent, *image.parent.parents]:
        if (folder / "template.json").is_file():
            return folder / "template.json"
        if folder == root:
            break
    return None


def images(root: Path) -> Iterator[Path]:
    """The sheets: pictures with a template.json above them, less the pictures that
    template names itself (its marker, its reference), which OMRChecker skips too."""
    for path in sorted(root.rglob("*")):
        tpath = template_for(path, root) if path.suffix.lower() in IMAGES and path.is_file() else None
        if tpath is not None and path.resolve() not in _named_pictures(tpath):
            yield path


def _named_pictures(tpath: Path) -> set[Path]:
    try:
        data = json.loads(tpath.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    named = set()
    steps = data.get("preProcessors", []) if isinstance(data, dict) else []
    # v2 names its pictures "referenceImage", in a preprocessor or in the template's alignment.
    if isinstance(data, dict) and isinstance(data.get("alignment"), dict):
        steps = [*steps, {"options": data["alignment"]}]
    for step in steps:
        options = step.get("options", {}) if isinstance(step, dict) else {}
        for key in ("relativePath", "reference", "referenceImage"):
            if isinstance(options, dict) and isinstance(options.get(key), str):
                named.add((tpath.parent / options[key]).resolve())
    return named


def columns(entry: Mapping[str, Any], sheet: OmrCheckerTemplate) -> tuple[dict[str, str], set[str]]:
    """A reading as OMRChecker's CSV columns (custom labels joined), and the flagged ones."""
    answers: Mapping[str, list[str]] = entry["answers"]
    sid = entry.get("student_id", "")
    tpl = sheet.template
    values: dict[str, str] = {}
    for i, f in enumerate(tpl.id_fields):
        digit = sid[i] if i < len(sid) else "?"
        values[f.label] = "" if digit == "?" else digit
    for label, marks in answers.items():
        values[label] = "".join(marks)
    empty = getattr(sheet, "empty_values", {})
    for label, value in list(values.items()):
        if value == "":
            values[label] = empty.get(label, "")
    review = set(entry["review"])
    if "student_id" in review:
        review |= {f.label for f in tpl.id_fields}
    out: dict[str, str] = {}
    flagged: set[str] = set()
    groups = dict(sheet.custom_labels)
    if sheet.roll_label is not None:
        groups[sheet.roll_label] = tuple(f.label for f in tpl.id_fields)
    owner = {m: name for name, members in groups.items() for m in members}
    for label in values:
        name = owner.get(label, label)
        if name in out:
            continue
        members = groups.get(name, (label,))
        out[name] = "".join(values.get(m, "") for m in members)
        if any(m in review for m in members):
            flagged.add(name)
    return out, flagged


def alignment_note(image: Path, sheet: OmrCheckerTemplate, photo: bool) -> str:
    """Where a refused sheet's refusal came from: was the sheet found, and are the
    template's bubbles printed where the alignment puts them (page_align.layout_score)?"""
    from workers.omr.align import align
    from workers.omr.decode import decode_gray
    from workers.omr.filters import template_filters
    from workers.omr.page_align import layout_score

    tpl = sheet.template
    try:
        gray = template_filters(decode_gray(image.read_bytes()), tpl)
        found = align(gray, tpl, photo=photo)
    except BadInput as exc:
        return f"alignment ({tpl.alignment.kind}) failed: {exc.code}"
    score = layout_score(gray, tpl, found.homography)
    return f"aligned ({tpl.alignment.kind}, {found.rotation} deg): {score:.0%} of the bubbles printed where expected"


def shrunk(image: Path, share: float) -> bytes:
    """The picture at ``share`` of its size (area averaging), encoded again as its own
    kind: a copy sent through a messenger or saved small."""
    import cv2
    import numpy as np

    picture = cv2.imdecode(np.frombuffer(image.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    if picture is None:
        raise SystemExit(f"cv2 cannot decode {image}")
    small = cv2.resize(picture, None, fx=share, fy=share, interpolation=cv2.INTER_AREA)
    suffix = ".png" if image.suffix.lower() == ".png" else ".jpg"
    ok, buf = cv2.imencode(suffix, small, [cv2.IMWRITE_JPEG_QUALITY, 90] if suffix == ".jpg" else [])
    if not ok:
        raise SystemExit(f"cv2 cannot encode {image} shrunk")
    return bytes(buf)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", nargs="?", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--truth", type=Path, default=None, help=f"OMRChecker's {SNAPSHOT}")
    parser.add_argument("--photo", action="store_true", help="read in photo mode")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every wrong column")
    parser.add_argument(
        "--shrink", type=float, default=1.0, help="read every sheet shrunk to this share of its size first"
    )
    args = parser.parse_args()
    root: Path = args.samples.resolve()
    truth_path = args.truth or root.parent / SNAPSHOT
    truth = load_truth(truth_path.read_text(encoding="utf-8")) if truth_path.is_file() else {}
    if not truth:
        print(f"warning: no truth at {truth_path}; sheets are read, not scored", file=sys.stderr)
    total = wrong = silent = flagged = sheets = refused = 0
    unscored: list[str] = []
    loaded: dict[Path, OmrCheckerTemplate | BadInput] = {}
    started = time.perf_counter()
    for image in images(root):
        rel = str(image.relative_to(root))
        tpath = template_for(image, root)
        assert tpath is not None
        if tpath not in loaded:
            try:
                loaded[tpath] = load_omrchecker_template(tpath)
            except BadInput as exc:
                loaded[tpath] = exc
        sheet = loaded[tpath]
        expected = truth.get(rel)
        try:
            if isinstance(sheet, BadInput):
                raise sheet
            data = image.read_bytes() if args.shrink == 1.0 else shrunk(image, args.shrink)
            entry = read_sheet(data, sheet.template, photo=args.photo).to_dict()
        except BadInput as exc:
            status = f"REFUSED {exc.code}: {exc.message}"
            if expected is None:
                unscored.append(f"  {rel}: {status}")
                continue
            sheets += 1
            refused += 1
            total += len(expected)
            wrong += len(expected)
            print(f"{rel}: {status}")
            if args.verbose and not isinstance(sheet, BadInput):
                print(f"    {alignment_note(image, sheet, args.photo)}")
            continue
        got, review = columns(entry, sheet)
        if expected is None:
            unscored.append(f"  {rel}: read, {len(review)} of {len(got)} columns flagged")
            continue
        sheets += 1
        bad = [c for c in expected if not _same(got.get(c), expected[c])]
        quiet = [c for c in bad if c not in review]
        total += len(expected)
        wrong += len(bad)
        silent += len(quiet)
        flagged += len([c for c in expected if c in review])
        print(f"{rel}: {len(expected) - len(bad)}/{len(expected)} right, {len(quiet)} silent, {len(review)} flagged")
        if args.verbose:
            for c in bad:
                tag = "SILENT" if c in quiet else "flagged"
                print(f"    {c}: read {got.get(c)!r}, truth {expected[c]!r} ({tag})")
    elapsed = time.perf_counter() - started
    right = total - wrong
    print(
        f"sheets {sheets} (refused {refused}), fields {total}: right {right} ({right / max(total, 1):.2%}), "
        f"wrong {wrong}, silent {silent}, flagged {flagged} ({flagged / max(total, 1):.2%}); {elapsed:.1f} s"
    )
    missing = sorted(set(truth) - {str(p.relative_to(root)) for p in images(root)})
    if missing:
        print(f"truth rows with no picture here: {', '.join(missing)}")
    if unscored:
        print("read without truth:")
        print("\n".join(unscored))
    return 0


if __name__ == "__main__":
    sys.exit(main())
