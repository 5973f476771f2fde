"""Rejection codes and the Korean messages shown to users.

The first seven codes and their messages are a fixed contract: front ends map them to
their own copy, so neither the codes nor the messages change. The rest name the other
bad inputs the platform refuses, at dispatch or in the worker. A processor raises
``BadInput(code=...)`` with one of these codes; the platform adds the message, so the
wording lives in this one table.
"""

from __future__ import annotations

import re
from typing import Final

REJECTION_MESSAGES: Final[dict[str, str]] = {
    # The fixed codes: front ends map these to their own copy; never change them.
    "RESOLUTION_TOO_LOW": "해상도가 낮습니다. 더 선명하게 촬영해 주세요.",
    "FILE_TOO_LARGE": "파일 크기가 제한을 초과했습니다.",
    "VIDEO_TOO_LONG": "동영상 길이 제한을 초과했습니다.",
    "BLUR_OR_SHAKE": "흔들리거나 흐릿합니다. 고정해서 다시 촬영해 주세요.",
    "TOO_DARK": "너무 어둡습니다. 밝은 곳에서 촬영해 주세요.",
    "INVALID_FORMAT": "지원하지 않는 파일 형식입니다.",
    "OMR_PHOTO_NOT_ALLOWED": ("Basic 요금제에서는 스캔된 OMR만 가능합니다. 촬영물은 Premium에서 이용해 주세요."),
    # Request shape.
    "INVALID_PAYLOAD": "요청 형식이 올바르지 않습니다. 작업 정보는 JSON 객체로 보내 주세요.",
    "PAYLOAD_TOO_LARGE": "요청 데이터가 너무 큽니다.",
    "UNKNOWN_JOB_TYPE": "알 수 없는 작업 종류입니다.",
    "JOB_TYPE_NOT_AVAILABLE": "이 작업 종류는 아직 제공되지 않습니다.",
    "BACKEND_NOT_CONFIGURED": "이 작업을 처리할 엔진이 설정되어 있지 않습니다.",
    # A job's target and key.
    "INVALID_SOURCE": "작업 대상이 올바르지 않습니다. 답안지에는 그 답안지의 OMR 판독 작업만 연결할 수 있습니다.",
    "SUBMISSION_NOT_WAITING": (
        "이 답안지는 이미 판독되었거나 다른 작업을 기다리고 있습니다. 채점된 답안지는 정정 기능으로 고쳐 주세요."
    ),
    "IDEMPOTENCY_KEY_REUSED": "같은 요청 키가 다른 요청에 이미 쓰였습니다. 새 키로 보내 주세요.",
    # Input files.
    "VIDEO_TOO_SHORT": "동영상이 너무 짧습니다. 과제 장면이 충분히 보이도록 더 길게 촬영해 주세요.",
    "IMAGE_TOO_LARGE": "이미지 해상도가 너무 큽니다. 5천만 화소 이하로 줄여서 올려 주세요.",
    "FILE_REQUIRED": "처리할 파일이 필요합니다.",
    "FILE_NOT_FOUND": "파일을 찾을 수 없습니다. 다시 업로드해 주세요.",
    "FILE_UNREADABLE": "파일을 읽을 수 없습니다. 손상되지 않은 파일로 다시 업로드해 주세요.",
    "INVALID_PATH": "허용되지 않은 파일 경로입니다.",
    "EMPTY_FILE": "빈 파일입니다.",
    "UNSUPPORTED_ENCODING": "파일 인코딩을 알 수 없습니다. UTF-8 또는 CP949(EUC-KR)로 저장해 주세요.",
    "SPREADSHEET_PROTECTED": "암호가 걸린 파일은 처리할 수 없습니다. 암호를 해제한 뒤 다시 올려 주세요.",
    "SPREADSHEET_TOO_LARGE": "엑셀 파일의 내용이 너무 큽니다. 나누어서 올려 주세요.",
    "MISSING_COLUMNS": "필수 열이 없습니다. 양식의 머리글(예: 이름)을 확인해 주세요.",
    # OMR sheets.
    "TEMPLATE_INVALID": "OMR 양식 정보가 올바르지 않습니다. 양식을 다시 확인해 주세요.",
    "TEMPLATE_MISMATCH": "선택한 OMR 양식과 답안지가 맞지 않습니다. 양식을 확인해 주세요.",
    "NO_SHEET_FOUND": "답안지를 찾을 수 없습니다. 네 모서리의 검은 표시가 모두 보이게 스캔해 주세요.",
    "BLANK_COUNTS_MISMATCH": "빈 답안지에서 찾은 문항 수나 수험번호 자리 수가 입력한 값과 다릅니다.",
    "BLANK_LAYOUT_UNSUPPORTED": "이 답안지 배치는 아직 자동으로 양식을 만들 수 없습니다.",
    "BLANK_ORIENTATION_UNKNOWN": "빈 답안지의 위아래를 알 수 없습니다. 답안지를 바로 놓고 다시 스캔해 주세요.",
    "NOT_A_BUBBLE_SHEET": "OMR 답안지로 보이지 않습니다. 빈 답안지를 스캔하거나 촬영해 올려 주세요.",
    "PDF_NO_PAGES": "PDF에 페이지가 없습니다.",
    "UPLOAD_INTERRUPTED": "업로드가 중간에 끊겼습니다. 빠진 답안지를 다시 올려 주세요.",
    "BATCH_TOO_LARGE": "한 번에 올릴 수 있는 답안지 수를 넘었습니다. 나누어 올려 주세요.",
    "PDF_TOO_MANY_PAGES": "PDF 페이지가 너무 많습니다. 300쪽 이하로 나누어 올려 주세요.",
    # Requests.
    "NOT_FOUND": "요청한 주소를 찾을 수 없습니다. 주소를 확인해 주세요.",
    "RERUN_THROTTLED": "강제 재실행 요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
    # The internal worker API (workers outside the cluster).
    "SUPERSEDED": "이 작업은 다른 실행이 맡았거나 이미 끝났습니다. 보낸 결과는 반영되지 않았습니다.",
    "NUMBER_OUT_OF_RANGE": "숫자 값이 허용 범위를 벗어났습니다.",
    "JOB_NOT_FOUND": "해당 job을 찾을 수 없습니다.",
}

DEFAULT_MESSAGE: Final = "입력 조건을 확인해 주세요."


def rejection_message(code: str | None) -> str:
    """The user-facing message for ``code`` (empty for no code)."""
    if not code:
        return ""
    return REJECTION_MESSAGES.get(code, DEFAULT_MESSAGE)


class Rejection(Exception):
    """Bad input, with its code. Raised inside checks, returned as data to callers."""

    def __init__(self, code: str, detail: str = "", *, message: str = "") -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail
        self._message = message

    @property
    def message(self) -> str:
        """The Korean message: the one given for this case (which field, what is wrong);
        for an ``INVALID_PAYLOAD`` whose detail names a field, one that names it; else the
        code's from the table."""
        if self._message:
            return self._message
        if self.code == "INVALID_PAYLOAD":
            return invalid_payload_message(self.detail) or rejection_message(self.code)
        return rejection_message(self.code)


# A processor's INVALID_PAYLOAD detail starts with the parameter it refused
# ("echo must be a string ...", "page must be a page number from 1 to 300"): the Korean
# message names that parameter and, for the usual shapes, says what it must be.
_LEADING_FIELD = re.compile(r"^(?P<field>[A-Za-z_][A-Za-z0-9_.\[\]]{0,63}) (?:must|is|are|has|needs)\b")
_QUESTION = re.compile(r"^question (\S{1,20}): (.+)$")
_WHAT_IT_MUST_BE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"must be an integer (?:between|from) (\S+) (?:and|to) (\S+)"), "{0}부터 {1}까지의 정수여야 합니다"),
    (re.compile(r"must be one of (.+)$"), "다음 중 하나여야 합니다: {0}"),
    (re.compile(r"must be a JSON object|must be an object"), "JSON 객체여야 합니다"),
    (re.compile(r"must be an integer"), "정수여야 합니다"),
    (re.compile(r"must be a number"), "숫자여야 합니다"),
    (re.compile(r"must be a (?:non-empty |non-blank )?string"), "문자열이어야 합니다"),
    (re.compile(r"must be true or false"), "true 또는 false여야 합니다"),
    (re.compile(r"must be a (?:non-empty )?list"), "목록이어야 합니다"),
    (re.compile(r"is required"), "값이 필요합니다"),
)


def invalid_payload_message(detail: str) -> str:
    """A Korean message for an ``INVALID_PAYLOAD`` detail that names its field; empty when
    it names none."""
    question = _QUESTION.match(detail or "")
    if question is not None:  # an answer key's question
        number, what = question.groups()
        return f"정답(answer_key): {number}번 문항이 올바르지 않습니다. 확인해 주세요 ({what})."
    found = _LEADING_FIELD.match(detail or "")
    if found is None:
        return ""
    field = found.group("field")
    for pattern, korean in _WHAT_IT_MUST_BE:
        shape = pattern.search(detail)
        if shape is not None:
            return f"'{field}' 값이 올바르지 않습니다. {korean.format(*shape.groups())}."
    return f"'{field}' 값이 올바르지 않습니다. 확인해 주세요 ({detail})."
