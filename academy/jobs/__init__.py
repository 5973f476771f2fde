"""The job's one home: dispatch and pre-validation, the outcome decision, sending.

Imports point inward only: ``ai_tasks`` (the Celery adapter) calls into this package,
and nothing here imports ``ai_tasks``.
"""
