"""Tests for the ``excel_parsing`` processor (roster import).

Every input is generated here: workbooks with openpyxl, CSV text in the encodings a
Korean academy's PC produces, and hostile files built byte by byte. No Django needed.
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from workers.base import BadInput, JobInput, ProcessorResult
from workers.excel import ExcelParsingProcessor, normalize_birth_date

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = ["이름", "학년", "반", "연락처", "보호자 연락처", "학교", "생년월일", "메모"]


# --------------------------------------------------------------------------- helpers


def xlsx_bytes(rows: Sequence[Sequence[Any]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def rewrite_sheet(data: bytes, edit: Callable[[str], str]) -> bytes:
    """A copy of the workbook ``data`` with its first sheet's XML passed through ``edit``."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                xml = content.decode("utf-8")
                edited = edit(xml)
                assert edited != xml, "the edit did not apply"
                content = edited.encode("utf-8")
            dst.writestr(info.filename, content)
    return out.getvalue()


def csv_bytes(lines: Sequence[str], encoding: str = "utf-8") -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def run(
    data: bytes | None,
    filename: str = "roster.xlsx",
    params: dict[str, Any] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> ProcessorResult:
    job = JobInput(params=params or {}, data=data, filename=filename)
    if progress is not None:
        job = JobInput(params=params or {}, data=data, filename=filename, progress=progress)
    return ExcelParsingProcessor().run(job)


def rejection(data: bytes | None, filename: str = "roster.xlsx", **params: Any) -> str:
    with pytest.raises(BadInput) as info:
        run(data, filename, params)
    return info.value.code


def single_phone(value: Any) -> dict[str, Any]:
    """The result for one student whose 연락처 cell holds ``value`` (in an .xlsx)."""
    return run(xlsx_bytes([["이름", "연락처"], ["김민준", value]])).data


# --------------------------------------------------------------------------- contract


def test_processor_declares_its_job_type_input_and_extensions() -> None:
    assert ExcelParsingProcessor.job_type == "excel_parsing"
    assert ExcelParsingProcessor.input_key == "file_path"
    assert ExcelParsingProcessor.extensions == frozenset({".xlsx", ".csv"})
    assert ExcelParsingProcessor.wants_gpu is False


def test_module_imports_neither_django_nor_celery_nor_openpyxl_eagerly() -> None:
    code = "import sys, workers.excel; print(sorted(m for m in ('django', 'celery', 'openpyxl') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_registry_resolves_excel_parsing_to_this_processor() -> None:
    from workers import registry

    assert isinstance(registry.get("excel_parsing"), ExcelParsingProcessor)


# --------------------------------------------------------------------------- happy path


def test_xlsx_roster_is_parsed_into_normalised_rows() -> None:
    data = xlsx_bytes(
        [
            HEADER,
            [
                "김민준",
                "3",
                "A반",
                "01012345678",
                "010 9876 5432",
                "한빛중",
                "2010.3.5",
                "수학 심화",
            ],
            [
                "이서연",
                2,
                "B반",
                "+82 10-2222-3333",
                1044445555,
                "새솔고",
                datetime(2009, 11, 2),
                None,
            ],
        ]
    )
    result = run(data)
    assert result.data["rows"] == [
        {
            "row": 2,
            "name": "김민준",
            "grade": 3,
            "class_name": "A반",
            "phone": "010-1234-5678",
            "parent_phone": "010-9876-5432",
            "school": "한빛중",
            "birth_date": "2010-03-05",
            "memo": "수학 심화",
            "extra": {},
        },
        {
            "row": 3,
            "name": "이서연",
            "grade": 2,
            "class_name": "B반",
            "phone": "010-2222-3333",
            "parent_phone": "010-4444-5555",
            "school": "새솔고",
            "birth_date": "2009-11-02",
            "memo": None,
            "extra": {},
        },
    ]
    assert result.data["errors"] == []
    assert (
        result.data["total_rows"],
        result.data["valid_rows"],
        result.data["error_rows"],
    ) == (2, 2, 0)
    assert result.data["columns"] == dict(
        zip(
            HEADER,
            [
                "name",
                "grade",
                "class_name",
                "phone",
                "parent_phone",
                "school",
                "birth_date",
                "memo",
            ],
            strict=True,
        )
    )
    assert result.data["unmapped_headers"] == []
    assert result.confidence == 1.0
    assert result.review is False


def test_header_synonyms_english_names_and_spacing_are_mapped() -> None:
    data = xlsx_bytes(
        [
            [
                "  성명 ",
                "학생  연락처",
                "학부모연락처",
                "Grade",
                "CLASS",
                "Parent_Phone",
                "비고",
            ],
            [
                "박지호",
                "010-1111-2222",
                "010-3333-4444",
                "1",
                "C",
                "010-5555-6666",
                "신규",
            ],
        ]
    )
    result = run(data)
    assert result.data["columns"] == {
        "성명": "name",
        "학생 연락처": "phone",
        "학부모연락처": "parent_phone",
        "Grade": "grade",
        "CLASS": "class_name",
        "비고": "memo",
    }
    # A second column for a field already mapped is kept as an extra, not merged.
    assert result.data["unmapped_headers"] == ["Parent_Phone"]
    row = result.data["rows"][0]
    assert row["parent_phone"] == "010-3333-4444"
    assert row["extra"] == {"Parent_Phone": "010-5555-6666"}


def test_unknown_headers_are_kept_per_row_under_extra() -> None:
    data = xlsx_bytes(
        [
            ["이름", "등록일", "수강과목", "등록일"],
            ["최유나", "2024-03-01", "영어", None],
        ]
    )
    result = run(data)
    assert result.data["unmapped_headers"] == ["등록일", "수강과목", "등록일_2"]
    assert result.data["rows"][0]["extra"] == {
        "등록일": "2024-03-01",
        "수강과목": "영어",
        "등록일_2": None,
    }


def test_empty_rows_are_skipped_and_row_numbers_stay_spreadsheet_rows() -> None:
    data = xlsx_bytes(
        [
            [None, None],
            ["이름", "연락처"],
            ["가", "010-1000-0001"],
            [None, None],
            ["  ", None],
            ["나", "010-1000-0002"],
        ]
    )
    result = run(data)
    assert [(r["row"], r["name"]) for r in result.data["rows"]] == [
        (3, "가"),
        (6, "나"),
    ]
    assert result.data["total_rows"] == 2
    assert result.data["header_row"] == 2


def test_title_rows_above_the_header_are_skipped() -> None:
    data = xlsx_bytes([["2024년 겨울학기 원생 명단"], [], ["이름", "반"], ["한도윤", "A"]])
    result = run(data)
    assert result.data["header_row"] == 3
    assert [(r["row"], r["name"], r["class_name"]) for r in result.data["rows"]] == [(4, "한도윤", "A")]


def test_grade_becomes_int_for_plain_numbers_and_stays_text_otherwise() -> None:
    data = xlsx_bytes(
        [
            ["이름", "학년"],
            ["a", "3"],
            ["b", "3학년"],
            ["c", 5],
            ["d", 4.0],
            ["e", "고2"],
            ["f", "예비중1"],
        ]
    )
    grades = [r["grade"] for r in run(data).data["rows"]]
    assert grades == [3, 3, 5, 4, "고2", "예비중1"]


def test_birth_dates_in_common_korean_forms_become_iso() -> None:
    assert normalize_birth_date("2010.3.5") == "2010-03-05"
    assert normalize_birth_date("2010. 03. 05.") == "2010-03-05"
    assert normalize_birth_date("2010-03-05") == "2010-03-05"
    assert normalize_birth_date("20100305") == "2010-03-05"
    assert normalize_birth_date("2010년 3월 5일") == "2010-03-05"
    assert normalize_birth_date("10.03.05") == "2010-03-05"
    assert normalize_birth_date("85.12.01") == "1985-12-01"
    assert normalize_birth_date("2010-02-30") is None
    assert normalize_birth_date("봄") is None


def test_invalid_birth_date_is_reported_against_its_column() -> None:
    data = xlsx_bytes([["이름", "생년월일"], ["오하준", "2010-13-40"]])
    result = run(data)
    assert result.data["rows"] == []
    assert result.data["errors"] == [
        {
            "row": 2,
            "column": "생년월일",
            "field": "birth_date",
            "reason": "생년월일 형식이 올바르지 않습니다: 2010-13-40",
        }
    ]


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("01012345678", "010-1234-5678"),
        ("010-1234-5678", "010-1234-5678"),
        ("010 1234 5678", "010-1234-5678"),
        ("010.1234.5678", "010-1234-5678"),
        ("+82 10-1234-5678", "010-1234-5678"),
        ("+82 (0)10 1234 5678", "010-1234-5678"),
        ("821012345678", "010-1234-5678"),
        (1012345678, "010-1234-5678"),  # Excel number that lost its leading 0
        (1012345678.0, "010-1234-5678"),
        ("02-123-4567", "02-123-4567"),
        ("0212345678", "02-1234-5678"),
        ("031-123-4567", "031-123-4567"),
        ("064 1234 5678", "064-1234-5678"),
        ("070-1234-5678", "070-1234-5678"),
        ("011-123-4567", "011-123-4567"),
    ],
)
def test_phone_numbers_are_normalised_to_hyphenated_korean_form(raw: Any, expected: str) -> None:
    data = single_phone(raw)
    assert data["errors"] == []
    assert data["rows"][0]["phone"] == expected


@pytest.mark.parametrize(
    "raw",
    [
        "12345",
        "010-1234-567",
        "010-1234-56789",
        "전화없음",
        "010-1234-5678 (엄마)",
        "+1 202 555 0100",
        "099-123-4567",
    ],
)
def test_malformed_phone_numbers_are_row_errors(raw: str) -> None:
    data = single_phone(raw)
    assert data["rows"] == []
    assert data["errors"] == [
        {
            "row": 2,
            "column": "연락처",
            "field": "phone",
            "reason": f"연락처 형식이 올바르지 않습니다: {raw}",
        }
    ]


def test_error_rows_are_excluded_and_lower_confidence() -> None:
    data = xlsx_bytes(
        [
            ["이름", "휴대폰", "보호자 연락처"],
            ["정우진", "010-1111-1111", "010-2222-2222"],
            [None, "010-3333-3333", None],
            ["윤서아", "010-4444-4444", "02-12"],
            ["강시우", "nope", "12"],
        ]
    )
    result = run(data)
    assert [r["name"] for r in result.data["rows"]] == ["정우진"]
    assert result.data["errors"] == [
        {"row": 3, "column": "이름", "field": "name", "reason": "이름이 비어 있습니다"},
        {
            "row": 4,
            "column": "보호자 연락처",
            "field": "parent_phone",
            "reason": "보호자 연락처 형식이 올바르지 않습니다: 02-12",
        },
        {
            "row": 5,
            "column": "휴대폰",
            "field": "phone",
            "reason": "연락처 형식이 올바르지 않습니다: nope",
        },
        {
            "row": 5,
            "column": "보호자 연락처",
            "field": "parent_phone",
            "reason": "보호자 연락처 형식이 올바르지 않습니다: 12",
        },
    ]
    assert (
        result.data["total_rows"],
        result.data["valid_rows"],
        result.data["error_rows"],
    ) == (4, 1, 3)
    assert result.confidence == pytest.approx(0.25)
    assert result.review is True


# --------------------------------------------------------------------------- duplicates


def test_same_name_and_phone_as_an_earlier_row_is_a_duplicate() -> None:
    data = xlsx_bytes(
        [
            ["이름", "연락처", "보호자 연락처"],
            ["김하은", "010-1234-5678", None],
            [
                "김하은",
                "01012345678",
                "010-9999-0000",
            ],  # same phone, written differently
        ]
    )
    result = run(data)
    assert [r["row"] for r in result.data["rows"]] == [2]
    assert result.data["errors"] == [
        {
            "row": 3,
            "column": "이름",
            "field": "name",
            "reason": "중복된 학생입니다 (2행과 같음)",
        }
    ]


def test_same_name_and_parent_phone_as_an_earlier_row_is_a_duplicate() -> None:
    data = xlsx_bytes(
        [
            ["이름", "연락처", "보호자 연락처"],
            ["이준서", "010-1000-0001", "010-5555-0000"],
            [
                "박민서",
                None,
                "010-5555-0000",
            ],  # sibling: same parent, other name -> fine
            ["이 준서", "010-1000-0009", "010 5555 0000"],
        ]
    )
    result = run(data)
    assert [r["row"] for r in result.data["rows"]] == [2, 3]
    assert result.data["errors"] == [
        {
            "row": 4,
            "column": "이름",
            "field": "name",
            "reason": "중복된 학생입니다 (2행과 같음)",
        }
    ]


def test_namesakes_with_different_numbers_are_not_duplicates() -> None:
    data = xlsx_bytes(
        [
            ["이름", "연락처"],
            ["김민준", "010-1000-0001"],
            ["김민준", "010-1000-0002"],
            ["김민준", None],
        ]
    )
    result = run(data)
    assert result.data["valid_rows"] == 3
    assert result.data["errors"] == []


def test_a_rejected_row_does_not_make_its_corrected_copy_a_duplicate() -> None:
    data = xlsx_bytes(
        [
            ["이름", "연락처", "생년월일"],
            ["서지안", "010-1000-0001", "없음"],
            ["서지안", "010-1000-0001", "2011-01-01"],
        ]
    )
    result = run(data)
    assert [r["row"] for r in result.data["rows"]] == [3]
    assert [e["row"] for e in result.data["errors"]] == [2]


# --------------------------------------------------------------------------- formulas


def test_xlsx_formula_cells_yield_their_cached_values() -> None:
    data = xlsx_bytes([["이름", "연락처"], ['="홍"&"길동"', "010-1111-2222"]])
    data = rewrite_sheet(
        data,
        lambda xml: xml.replace(
            '<c r="A2"><f>"홍"&amp;"길동"</f><v /></c>',
            '<c r="A2" t="str"><f>"홍"&amp;"길동"</f><v>홍길동</v></c>',
        ),
    )
    assert run(data).data["rows"][0]["name"] == "홍길동"


def test_csv_cells_that_look_like_formulas_are_kept_as_text() -> None:
    data = csv_bytes(["이름,메모,반", '=1+1,=HYPERLINK("http://x"),@SUM(A1)', "김,+가산점,-5"])
    rows = run(data, "roster.csv").data["rows"]
    assert [(r["name"], r["memo"], r["class_name"]) for r in rows] == [
        ("=1+1", '=HYPERLINK("http://x")', "@SUM(A1)"),
        ("김", "+가산점", "-5"),
    ]


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949"])
def test_csv_is_read_in_utf8_with_or_without_bom_and_in_cp949(encoding: str) -> None:
    data = csv_bytes(["이름,학년,연락처,학교", "홍길동,고2,010-1234-5678,서울고등학교"], encoding)
    result = run(data, "roster.csv")
    assert result.data["columns"] == {
        "이름": "name",
        "학년": "grade",
        "연락처": "phone",
        "학교": "school",
    }
    row = result.data["rows"][0]
    assert (row["name"], row["grade"], row["phone"], row["school"]) == (
        "홍길동",
        "고2",
        "010-1234-5678",
        "서울고등학교",
    )


def test_csv_quoted_fields_with_commas_and_newlines_count_as_one_row() -> None:
    data = csv_bytes(["이름,메모", '"김, 도현","첫 줄', '둘째 줄"', "이,끝"])
    rows = run(data, "roster.csv").data["rows"]
    assert [(r["row"], r["name"], r["memo"]) for r in rows] == [
        (2, "김, 도현", "첫 줄\r\n둘째 줄"),
        (3, "이", "끝"),
    ]


def test_tab_separated_text_is_read_too() -> None:
    data = csv_bytes(["이름\t연락처", "문채원\t010 2000 3000"])
    assert run(data, "roster.csv").data["rows"][0]["phone"] == "010-2000-3000"


def test_bytes_that_are_neither_utf8_nor_cp949_are_rejected() -> None:
    assert rejection(b"\xff\xfe\xfa\x80\x81" * 40, "roster.csv") == "UNSUPPORTED_ENCODING"
    assert rejection(b"name\n\xfa\x80\x81\xff\xfa\x80\n" * 40, "roster.csv") == "UNSUPPORTED_ENCODING"


def test_utf16_text_is_an_unsupported_encoding() -> None:
    assert rejection("이름,연락처\n홍길동,010\n".encode("utf-16"), "roster.csv") == "UNSUPPORTED_ENCODING"


# --------------------------------------------------------------------------- sniffing


def test_format_is_sniffed_from_content_not_the_name() -> None:
    data = xlsx_bytes([["이름"], ["남궁민"]])
    assert run(data, "roster.csv").data["rows"][0]["name"] == "남궁민"


def test_empty_file_is_rejected() -> None:
    assert rejection(b"", "roster.xlsx") == "EMPTY_FILE"
    assert rejection(b"", "roster.csv") == "EMPTY_FILE"


def test_missing_file_is_rejected() -> None:
    assert rejection(None) == "FILE_REQUIRED"


def test_ole2_file_is_treated_as_a_password_protected_workbook() -> None:
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    assert rejection(header + b"\x00" * 1024) == "SPREADSHEET_PROTECTED"
    encrypted = header + "EncryptionInfo".encode("utf-16-le") + "EncryptedPackage".encode("utf-16-le")
    assert rejection(encrypted, "roster.csv") == "SPREADSHEET_PROTECTED"


def test_legacy_xls_is_an_unsupported_format_not_a_protected_one() -> None:
    xls = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + "Workbook".encode("utf-16-le")
    assert rejection(xls) == "INVALID_FORMAT"


def test_random_bytes_are_rejected_as_invalid_format() -> None:
    noise = random.Random(1234).randbytes(4096)
    assert rejection(noise, "roster.xlsx") == "INVALID_FORMAT"
    assert rejection(noise, "roster.csv") == "INVALID_FORMAT"  # binary (NUL bytes), not text


def test_plain_text_named_xlsx_is_invalid_format() -> None:
    assert rejection(csv_bytes(["이름", "홍길동"]), "roster.xlsx") == "INVALID_FORMAT"


def test_corrupt_zip_is_unreadable() -> None:
    noise = random.Random(99).randbytes(2048)
    assert rejection(b"PK\x03\x04" + noise) == "FILE_UNREADABLE"


def test_truncated_workbook_is_unreadable() -> None:
    data = xlsx_bytes([["이름"], ["홍길동"]])
    assert rejection(data[: len(data) // 2]) == "FILE_UNREADABLE"


def test_zip_that_is_not_a_workbook_is_invalid_format() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("hello.txt", "안녕하세요")
    assert rejection(buf.getvalue()) == "INVALID_FORMAT"


# --------------------------------------------------------------------------- limits


def test_zip_bomb_is_refused_before_inflating() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\x00" * (16 * 1024 * 1024))
    data = buf.getvalue()
    assert len(data) < 100_000  # ~16 MiB squeezed into a few KiB: ratio far above 200
    assert rejection(data) == "SPREADSHEET_TOO_LARGE"


def test_total_uncompressed_size_limit_comes_from_params() -> None:
    data = xlsx_bytes([["이름"], ["홍길동"]])
    assert run(data).data["valid_rows"] == 1
    assert rejection(data, max_uncompressed_bytes=1000) == "SPREADSHEET_TOO_LARGE"


def test_more_data_rows_than_max_rows_is_rejected() -> None:
    data = xlsx_bytes([["이름"]] + [[f"학생{i}"] for i in range(5)] + [[None]] * 3)
    assert run(data, params={"max_rows": 5}).data["total_rows"] == 5  # empty rows do not count
    assert rejection(data, max_rows=4) == "SPREADSHEET_TOO_LARGE"


def test_wrong_dimension_tag_does_not_truncate_the_sheet() -> None:
    data = xlsx_bytes([["이름"]] + [[f"학생{i}"] for i in range(4)])
    data = rewrite_sheet(
        data,
        lambda xml: xml.replace('<dimension ref="A1:A5" />', '<dimension ref="A1:A1" />'),
    )
    assert run(data).data["total_rows"] == 4


def test_header_without_a_name_column_is_rejected() -> None:
    assert rejection(xlsx_bytes([["학년", "연락처"], ["3", "010-1234-5678"]])) == "MISSING_COLUMNS"
    assert rejection(csv_bytes(["학교,메모", "a,b"]), "roster.csv") == "MISSING_COLUMNS"
    assert rejection(xlsx_bytes([[None], [None]])) == "MISSING_COLUMNS"


def test_header_only_sheet_has_no_rows_and_full_confidence() -> None:
    result = run(xlsx_bytes([["이름", "연락처"]]))
    assert result.data["rows"] == []
    assert (result.data["total_rows"], result.confidence, result.review) == (
        0,
        1.0,
        False,
    )


# --------------------------------------------------------------------------- progress


def test_progress_is_reported_every_thousand_rows_and_at_the_end() -> None:
    calls: list[tuple[str, int]] = []
    lines = ["이름,연락처"] + [f"학생{i},010-{i // 10000 + 1000}-{i % 10000:04d}" for i in range(2500)]
    run(
        csv_bytes(lines),
        "roster.csv",
        progress=lambda stage, pct: calls.append((stage, pct)),
    )
    assert {stage for stage, _ in calls} == {"parsing"}
    assert len(calls) == 4  # start, 1000 rows, 2000 rows, done
    percents = [pct for _, pct in calls]
    assert percents == sorted(percents)
    assert percents[0] == 0
    assert percents[-1] == 100
    assert 0 < percents[1] < percents[2] < 100


# --------------------------------------------------------------------------- validate


def test_validate_accepts_defaults_and_sane_limits() -> None:
    processor = ExcelParsingProcessor()
    processor.validate({})
    processor.validate({"max_rows": 200_000, "max_uncompressed_bytes": 10_000_000})


@pytest.mark.parametrize(
    "params",
    [
        {"max_rows": "100"},
        {"max_rows": 0},
        {"max_rows": -1},
        {"max_rows": 200_001},
        {"max_rows": True},
        {"max_rows": 1.5},
        {"max_rows": None},
        {"max_uncompressed_bytes": "200MB"},
        {"max_uncompressed_bytes": 0},
        {"max_uncompressed_bytes": 2**40},
    ],
)
def test_validate_rejects_wrong_limit_params(params: dict[str, Any]) -> None:
    with pytest.raises(BadInput) as info:
        ExcelParsingProcessor().validate(params)
    assert info.value.code == "INVALID_PAYLOAD"


def test_run_rejects_bad_params_too() -> None:
    assert rejection(xlsx_bytes([["이름"], ["a"]]), max_rows="many") == "INVALID_PAYLOAD"
