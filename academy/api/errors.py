"""Every API error has a code and a message, like a dispatch rejection."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from academy.rejections import rejection_message


def error_response(code: str, detail: str, http_status: int) -> Response:
    return Response(
        {"ok": False, "rejection_code": code, "error": rejection_message(code) or detail, "detail": detail},
        status=http_status,
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        return error_response("PAYLOAD_TOO_LARGE", str(exc), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, exceptions.ParseError):
        return error_response("INVALID_PAYLOAD", str(exc.detail), status.HTTP_400_BAD_REQUEST)
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
