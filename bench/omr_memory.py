"""Memory of one OMR worker process: peak RSS and growth over a run of sheets.

    .venv/bin/python bench/omr_memory.py [--sheets 50] [--distinct 10]

A first child process makes ``distinct`` filled, scanned 200-dpi A4 JPEGs
(tests/omr/corpus.py) and one PDF holding a sheet, in a temporary folder. A second,
fresh child, which imports nothing of the corpus, then (the parent stays small, so the
peak that Linux carries over a fork into the child is only the parent's few MB):

1. loads the processor and reads one sheet (imports, caches: "warm");
2. runs ``OmrGradingProcessor().run`` over ``sheets`` JPEGs (cycling the distinct ones);
3. rasterises the PDF page with ``pdf_pages`` (200 dpi) and reads it, overlay included;
4. rasterises a page whose MediaBox is 200 x 200 inches (capped at MAX_PAGE_PIXELS).

It prints the current RSS after each stage (/proc/self/statm) and the peak
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). The target: under 300 MB per worker
process; growth from "warm" to the end shows whether anything accumulates per sheet.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024


def _rss() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / MB


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_inputs(folder: Path, distinct: int) -> None:
    import numpy as np

    from tests.omr.corpus import degrade, fill_sheet
    from workers.omr.pdf import image_to_pdf
    from workers.omr.template import default_template

    template = default_template()
    for i in range(distinct):
        rng = random.Random(f"memory:{i}")
        page, _ = fill_sheet(template, rng)
        data, _ = degrade(page, rng)
        (folder / f"sheet{i:02d}.jpg").write_bytes(data)
        if i == 0:
            gray = np.clip(page * 255, 0, 255).astype(np.uint8)
            (folder / "sheet.pdf").write_bytes(image_to_pdf(gray, template.dpi))


def child(folder: Path, sheets: int) -> None:
    stages: list[tuple[str, float, float]] = []

    def note(stage: str) -> None:
        stages.append((stage, _rss(), _peak()))

    note("interpreter")
    import pypdfium2 as pdfium

    from workers.base import JobInput
    from workers.omr.overlay import overlay_png
    from workers.omr.pdf import pdf_pages
    from workers.omr.processor import OmrGradingProcessor
    from workers.omr.reader import read_gray
    from workers.omr.template import DEFAULT_TEMPLATE, load_template

    template_json = json.loads(DEFAULT_TEMPLATE.read_text(encoding="utf-8"))
    template = load_template(template_json)
    files = sorted(folder.glob("*.jpg"))
    processor = OmrGradingProcessor()
    params = {"template": template_json}
    note("imports")
    processor.run(JobInput(params=params, data=files[0].read_bytes()))
    note("warm (1 sheet)")
    reviewed = 0
    for i in range(sheets):
        result = processor.run(JobInput(params=params, data=files[i % len(files)].read_bytes()))
        reviewed += result.review
        if i + 1 in (sheets // 2, sheets):
            note(f"after {i + 1} sheets")
    (page,) = pdf_pages((folder / "sheet.pdf").read_bytes())
    reading = read_gray(page, template)
    overlay_png(page, template, reading)
    del page
    note("PDF page drawn and read")
    doc = pdfium.PdfDocument.new()
    doc.new_page(14_400, 14_400)
    buf = io.BytesIO()
    doc.save(buf)
    doc.close()
    (huge,) = pdf_pages(buf.getvalue())
    shape = huge.shape
    del huge
    note(f"200 x 200 in page drawn ({shape[1]}x{shape[0]})")
    print(f"{'stage':34s} {'RSS MB':>8s} {'peak MB':>8s}")
    for stage, rss, peak in stages:
        print(f"{stage:34s} {rss:8.1f} {peak:8.1f}")
    warm = stages[2][1]
    rss_at = {stage: rss for stage, rss, _ in stages}
    half, end = rss_at.get(f"after {sheets // 2} sheets", warm), rss_at[f"after {sheets} sheets"]
    print(f"sheets {sheets} ({len(files)} distinct JPEGs), {reviewed} with a review flag")
    print(
        f"growth from warm to after {sheets} sheets: {end - warm:+.1f} MB; over the second half: {end - half:+.1f} MB"
    )
    print(f"peak RSS of the process: {_peak():.1f} MB (target < 300 MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sheets", type=int, default=50)
    parser.add_argument("--distinct", type=int, default=10)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_inputs(args.make, args.distinct)
        return
    if args.child:
        child(args.child, args.sheets)
        return
    with tempfile.TemporaryDirectory() as tmp:
        me = [sys.executable, __file__]
        subprocess.run([*me, "--make", tmp, "--distinct", str(args.distinct)], check=True, cwd=ROOT)
        subprocess.run([*me, "--child", tmp, "--sheets", str(args.sheets)], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
