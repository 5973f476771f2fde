"""Request bodies that must arrive whole before anything is made from them.

Django parses a multipart body as far as it goes: when a client stops sending (a
dropped connection, a killed upload), the web server hands over the bytes that came,
and the part being sent when it stopped becomes a shorter file with no error at all.
The view then sees fewer, and cut, files, and any field sent after the files (an
``idempotency_key`` placed last) is missing. So these parsers count what they read and
refuse the body with ``UPLOAD_INTERRUPTED`` when it is shorter than its
``Content-Length`` or a multipart body lacks its closing boundary: nothing is created
from part of an upload, and the client's retry starts clean.
"""

from __future__ import annotations

import contextlib
from typing import IO, Any, cast

from django.utils.http import parse_header_parameters
from rest_framework import exceptions, parsers

#: how much of the body's end is kept to look for the closing boundary: the boundary
#: (at most 70 bytes), its dashes and line break, and room for a short epilogue.
_TAIL_BYTES = 1024


class UploadInterrupted(exceptions.ParseError):
    """The request body ended before the client said it would."""

    rejection_code = "UPLOAD_INTERRUPTED"
    # Nothing was kept, so the whole request is sent again (the code's own message asks
    # for the missing sheets, which fits a batch left open, not a refused request).
    rejection_message = "업로드가 중간에 끊겨 아무것도 저장하지 않았습니다. 처음부터 다시 올려 주세요."
    default_detail = "the request body ended early"


class _CountingStream:
    """A read-only stream that counts the bytes read through it and keeps the last few."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.received = 0
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size) if size is not None and size >= 0 else self._stream.read()
        if chunk:
            self.received += len(chunk)
            self.tail = (self.tail + chunk)[-_TAIL_BYTES:]
        return bytes(chunk)


def _declared_length(parser_context: Any) -> int:
    request = (parser_context or {}).get("request")
    meta = getattr(request, "META", {}) if request is not None else {}
    try:
        return max(0, int(meta.get("CONTENT_LENGTH") or 0))
    except (TypeError, ValueError):
        return 0


def _check_whole(counted: _CountingStream, declared: int) -> None:
    if counted.received < declared:
        raise UploadInterrupted(f"the body ended after {counted.received} of {declared} bytes")


def _close_files(files: Any) -> None:
    """Drop what a cut body left on disk (large parts are spooled to temporary files)."""
    for _, uploads in files.lists() if hasattr(files, "lists") else []:
        for upload in uploads:
            with contextlib.suppress(OSError):
                upload.close()


class WholeMultiPartParser(parsers.MultiPartParser):
    """multipart/form-data, refused with UPLOAD_INTERRUPTED unless it arrived whole."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        declared = _declared_length(parser_context)
        counted = _CountingStream(stream)  # DRF hands no parser an empty body
        try:
            parsed = super().parse(cast(IO[Any], counted), media_type, parser_context)
        except exceptions.ParseError:
            # A body cut inside a part's headers is a parse error; say what happened.
            _check_whole(counted, declared)
            raise
        try:
            _check_whole(counted, declared)
            _, params = parse_header_parameters(media_type or "")
            boundary = str(params.get("boundary") or "").encode("ascii", "replace")
            if boundary and b"--" + boundary + b"--" not in counted.tail:
                raise UploadInterrupted("the multipart body has no closing boundary")
        except UploadInterrupted:
            _close_files(parsed.files)
            raise
        return parsed


class WholeFormParser(parsers.FormParser):
    """application/x-www-form-urlencoded, refused with UPLOAD_INTERRUPTED unless whole."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        counted = _CountingStream(stream)
        parsed = super().parse(cast(IO[Any], counted), media_type, parser_context)
        _check_whole(counted, _declared_length(parser_context))
        return parsed
