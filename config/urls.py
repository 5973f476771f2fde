from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("academy.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("review/", include("academy.review.urls")),  # teachers' review pages (session login)
    path("", include("academy.views_metrics")),  # GET /metrics
]
