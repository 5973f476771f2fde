"""The lite pool: `celery -A config worker -Q lite -n lite@%h`."""

from ai_tasks.pools import define_run_many_task, define_run_task

run_job = define_run_task("lite")
run_jobs = define_run_many_task("lite")
