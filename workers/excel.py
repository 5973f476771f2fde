"""``excel_parsing``: import a student roster from an .xlsx or .csv file.

The processor turns a spreadsheet of students into clean rows plus a per-cell error
report. It never writes anything; saving the rows is the caller's business.

How the input is read
---------------------
The format is decided from the bytes, not the name: a zip is an .xlsx, an OLE2
compound file is what Excel writes for a password-protected workbook (or an old .xls),
and anything else is read as CSV unless the name claims .xlsx. Before openpyxl sees a
zip, its central directory is checked so a zip bomb is refused without inflating it.

Header and fields
-----------------
The header is the first non-empty row that holds a name column (이름/성명/학생명/name);
up to ``_HEADER_SCAN_ROWS`` non-empty rows above it (a sheet title, a note) are skipped.
Headers are matched with whitespace, ``_`` and ``-`` removed and case folded, so
"학생 연락처", "학생연락처" and "Parent_Phone" all match. Columns that match nothing are
kept per row under ``extra``.

Normalisation choices
---------------------
- ``phone``/``parent_phone``: Korean mobiles become ``010-1234-5678`` (also from
  ``01012345678``, ``010 1234 5678``, ``+82 10-1234-5678`` and the integer
  ``1012345678`` Excel leaves when it drops the leading 0); Seoul (02), regional
  (031..064) and 070 numbers are accepted and hyphenated. Anything else is an error.
- ``grade``: an int when the cell is a bare number, optionally followed by 학년
  ("3", 3, "3학년" -> 3); anything else ("고2", "중1", "예비고1") stays a trimmed string.
- ``birth_date``: ISO ``YYYY-MM-DD`` from a date cell or from text such as
  ``2010.3.5``, ``2010-03-05``, ``20100305``, ``2010년 3월 5일`` or ``10.03.05``
  (a two-digit year is 20YY unless that is in the future, then 19YY). Text that is not
  a real date is an error.
- Other fields are text (numbers lose a trailing ``.0``), ``None`` when empty.

A row with any error is left out of ``rows``. A row is a duplicate when its
(name, phone) or (name, parent_phone) matches an earlier *accepted* row; names compare
without spaces and case-folded.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

from workers.base import BadInput, JobInput, ProcessorResult, ProgressFn

if TYPE_CHECKING:
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

DEFAULT_MAX_ROWS: Final = 50_000
MAX_ROWS_LIMIT: Final = 200_000
DEFAULT_MAX_UNCOMPRESSED_BYTES: Final = 200 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES_LIMIT: Final = 1024 * 1024 * 1024
#: a member inflating to more than this many times its compressed size is a bomb...
MAX_COMPRESSION_RATIO: Final = 200
#: ...unless it is this small once inflated (tiny parts cannot hurt, whatever the ratio).
RATIO_CHECK_MIN_BYTES: Final = 1024 * 1024
PROGRESS_EVERY: Final = 1000
_HEADER_SCAN_ROWS: Final = 10

_ZIP_MAGIC: Final = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC: Final = b"PK\x05\x06"
_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Stream names inside an OLE2 file (UTF-16LE directory entries).
_OLE2_ENCRYPTED: Final = "EncryptedPackage".encode("utf-16-le")
_OLE2_LEGACY_XLS: Final = "Workbook".encode("utf-16-le")

FIELDS: Final = (
    "name",
    "grade",
    "class_name",
    "phone",
    "parent_phone",
    "school",
    "birth_date",
    "memo",
)

_EMPTY_RECORD: Final[dict[str, Any]] = dict.fromkeys(FIELDS)

_FIELD_LABELS: Final = {
    "name": "이름",
    "phone": "연락처",
    "parent_phone": "보호자 연락처",
    "birth_date": "생년월일",
}


def _header_key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text).casefold()


_HEADER_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "name": ("이름", "성명", "학생명", "name"),
    "grade": ("학년", "grade"),
    "class_name": ("반", "class", "class_name"),
    "phone": ("연락처", "전화번호", "휴대폰", "학생 연락처", "phone"),
    "parent_phone": ("보호자 연락처", "학부모 연락처", "부모님 연락처", "parent_phone"),
    "school": ("학교", "school"),
    "birth_date": ("생년월일", "birth_date"),
    "memo": ("메모", "비고", "memo"),
}
HEADER_MAP: Final[dict[str, str]] = {
    _header_key(alias): field for field, aliases in _HEADER_ALIASES.items() for alias in aliases
}

_PHONE_CHARS = re.compile(r"\+?[\d\s\-.()]+")
_NON_DIGITS = re.compile(r"\D+")
_MOBILE_010 = re.compile(r"(010)(\d{4})(\d{4})")
_MOBILE_OLD = re.compile(r"(01[16789])(\d{3,4})(\d{4})")
_SEOUL = re.compile(r"(02)(\d{3,4})(\d{4})")
_REGIONAL = re.compile(r"(0(?:3[1-3]|4[1-4]|5[1-5]|6[1-4]|70))(\d{3,4})(\d{4})")
_PHONE_PATTERNS: Final = (_MOBILE_010, _MOBILE_OLD, _SEOUL, _REGIONAL)
_GRADE_INT = re.compile(r"(\d{1,2})\s*(?:학년)?")
_DATE_YMD = re.compile(r"(\d{4})\s*[-./]\s*(\d{1,2})\s*[-./]\s*(\d{1,2})\.?")
_DATE_KO = re.compile(r"(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일?")
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATE_SHORT = re.compile(r"(\d{2})\s*[-./]?\s*(\d{2})\s*[-./]?\s*(\d{2})\.?")
_WS = re.compile(r"\s+")


# --------------------------------------------------------------------------- values


def _text(value: object) -> str:
    """A cell as trimmed text ("" for empty)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value).strip()


def normalize_phone(text: str) -> str | None:
    """``text`` as a hyphenated Korean phone number, or None when it is not one."""
    if not _PHONE_CHARS.fullmatch(text):
        return None
    digits = _NON_DIGITS.sub("", text)
    if text.startswith("+") or (digits.startswith("82") and len(digits) >= 11):
        if not digits.startswith("82"):
            return None
        digits = digits[2:]
    if not digits.startswith("0"):
        digits = "0" + digits
    for pattern in _PHONE_PATTERNS:
        m = pattern.fullmatch(digits)
        if m is not None:
            return "-".join(m.groups())
    return None


def normalize_grade(text: str) -> int | str:
    m = _GRADE_INT.fullmatch(text)
    return int(m.group(1)) if m is not None else text


def _make_date(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def normalize_birth_date(text: str, *, today: date | None = None) -> str | None:
    """``text`` as ``YYYY-MM-DD``, or None when it is not a date."""
    for pattern in (_DATE_YMD, _DATE_KO, _DATE_COMPACT):
        m = pattern.fullmatch(text)
        if m is not None:
            return _make_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    m = _DATE_SHORT.fullmatch(text)
    if m is not None:
        this_year = (today or date.today()).year
        year = 2000 + int(m.group(1))
        if year > this_year:
            year -= 100
        return _make_date(year, int(m.group(2)), int(m.group(3)))
    return None


# --------------------------------------------------------------------------- inputs


def _check_zip(data: bytes, max_uncompressed: int) -> None:
    """Refuse a zip bomb or a zip that is not a workbook, reading only the directory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        ValueError,
        EOFError,
    ) as exc:
        raise BadInput(f"not a readable zip: {exc}", code="FILE_UNREADABLE") from exc
    total = 0
    for info in infos:
        total += info.file_size
        if total > max_uncompressed:
            raise BadInput(
                f"workbook inflates to more than {max_uncompressed} bytes",
                code="SPREADSHEET_TOO_LARGE",
            )
        if info.file_size > RATIO_CHECK_MIN_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(
            info.compress_size, 1
        ):
            raise BadInput(
                f"{info.filename} compresses {info.file_size // max(info.compress_size, 1)}:1",
                code="SPREADSHEET_TOO_LARGE",
            )
    names = {info.filename for info in infos}
    if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
        raise BadInput("zip file is not an Excel workbook", code="INVALID_FORMAT")


def _ole2_code(data: bytes) -> str:
    # An encrypted .xlsx is an OLE2 file holding an "EncryptedPackage" stream; a legacy
    # .xls holds a "Workbook" stream instead and is simply a format we do not read.
    if _OLE2_ENCRYPTED not in data and _OLE2_LEGACY_XLS in data:
        return "INVALID_FORMAT"
    return "SPREADSHEET_PROTECTED"


def _decode_csv(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise BadInput("UTF-16 text is not supported", code="UNSUPPORTED_ENCODING")
    if b"\x00" in data[:8192]:
        raise BadInput("binary data, not a CSV file", code="INVALID_FORMAT")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp949")
    except UnicodeDecodeError as exc:
        raise BadInput("file is neither UTF-8 nor CP949", code="UNSUPPORTED_ENCODING") from exc


def _csv_rows(text: str) -> Iterator[Sequence[object]]:
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ","
    if "," not in first_line:
        if "\t" in first_line:
            delimiter = "\t"
        elif ";" in first_line:
            delimiter = ";"
    try:
        yield from csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    except csv.Error as exc:
        raise BadInput(f"malformed CSV: {exc}", code="FILE_UNREADABLE") from exc


_OPENPYXL_ERRORS: Final = (
    zipfile.BadZipFile,
    zlib.error,
    KeyError,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    SyntaxError,  # xml.etree's ParseError
)


def _xlsx_sheet_rows(ws: ReadOnlyWorksheet) -> Iterator[Sequence[object]]:
    # Only openpyxl's own iteration is guarded here; errors in the caller's loop body
    # are not raised inside this generator.
    # The stubs type ReadOnlyWorksheet.iter_rows as Worksheet's unbound method.
    rows: Iterator[Sequence[object]] = cast(Any, ws).iter_rows(values_only=True)
    try:
        yield from rows
    except _OPENPYXL_ERRORS as exc:
        raise BadInput(f"cannot read worksheet: {exc!r}", code="FILE_UNREADABLE") from exc


# --------------------------------------------------------------------------- parsing


class _Columns:
    """Where each field and extra column sits in a row."""

    def __init__(self, header: Sequence[object]) -> None:
        self.fields: list[tuple[int, str, str]] = []  # (index, field, header text)
        self.extras: list[tuple[int, str]] = []  # (index, key in ``extra``)
        self.mapping: dict[str, str] = {}
        self.unmapped: list[str] = []
        self.header_of: dict[str, str] = {}
        seen_fields: set[str] = set()
        seen_extra: set[str] = set()
        for index, cell in enumerate(header):
            label = _WS.sub(" ", _text(cell))
            if not label:
                continue
            field = HEADER_MAP.get(_header_key(label))
            if field is not None and field not in seen_fields:
                seen_fields.add(field)
                self.fields.append((index, field, label))
                self.mapping[label] = field
                self.header_of[field] = label
                continue
            key = label
            n = 2
            while key in seen_extra:
                key = f"{label}_{n}"
                n += 1
            seen_extra.add(key)
            self.extras.append((index, key))
            self.unmapped.append(key)


def _find_header(rows: Iterator[tuple[int, Sequence[object]]]) -> tuple[int, _Columns]:
    first: _Columns | None = None
    scanned = 0
    for number, row in rows:
        if not any(_text(v) for v in row):
            continue
        columns = _Columns(row)
        if "name" in columns.header_of:
            return number, columns
        first = first or columns
        scanned += 1
        if scanned >= _HEADER_SCAN_ROWS:
            break
    if first is None:
        raise BadInput("the sheet has no header row", code="MISSING_COLUMNS")
    raise BadInput("no name column (이름/성명/학생명/name) in the header", code="MISSING_COLUMNS")


def _parse_rows(
    numbered: Iterator[tuple[int, Sequence[object]]],
    *,
    max_rows: int,
    progress: ProgressFn,
    expected_rows: int | None,
) -> dict[str, Any]:
    header_row, cols = _find_header(numbered)
    field_slots = cols.fields
    extra_slots = cols.extras
    header_of = cols.header_of
    name_header = header_of["name"]

    clean: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], int] = {}
    total = 0
    error_rows = 0
    phone = normalize_phone
    text_of = _text

    for number, row in numbered:
        texts = [text_of(v) for v in row]
        if not any(texts):
            continue
        total += 1
        if total > max_rows:
            raise BadInput(f"more than {max_rows} data rows", code="SPREADSHEET_TOO_LARGE")
        if total % PROGRESS_EVERY == 0:
            pct = 50 if not expected_rows else min(95, total * 100 // expected_rows)
            progress("parsing", pct)

        width = len(texts)
        record: dict[str, Any] = {"row": number, **_EMPTY_RECORD}
        row_errors: list[dict[str, Any]] = []
        for index, field, label in field_slots:
            value = texts[index] if index < width else ""
            if not value:
                continue
            if field == "phone" or field == "parent_phone":
                normal = phone(value)
                if normal is None:
                    row_errors.append(
                        {
                            "row": number,
                            "column": label,
                            "field": field,
                            "reason": f"{_FIELD_LABELS[field]} 형식이 올바르지 않습니다: {value}",
                        }
                    )
                    continue
                record[field] = normal
            elif field == "name":
                record["name"] = _WS.sub(" ", value)
            elif field == "grade":
                record["grade"] = normalize_grade(value)
            elif field == "birth_date":
                iso = normalize_birth_date(value)
                if iso is None:
                    row_errors.append(
                        {
                            "row": number,
                            "column": label,
                            "field": field,
                            "reason": f"생년월일 형식이 올바르지 않습니다: {value}",
                        }
                    )
                    continue
                record["birth_date"] = iso
            else:
                record[field] = value
        if record["name"] is None:
            row_errors.append(
                {
                    "row": number,
                    "column": name_header,
                    "field": "name",
                    "reason": "이름이 비어 있습니다",
                }
            )
        extra: dict[str, str | None] = {}
        for index, extra_key in extra_slots:
            extra[extra_key] = (texts[index] or None) if index < width else None
        record["extra"] = extra

        keys: list[tuple[str, str, str]] = []
        if not row_errors:
            name_key = "".join(record["name"].split()).casefold()
            for field in ("phone", "parent_phone"):
                if record[field] is not None:
                    keys.append((field, name_key, record[field]))
            for key in keys:
                earlier = seen.get(key)
                if earlier is not None:
                    row_errors.append(
                        {
                            "row": number,
                            "column": name_header,
                            "field": "name",
                            "reason": f"중복된 학생입니다 ({earlier}행과 같음)",
                        }
                    )
                    break

        if row_errors:
            error_rows += 1
            errors.extend(row_errors)
            continue
        for key in keys:
            seen[key] = number
        clean.append(record)

    progress("parsing", 100)
    return {
        "rows": clean,
        "errors": errors,
        "total_rows": total,
        "valid_rows": len(clean),
        "error_rows": error_rows,
        "header_row": header_row,
        "columns": cols.mapping,
        "unmapped_headers": cols.unmapped,
    }


def _numbered(
    rows: Iterable[Sequence[object]],
) -> Iterator[tuple[int, Sequence[object]]]:
    return enumerate(rows, start=1)


# --------------------------------------------------------------------------- processor


def _positive_int(params: Mapping[str, Any], key: str, default: int, limit: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        raise BadInput(f"{key} must be an integer between 1 and {limit}", code="INVALID_PAYLOAD")
    return value


class ExcelParsingProcessor:
    job_type: ClassVar[str] = "excel_parsing"
    input_key: ClassVar[str | None] = "file_path"
    extensions: ClassVar[frozenset[str]] = frozenset({".xlsx", ".csv"})
    wants_gpu: ClassVar[bool] = False

    def validate(self, params: Mapping[str, Any]) -> None:
        _positive_int(params, "max_rows", DEFAULT_MAX_ROWS, MAX_ROWS_LIMIT)
        _positive_int(
            params,
            "max_uncompressed_bytes",
            DEFAULT_MAX_UNCOMPRESSED_BYTES,
            MAX_UNCOMPRESSED_BYTES_LIMIT,
        )

    def run(self, job: JobInput) -> ProcessorResult:
        params = job.params
        max_rows = _positive_int(params, "max_rows", DEFAULT_MAX_ROWS, MAX_ROWS_LIMIT)
        max_bytes = _positive_int(
            params,
            "max_uncompressed_bytes",
            DEFAULT_MAX_UNCOMPRESSED_BYTES,
            MAX_UNCOMPRESSED_BYTES_LIMIT,
        )
        data = job.data
        if data is None:
            raise BadInput("no input file", code="FILE_REQUIRED")
        if not data:
            raise BadInput("the file is empty", code="EMPTY_FILE")
        job.progress("parsing", 0)

        if data.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
            result = self._run_xlsx(data, job, max_rows=max_rows, max_bytes=max_bytes)
        elif data.startswith(_OLE2_MAGIC):
            raise BadInput("OLE2 compound file (encrypted workbook or .xls)", code=_ole2_code(data))
        elif PurePath(job.filename).suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            raise BadInput("the file is not an .xlsx workbook", code="INVALID_FORMAT")
        else:
            text = _decode_csv(data)
            result = _parse_rows(
                _numbered(_csv_rows(text)),
                max_rows=max_rows,
                progress=job.progress,
                expected_rows=text.count("\n") or None,
            )

        total = result["total_rows"]
        confidence = result["valid_rows"] / total if total else 1.0
        return ProcessorResult(data=result, confidence=confidence, review=result["error_rows"] > 0)

    def _run_xlsx(self, data: bytes, job: JobInput, *, max_rows: int, max_bytes: int) -> dict[str, Any]:
        _check_zip(data, max_bytes)
        import openpyxl  # heavy; only worker processes that parse workbooks pay for it
        from openpyxl.worksheet._read_only import ReadOnlyWorksheet

        try:
            wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except _OPENPYXL_ERRORS as exc:
            raise BadInput(f"cannot open workbook: {exc!r}", code="FILE_UNREADABLE") from exc
        try:
            sheets = [ws for ws in wb.worksheets if isinstance(ws, ReadOnlyWorksheet)]
            active = wb.active
            ws = active if isinstance(active, ReadOnlyWorksheet) else (sheets[0] if sheets else None)
            if ws is None:
                raise BadInput("the workbook has no worksheet", code="FILE_UNREADABLE")
            expected = ws.max_row if isinstance(ws.max_row, int) and ws.max_row > 1 else None
            # Some writers store a wrong <dimension>; read_only would trust it and stop
            # early, so read to the real end of the sheet instead.
            ws.reset_dimensions()
            return _parse_rows(
                _numbered(_xlsx_sheet_rows(ws)),
                max_rows=max_rows,
                progress=job.progress,
                expected_rows=expected,
            )
        finally:
            wb.close()
