"""Every API error has a code and a message, like a dispatch rejection."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from academy.rejections import rejection_message


def error_response(code: str, detail: str, http_status: int, *, message: str = "", **extra: Any) -> Response:
    """``message``: the Korean message for this case, when it says more than the code's."""
    return Response(
        {
            "ok": False,
            "rejection_code": code,
            "error": message or rejection_message(code) or detail,
            "detail": detail,
            **extra,
        },
        status=http_status,
    )


# How a field is named to a user, and what each of DRF's error codes says in Korean.
FIELD_LABELS: dict[str, str] = {
    "job_type": "작업 종류",
    "payload": "작업 정보",
    "tier": "요금 등급",
    "idempotency_key": "중복 방지 키",
    "force_rerun": "강제 재실행 여부",
    "rerun_reason": "재실행 사유",
    "source_domain": "연결 도메인",
    "source_id": "연결 대상 id",
    "file": "파일",
    "title": "시험 제목",
    "template": "OMR 양식",
    "answer_key": "정답",
    "blank_sheet": "빈 답안지",
    "questions": "문항 수",
    "choices": "보기 수",
    "id_digits": "수험번호 자릿수",
    "answers": "답안",
    "student_id": "학번",
    "job_id": "작업 id",
    "status": "상태",
    "result": "결과",
    "error": "오류 내용",
    "lease_token": "lease 토큰",
    "progress": "진행 상황",
    "stage": "진행 단계",
    "percent": "진행률",
    "confidence": "신뢰도",
}
_PROBLEMS: dict[str, str] = {
    "required": "값이 필요합니다.",
    "null": "값이 비어 있을 수 없습니다.",
    "blank": "값이 비어 있을 수 없습니다.",
    "max_length": "값이 너무 깁니다. {max_length}자 이하로 보내 주세요.",
    "min_length": "값이 너무 짧습니다.",
    "invalid_choice": "허용되지 않는 값입니다. 다음 중 하나로 보내 주세요: {choices}.",
    "max_value": "값이 너무 큽니다. {max_value} 이하로 보내 주세요.",
    "min_value": "값이 너무 작습니다. {min_value} 이상으로 보내 주세요.",
    "overflow": "숫자가 너무 큽니다.",
    "max_string_length": "숫자가 너무 깁니다.",
    "not_a_dict": "JSON 객체로 보내 주세요.",
    "not_a_list": "목록으로 보내 주세요.",
    "empty": "값이 비어 있을 수 없습니다.",
    "no_name": "파일 이름이 없습니다.",
    "max_digits": "숫자가 너무 깁니다.",
}


def _flat(errors: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field path, error code, DRF's English text) for every error, nested ones included."""
    if isinstance(errors, dict):
        return [
            item
            for key, value in errors.items()
            for item in _flat(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
        ]
    if isinstance(errors, list):
        return [item for value in errors for item in _flat(value, prefix)]
    return [(prefix or "non_field_errors", str(getattr(errors, "code", "invalid")), str(errors))]


def _problem(field: str, code: str, serializer: Any) -> str:
    fmt = _PROBLEMS.get(code, "값의 형식이 올바르지 않습니다.")
    found = serializer.fields.get(field.split(".")[0]) if serializer is not None else None
    choices = ", ".join(str(c) for c in getattr(found, "choices", {}) or {})
    return fmt.format(
        max_length=getattr(found, "max_length", ""),
        max_value=getattr(found, "max_value", ""),
        min_value=getattr(found, "min_value", ""),
        choices=choices,
    )


def invalid_payload(errors: Any, serializer: Any = None) -> Response:
    """400 INVALID_PAYLOAD for a serializer's errors: a Korean message that names each
    field and what is wrong with it, ``detail`` in plain words and ``fields`` (each
    field's messages as plain strings, never ``ErrorDetail`` reprs)."""
    flat = _flat(errors)
    message = " ".join(
        f"{FIELD_LABELS.get(field.split('.')[0], field)}({field}): {_problem(field, code, serializer)}"
        for field, code, _ in flat
    )
    fields: dict[str, list[str]] = {}
    for field, _, text in flat:
        fields.setdefault(field, []).append(text)
    detail = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in fields.items())
    return error_response("INVALID_PAYLOAD", detail, 400, message=message, fields=fields)


def field_error(
    field: str, detail: str, problem: str, *, code: str = "INVALID_PAYLOAD", http_status: int = 400
) -> Response:
    """400 for one field, with a Korean message that names it (``problem`` says what is wrong)."""
    message = f"{FIELD_LABELS.get(field, field)}({field}): {problem}"
    return error_response(code, detail, http_status, message=message, fields={field: [detail]})


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any unknown address under /api/: a JSON 404 with a code, not Django's HTML page."""
    return JsonResponse(
        {
            "ok": False,
            "rejection_code": "NOT_FOUND",
            "error": rejection_message("NOT_FOUND"),
            "detail": "no such endpoint",
        },
        status=404,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        return error_response("PAYLOAD_TOO_LARGE", str(exc), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    coded = getattr(exc, "rejection_code", None)  # a parse error with a code of its own (a cut-off upload)
    if isinstance(exc, exceptions.ParseError) and isinstance(coded, str):
        message = str(getattr(exc, "rejection_message", "") or "")
        return error_response(coded, str(exc.detail), status.HTTP_400_BAD_REQUEST, message=message)
    if isinstance(exc, exceptions.ParseError):
        return error_response(
            "INVALID_PAYLOAD",
            str(exc.detail),
            status.HTTP_400_BAD_REQUEST,
            message="요청 본문을 읽을 수 없습니다. 올바른 JSON(또는 multipart) 형식으로 보내 주세요.",
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return error_response("INVALID_FORMAT", str(exc.detail), status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
    response = drf_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "code" not in response.data:
        code = getattr(exc, "default_code", "error")
        response.data = {"ok": False, "code": str(code).upper(), **response.data}
    return response


class SafeJSONParser(JSONParser):
    """JSON bodies, where nesting too deep for Python's parser is bad input, not a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON nested too deeply") from exc
