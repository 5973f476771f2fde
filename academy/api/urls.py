from django.urls import path

from academy.api import exams, internal, jobs, omr_templates

urlpatterns = [
    path("jobs/", jobs.JobListCreateView.as_view(), name="jobs"),
    path("jobs/<str:job_id>/", jobs.JobStatusView.as_view(), name="job-status"),
    path("jobs/<str:job_id>/artifacts/<str:name>/", exams.JobArtifactView.as_view(), name="job-artifact"),
    path("files/<str:token>/", exams.DownloadView.as_view(), name="download"),
    path("exams/", exams.ExamListCreateView.as_view(), name="exams"),
    path("exams/<int:exam_id>/", exams.ExamDetailView.as_view(), name="exam"),
    path(
        "exams/<int:exam_id>/template-proposal/",
        omr_templates.ExamTemplateProposalView.as_view(),
        name="exam-template-proposal",
    ),
    path("exams/<int:exam_id>/answer-key/", exams.AnswerKeyView.as_view(), name="exam-answer-key"),
    path("exams/<int:exam_id>/omr-batches/", exams.OmrBatchListCreateView.as_view(), name="omr-batches"),
    path(
        "exams/<int:exam_id>/omr-batches/<str:batch_id>/",
        exams.OmrBatchDetailView.as_view(),
        name="omr-batch",
    ),
    path("submissions/<int:submission_id>/", exams.SubmissionDetailView.as_view(), name="submission"),
    path("internal/ai/job/next/", internal.InternalJobNextView.as_view(), name="internal-job-next"),
    path("internal/ai/job/heartbeat/", internal.InternalJobHeartbeatView.as_view(), name="internal-job-heartbeat"),
    path("internal/ai/job/result/", internal.InternalJobResultView.as_view(), name="internal-job-result"),
]
