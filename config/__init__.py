"""Project configuration. Importing it loads the Celery app, so `-A config` works."""

from config.celery import app as celery_app

__all__ = ("celery_app",)
