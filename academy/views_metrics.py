"""``GET /metrics``: the Prometheus exposition, for staff or the scraper's basic auth.

A staff session (the admin's login) is enough. Prometheus itself authenticates with
HTTP basic auth against ``METRICS_USERNAME`` / ``METRICS_PASSWORD``; with neither set,
only staff get in and everyone else is told the endpoint is not configured (503).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from academy import metrics


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _unauthorized() -> HttpResponse:
    response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Basic realm="metrics", charset="UTF-8"'
    return response


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        username, password = settings.METRICS_USERNAME, settings.METRICS_PASSWORD
        if not (username and password):
            return HttpResponse("metrics auth is not configured\n", status=503, content_type="text/plain")
        credentials = _basic_credentials(request)
        if credentials is None:
            if user.is_authenticated:  # logged in, but not staff: no second chance
                return HttpResponse("staff only\n", status=403, content_type="text/plain")
            return _unauthorized()
        # Both compared every time, so a wrong user name costs as long as a wrong password.
        user_ok = _matches(credentials[0], username)
        password_ok = _matches(credentials[1], password)
        if not (user_ok and password_ok):
            return _unauthorized()
    response = HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


# Included at the site root by config/urls.py.
urlpatterns = [path("metrics", metrics_view, name="metrics")]
