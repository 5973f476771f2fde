"""Rows per second of ``attendance_excel_export`` in one process, on a 10,000-row export.

    .venv/bin/python bench/excel_export_throughput.py [--rows 10000] [--repeat 5]

The rows look like a month of an academy's attendance: every field of the kind filled
(an ISO date, a name, grade, class, lecture, a status code, check-in as an aware ISO
date-time, check-out as a time of day, two phone numbers, an occasional memo, one memo
in fifty starting with "=" so that neutralisation runs). ``run`` is timed ``repeat``
times; prints the median, rows/s, the .xlsx size, and how the time splits between
preparing the cells and writing the workbook.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.base import JobInput
from workers.excel_export import AttendanceExcelExportProcessor

SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
GIVEN = ["민준", "서연", "도윤", "하은", "지호", "서준", "지우", "예준", "수아", "시우", "지민", "하린"]
LECTURES = ["수학 심화", "영어 독해", "국어 문법", "과학 탐구", "수학 기초"]
STATUSES = ["present"] * 17 + ["late", "absent", "early_leave", "excused"]


def make_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = date(2026, 11, 1)
    rows = []
    for i in range(n):
        day = start + timedelta(days=i % 30)
        status = rng.choice(STATUSES)
        hour = rng.randint(14, 19)
        rows.append(
            {
                "date": day.isoformat(),
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                "grade": rng.randint(1, 3),
                "class_name": f"{rng.choice('ABCD')}반",
                "lecture": rng.choice(LECTURES),
                "status": status,
                "check_in": None
                if status == "absent"
                else f"{day.isoformat()}T{hour:02d}:{rng.randint(0, 59):02d}:00+09:00",
                "check_out": None if status == "absent" else f"{hour + 2:02d}:{rng.randint(0, 59):02d}",
                "phone": f"010{rng.randint(0, 99_999_999):08d}",
                "parent_phone": f"010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
                "memo": ("=1+1" if i % 50 == 0 else rng.choice([None, None, None, "보강 예정", "교재 미지참"])),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = make_rows(args.rows)
    proc = AttendanceExcelExportProcessor()
    params = {"rows": rows, "title": "2026년 11월 출결 현황"}
    proc.run(JobInput(params={"rows": rows[:10]}))  # warm up imports

    marks: dict[str, float] = {}

    def progress(stage: str, pct: int) -> None:
        marks.setdefault(stage, time.perf_counter())

    totals, prepare, write = [], [], []
    size = 0
    for _ in range(args.repeat):
        marks.clear()
        t = time.perf_counter()
        result = proc.run(JobInput(params=params, progress=progress))
        end = time.perf_counter()
        totals.append(end - t)
        prepare.append(marks["write"] - marks["prepare"])
        write.append(end - marks["write"])
        size = len(result.artifacts[0].data)
    validate = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        proc.validate(params)
        validate.append(time.perf_counter() - t)
    median = statistics.median(totals)
    print(f"{args.rows} rows x 11 columns, .xlsx {size / 1024:.0f} KiB")
    print(f"run: {median * 1000:.0f} ms median of {args.repeat} ({args.rows / median:,.0f} rows/s)")
    prep_ms, write_ms = statistics.median(prepare) * 1000, statistics.median(write) * 1000
    print(f"  prepare cells {prep_ms:.0f} ms, write workbook {write_ms:.0f} ms")
    print(f"validate: {statistics.median(validate) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
