from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from academy.api.errors import api_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("academy.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Anything else under /api/ ending in a slash is a JSON 404 (a path without its slash
    # is first redirected to it by APPEND_SLASH, as for the real endpoints).
    re_path(r"^api/(?:.*/)?$", api_not_found),
    path("review/", include("academy.review.urls")),  # teachers' review pages (session login)
    path("", include("academy.views_metrics")),  # GET /metrics
]
