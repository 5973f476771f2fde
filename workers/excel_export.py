"""``attendance_excel_export`` and ``staff_excel_export``: rows in, an .xlsx file out.

The caller sends the rows to export in the job's params (``rows``: a list of JSON
objects); the processor returns the workbook as an :class:`~workers.base.Artifact`. The
platform stores it and puts a signed, expiring ``download_url`` next to ``filename`` in
the job's result, which the job-status endpoint returns.

Columns
-------
Each export kind has its known fields, in a fixed order, with Korean headers (see
``ATTENDANCE_COLUMNS`` and ``STAFF_COLUMNS``). By default the sheet has every known
field that occurs as a key in at least one row (all of them when there are no rows),
followed by any other keys in the order they first occur, headed by the key itself. The
optional ``columns`` param picks and orders the columns instead.

Cells
-----
- Date fields (and ISO date strings anywhere) become real date cells formatted
  ``yyyy-mm-dd``; date-times become ``yyyy-mm-dd hh:mm`` in Korean time (an aware
  time is converted to UTC+9, Korea has no daylight saving), times of day ``hh:mm``.
  A date field holding text that is not a date stays text.
- Phone fields are text cells with the text number format, so Excel neither drops the
  leading 0 nor turns them into numbers; Korean numbers are hyphenated
  (``01012345678`` and the integer ``1012345678`` become ``010-1234-5678``).
- Strings that a spreadsheet would run as a formula are neutralised (see
  ``neutralise``); control characters XML cannot hold are dropped.
- Integers beyond Excel's 15 significant digits are written as text so no digit is lost.

Column widths are fitted to the longest value in each column (Hangul counted double).
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, ClassVar, Final

from workers.base import Artifact, BadInput, JobInput, ProcessorResult
from workers.excel import normalize_phone

MAX_ROWS: Final = 50_000
MAX_COLUMNS: Final = 50
MAX_CELL_CHARS: Final = 32_767  # Excel's limit for one cell
MAX_TITLE_CHARS: Final = 200
MAX_KEY_CHARS: Final = 100
MAX_WIDTH: Final = 60
MIN_WIDTH: Final = 6
PROGRESS_EVERY: Final = 5000
XLSX_MIME: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
KST: Final = timezone(timedelta(hours=9), "KST")

DATE_FORMAT: Final = "yyyy-mm-dd"
DATETIME_FORMAT: Final = "yyyy-mm-dd hh:mm"
TIME_FORMAT: Final = "hh:mm"
TEXT_FORMAT: Final = "@"

# Characters that make a spreadsheet treat the cell as a formula (or, for tab and CR,
# that some importers strip to reveal one): OWASP's list for CSV injection.
_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
_ILLEGAL_XML: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SHEET_NAME_FORBIDDEN: Final = re.compile(r"[\[\]:*?/\\]")
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_LOOSE_DATE: Final = re.compile(r"(\d{4})\s*[-./]\s*(\d{1,2})\s*[-./]\s*(\d{1,2})\.?")
_ISO_DATETIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?")
_TIME: Final = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_EXACT_INT_LIMIT: Final = 10**15


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    #: text, phone, date, datetime (also takes a date or a time of day), status, value
    kind: str = "text"


ATTENDANCE_COLUMNS: Final = (
    Column("date", "날짜", "date"),
    Column("name", "이름"),
    Column("grade", "학년", "value"),
    Column("class_name", "반"),
    Column("lecture", "강의"),
    Column("status", "출결 상태", "status"),
    Column("check_in", "입실 시각", "datetime"),
    Column("check_out", "퇴실 시각", "datetime"),
    Column("phone", "학생 연락처", "phone"),
    Column("parent_phone", "보호자 연락처", "phone"),
    Column("memo", "비고"),
)
ATTENDANCE_STATUS: Final = {
    "present": "출석",
    "late": "지각",
    "absent": "결석",
    "early_leave": "조퇴",
    "excused": "공결",
}

STAFF_COLUMNS: Final = (
    Column("name", "이름"),
    Column("role", "직책"),
    Column("subject", "담당 과목"),
    Column("phone", "연락처", "phone"),
    Column("email", "이메일"),
    Column("hired_on", "입사일", "date"),
    Column("status", "재직 상태", "status"),
    Column("memo", "비고"),
)
STAFF_STATUS: Final = {
    "active": "재직",
    "on_leave": "휴직",
    "resigned": "퇴사",
}


# --------------------------------------------------------------------------- values


def neutralise(text: str) -> str:
    """``text`` made safe to open in a spreadsheet; control characters dropped.

    A string starting with = + - @ (or tab/CR) would run as a formula in Excel or
    LibreOffice once the sheet is re-saved as CSV or the cell is edited, and
    ``=HYPERLINK(...)`` or DDE payloads are the classic way to attack whoever opens an
    export. openpyxl alone would even store such a string *as a formula*. The cell gets
    a visible leading apostrophe instead of only the ``quotePrefix`` style: the style
    protects the workbook in Excel but is lost in every CSV round trip, copy to another
    tool, or pandas read, while the apostrophe stays with the text (OWASP's advice).
    """
    text = _ILLEGAL_XML.sub("", text)
    if text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


def display_width(text: str) -> int:
    """Columns the longest line of ``text`` takes in a grid font (wide characters count 2)."""
    return max(
        (sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line) for line in text.split("\n")),
        default=0,
    )


def _parse_date(text: str, *, loose: bool) -> date | None:
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    if loose:
        m = _LOOSE_DATE.fullmatch(text)
        if m is not None:
            try:
                return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                return None
    return None


def _parse_datetime(text: str) -> datetime | None:
    if not _ISO_DATETIME.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            # Excel has no time zones: show the Korean wall-clock time.
            moment = moment.astimezone(KST).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None
    return moment


def _parse_time(text: str) -> time | None:
    m = _TIME.fullmatch(text)
    if m is None:
        return None
    try:
        return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    except ValueError:
        return None


CellValue = str | int | float | bool | date | datetime | time | None


@dataclass
class _Cell:
    value: CellValue
    number_format: str | None = None
    width: int = 0


def _text_cell(text: str, number_format: str | None = None) -> _Cell:
    safe = neutralise(text)
    return _Cell(safe, number_format, display_width(safe))


def _temporal(text: str, *, loose_date: bool) -> _Cell | None:
    # Excel's date serials start in 1900; anything earlier stays text.
    day = _parse_date(text, loose=loose_date)
    if day is not None:
        return _Cell(day, DATE_FORMAT, 10) if day.year >= 1900 else None
    moment = _parse_datetime(text)
    if moment is not None:
        return _Cell(moment, DATETIME_FORMAT, 16) if moment.year >= 1900 else None
    return None


def _convert(value: object, kind: str, status_labels: Mapping[str, str]) -> _Cell:
    """The cell for one JSON value in a column of ``kind``."""
    if value is None:
        return _Cell(None)
    if isinstance(value, bool):
        return _Cell(value, None, 5)
    if isinstance(value, int):
        if kind == "phone":
            digits = str(value)
            return _text_cell(normalize_phone(digits) or digits, TEXT_FORMAT)
        if abs(value) >= _EXACT_INT_LIMIT:
            return _text_cell(str(value), TEXT_FORMAT)
        return _Cell(value, None, len(str(value)))
    if isinstance(value, float):
        return _Cell(value, None, min(len(repr(value)), 15))
    text = value.strip() if isinstance(value, str) else str(value)  # _check_rows let only str through
    if not text:
        return _Cell(None)
    if kind == "phone":
        return _text_cell(normalize_phone(text) or text, TEXT_FORMAT)
    if kind == "status":
        return _text_cell(status_labels.get(text.casefold(), text))
    if kind == "date":
        return _temporal(text, loose_date=True) or _text_cell(text)
    if kind == "datetime":
        found = _temporal(text, loose_date=True)
        if found is not None:
            return found
        clock = _parse_time(text)
        if clock is not None:
            return _Cell(clock, TIME_FORMAT, 5)
        return _text_cell(text)
    if kind == "value":
        return _temporal(text, loose_date=False) or _text_cell(text)
    return _text_cell(text)


# --------------------------------------------------------------------------- params


def _bad(message: str, code: str = "INVALID_PAYLOAD") -> BadInput:
    return BadInput(message, code=code)


def _check_rows(params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = params.get("rows")
    if not isinstance(rows, list):
        raise _bad("rows must be a list of objects")
    if len(rows) > MAX_ROWS:
        raise _bad(f"{len(rows)} rows; at most {MAX_ROWS} in one export", code="PAYLOAD_TOO_LARGE")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise _bad(f"rows[{index}] must be an object, not {type(row).__name__}")
        for key, value in row.items():
            if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
                raise _bad(f"rows[{index}] has a key that is not a short non-empty string: {key!r:.40}")
            if value is None or isinstance(value, (bool, int)):
                continue
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise _bad(f"rows[{index}].{key} is not a finite number")
                continue
            if isinstance(value, str):
                if len(value) > MAX_CELL_CHARS:
                    raise _bad(f"rows[{index}].{key} is longer than {MAX_CELL_CHARS} characters")
                continue
            raise _bad(f"rows[{index}].{key} must be a string, number, boolean or null, not {type(value).__name__}")
    return rows


def _optional_text(params: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _bad(f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def _sheet_name(params: Mapping[str, Any], default: str) -> str:
    name = _optional_text(params, "sheet_name", 31)
    if name is None:
        return default
    if _SHEET_NAME_FORBIDDEN.search(name) or name.startswith("'") or name.endswith("'") or _ILLEGAL_XML.search(name):
        raise _bad("sheet_name may not contain [ ] : * ? / \\ or start or end with an apostrophe")
    if name.casefold() == "history":  # reserved by Excel
        raise _bad("sheet_name 'History' is reserved by Excel")
    return name


def _requested_columns(params: Mapping[str, Any]) -> list[str] | None:
    columns = params.get("columns")
    if columns is None:
        return None
    if (
        not isinstance(columns, list)
        or not columns
        or len(columns) > MAX_COLUMNS
        or not all(isinstance(c, str) and c.strip() and len(c) <= MAX_KEY_CHARS for c in columns)
        or len(set(columns)) != len(columns)
    ):
        raise _bad(f"columns must be a list of 1 to {MAX_COLUMNS} distinct field names")
    return list(columns)


# --------------------------------------------------------------------------- processor


class _ExcelExportProcessor:
    job_type: ClassVar[str]
    input_key: ClassVar[str | None] = None
    extensions: ClassVar[frozenset[str]] = frozenset()
    wants_gpu: ClassVar[bool] = False

    columns: ClassVar[tuple[Column, ...]]
    status_labels: ClassVar[Mapping[str, str]]
    default_sheet_name: ClassVar[str]
    filename_prefix: ClassVar[str]

    def __init__(self, today: Callable[[], date] | None = None) -> None:
        self._today = today or (lambda: datetime.now(KST).date())

    def validate(self, params: Mapping[str, Any]) -> None:
        self._layout(params, _check_rows(params))
        _optional_text(params, "title", MAX_TITLE_CHARS)
        _sheet_name(params, self.default_sheet_name)

    def _layout(self, params: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[Column]:
        known = {c.key: c for c in self.columns}
        requested = _requested_columns(params)
        if requested is not None:
            return [known.get(key) or Column(key, key, "value") for key in requested]
        present: dict[str, None] = {}
        for row in rows:
            for key in row:
                present.setdefault(key, None)
        if not present:  # no rows, or only empty ones: the kind's full set of columns
            return list(self.columns)
        layout = [c for c in self.columns if c.key in present]
        layout += [Column(key, key, "value") for key in present if key not in known]
        if len(layout) > MAX_COLUMNS:
            raise _bad(f"the rows have {len(layout)} different fields; at most {MAX_COLUMNS}")
        return layout

    def run(self, job: JobInput) -> ProcessorResult:
        params = job.params
        rows = _check_rows(params)
        layout = self._layout(params, rows)
        title = _optional_text(params, "title", MAX_TITLE_CHARS)
        sheet_name = _sheet_name(params, self.default_sheet_name)
        job.progress("prepare", 0)

        headers = [c.header for c in layout]
        widths = [display_width(h) for h in headers]
        table: list[list[_Cell]] = []
        labels = self.status_labels
        for n, row in enumerate(rows, start=1):
            cells = [_convert(row.get(c.key), c.kind, labels) for c in layout]
            for i, cell in enumerate(cells):
                if cell.width > widths[i]:
                    widths[i] = cell.width
            table.append(cells)
            if n % PROGRESS_EVERY == 0:
                job.progress("prepare", min(60, n * 60 // len(rows)))

        job.progress("write", 70)
        data = _write_xlsx(headers, widths, table, sheet_name=sheet_name, title=title)
        filename = f"{self.filename_prefix}_{self._today().isoformat()}.xlsx"
        job.progress("done", 100)
        return ProcessorResult(
            data={"filename": filename, "rows": len(rows), "sheet_name": sheet_name, "columns": headers},
            artifacts=(Artifact(name=filename, data=data, content_type=XLSX_MIME),),
        )


def _write_xlsx(
    headers: list[str], widths: list[int], table: list[list[_Cell]], *, sheet_name: str, title: str | None
) -> bytes:
    import openpyxl  # heavy; only worker processes that export pay for it
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(title=sheet_name)
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(MIN_WIDTH, min(width + 2, MAX_WIDTH))
    # A write-only sheet writes its view and dimensions with the first row: set them first.
    header_row = 1 if title is None else 2
    ws.freeze_panes = f"A{header_row + 1}"
    last = get_column_letter(max(len(headers), 1))
    ws.auto_filter.ref = f"A{header_row}:{last}{header_row + len(table)}"
    if title is not None:
        cell = WriteOnlyCell(ws, value=neutralise(title))
        cell.font = Font(bold=True, size=14)
        ws.append([cell])
    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDE7F0")
    header_border = Border(bottom=Side(style="thin"))
    centred = Alignment(horizontal="center", vertical="center")
    header_cells = []
    for text in headers:
        cell = WriteOnlyCell(ws, value=neutralise(text))
        cell.font = header_font
        cell.fill = header_fill
        cell.border = header_border
        cell.alignment = centred
        header_cells.append(cell)
    ws.append(header_cells)
    for cells in table:
        out: list[object] = []
        for c in cells:
            if c.number_format is None:
                out.append(c.value)
            else:
                styled = WriteOnlyCell(ws)
                styled.value = c.value
                styled.number_format = c.number_format
                out.append(styled)
        ws.append(out)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


class AttendanceExcelExportProcessor(_ExcelExportProcessor):
    job_type: ClassVar[str] = "attendance_excel_export"
    columns: ClassVar[tuple[Column, ...]] = ATTENDANCE_COLUMNS
    status_labels: ClassVar[Mapping[str, str]] = ATTENDANCE_STATUS
    default_sheet_name: ClassVar[str] = "출결"
    filename_prefix: ClassVar[str] = "attendance"


class StaffExcelExportProcessor(_ExcelExportProcessor):
    job_type: ClassVar[str] = "staff_excel_export"
    columns: ClassVar[tuple[Column, ...]] = STAFF_COLUMNS
    status_labels: ClassVar[Mapping[str, str]] = STAFF_STATUS
    default_sheet_name: ClassVar[str] = "직원"
    filename_prefix: ClassVar[str] = "staff"
