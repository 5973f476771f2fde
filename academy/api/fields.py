"""Serializer fields stricter than DRF's own, for values a client must mean."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false``; from a form (multipart), only ``"true"``, ``"false"``,
    ``"1"`` or ``"0"``. DRF's own field also takes ``"yes"``, ``"on"``, ``"t"`` and the
    numbers 1 and 0, so a typo could force a costly rerun; here those are refused.

    The serializer's context says a form sent the value (``{"form": True}``): only then
    are strings read, since a form has no booleans.
    """

    FORM_VALUES = {"true": True, "false": False, "1": True, "0": False}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and self.context.get("form"):
            value = self.FORM_VALUES.get(data.strip().lower())
            if value is not None:
                return value
        self.fail("invalid", input=data)
        raise AssertionError("unreachable")  # fail() raises
