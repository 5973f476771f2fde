"""Rows per second of ``excel_parsing`` (roster import) in one process: 10,000 rows.

    .venv/bin/python bench/excel_parsing_throughput.py [--rows 10000] [--repeat 5]

The roster has the Korean headers academies use (이름, 학년, 반, 연락처, 보호자 연락처),
phone numbers in mixed formats, one row in a hundred with a bad phone number and one in
two hundred a duplicate, so validation and the error report do real work. The same rows
are timed as .xlsx and as a CP949 .csv (target: under 5 s for 10,000 rows).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.base import JobInput
from workers.excel import ExcelParsingProcessor

HEADERS = ["이름", "학년", "반", "연락처", "보호자 연락처"]
SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
GIVEN = ["민준", "서연", "도윤", "하은", "지호", "서준", "지우", "예준", "수아", "시우"]


def make_rows(n: int, seed: int = 11) -> list[list[str]]:
    rng = random.Random(seed)
    rows: list[list[str]] = []
    for i in range(n):
        if i and i % 200 == 0:
            rows.append(list(rows[-1]))  # a duplicate student
            continue
        phone = f"010{rng.randrange(10**8):08d}"
        shown = rng.choice(
            [phone, f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", f"+82 {phone[1:3]}-{phone[3:7]}-{phone[7:]}"]
        )
        if i % 100 == 7:
            shown = "010-12"  # a bad number: reported, not imported
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + str(i)
        rows.append([name, str(rng.randint(1, 3)), rng.choice("ABCD"), shown, f"010{rng.randrange(10**8):08d}"])
    return rows


def as_xlsx(rows: list[list[str]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADERS)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    writer.writerows(rows)
    return out.getvalue().encode("cp949")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = make_rows(args.rows)
    processor = ExcelParsingProcessor()
    print("| input | rows | median s | rows/s | imported | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, name, data in (("xlsx", "roster.xlsx", as_xlsx(rows)), ("csv, CP949", "roster.csv", as_csv(rows))):
        times = []
        result = None
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = processor.run(JobInput(params={}, data=data, filename=name))
            times.append(time.perf_counter() - started)
        assert result is not None
        median = statistics.median(times)
        imported, errors = len(result.data.get("rows", [])), len(result.data.get("errors", []))
        print(f"| {label} | {args.rows} | {median:.2f} | {args.rows / median:,.0f} | {imported} | {errors} |")
    print(f"command: .venv/bin/python bench/excel_parsing_throughput.py --rows {args.rows} --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
