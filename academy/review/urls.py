"""``/review/``: session-authenticated pages for teachers (included from config/urls.py)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from academy.review import proposals, views

app_name = "review"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="review/login.html", redirect_authenticated_user=True, next_page="review:index"
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="review:login"), name="logout"),
    path("", views.exam_index, name="index"),
    path("exams/<int:exam_id>/", views.exam_review, name="exam"),
    path("exams/<int:exam_id>/correct/", views.answer_correct, name="correct"),
    path("crops/<int:submission_id>/<str:question>.png", views.answer_crop, name="crop"),
    path("exams/<int:exam_id>/proposals/<str:job_id>/", proposals.proposal_show, name="proposal"),
    path("exams/<int:exam_id>/proposals/<str:job_id>/decide/", proposals.proposal_decide, name="proposal-decide"),
    path("proposals/<str:job_id>/picture.png", proposals.proposal_picture, name="proposal-picture"),
]
