"""Rejection codes the OMR reader raises, and the one exception type it raises them with.

The reader reports a bad input as :class:`workers.base.BadInput`, so the platform maps it
to a REJECTED_BAD_INPUT job without knowing anything about OMR. The codes below that are
not in ``academy.rejections`` yet are listed in docs/omr.md.
"""

from __future__ import annotations

from typing import Final

from workers.base import BadInput

# Codes that academy.rejections already has.
FILE_UNREADABLE: Final = "FILE_UNREADABLE"
FILE_TOO_LARGE: Final = "FILE_TOO_LARGE"
INVALID_FORMAT: Final = "INVALID_FORMAT"
EMPTY_FILE: Final = "EMPTY_FILE"
FILE_REQUIRED: Final = "FILE_REQUIRED"
FILE_NOT_FOUND: Final = "FILE_NOT_FOUND"
INVALID_PATH: Final = "INVALID_PATH"
RESOLUTION_TOO_LOW: Final = "RESOLUTION_TOO_LOW"
INVALID_PAYLOAD: Final = "INVALID_PAYLOAD"
# The quality gate's codes (workers.imagecheck), also raised by the photo reader.
BLUR_OR_SHAKE: Final = "BLUR_OR_SHAKE"
TOO_DARK: Final = "TOO_DARK"

# Codes this package adds (to be registered in academy.rejections).
TEMPLATE_INVALID: Final = "TEMPLATE_INVALID"
TEMPLATE_MISMATCH: Final = "TEMPLATE_MISMATCH"
NO_SHEET_FOUND: Final = "NO_SHEET_FOUND"
PDF_NO_PAGES: Final = "PDF_NO_PAGES"
PDF_TOO_MANY_PAGES: Final = "PDF_TOO_MANY_PAGES"


class OmrError(BadInput):
    """A bad input to the OMR reader; ``code`` is a rejection code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
