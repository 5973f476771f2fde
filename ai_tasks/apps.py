"""The Celery adapter as a Django app: its tasks are known to every process.

``academy`` sends messages by task name through the Celery app
(``academy.jobs.sending``) and never imports this package. Loading the task modules
here, once the models are ready, registers the tasks with the app in every process that
runs Django (web, worker, beat, ``manage.py``), so a name always finds its task.
"""

from __future__ import annotations

from django.apps import AppConfig


class AiTasksConfig(AppConfig):
    name = "ai_tasks"
    label = "ai_tasks"
    verbose_name = "AI tasks (Celery)"

    def ready(self) -> None:
        # Importing a task module registers its tasks; they import the models, which
        # are only importable from here on (Django's documented place for this).
        from ai_tasks import basic, domain, gpu_wakeup, lite, premium, sweeper  # noqa: F401
