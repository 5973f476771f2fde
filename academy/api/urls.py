from django.urls import path

from academy.api import internal, jobs

urlpatterns = [
    path("jobs/", jobs.JobListCreateView.as_view(), name="jobs"),
    path("jobs/<str:job_id>/", jobs.JobStatusView.as_view(), name="job-status"),
    path("internal/ai/job/next/", internal.InternalJobNextView.as_view(), name="internal-job-next"),
    path("internal/ai/job/result/", internal.InternalJobResultView.as_view(), name="internal-job-result"),
]
