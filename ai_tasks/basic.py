"""The basic pool: `celery -A config worker -Q basic -n basic@%h`."""

from ai_tasks.pools import define_run_many_task, define_run_task

run_job = define_run_task("basic")
run_jobs = define_run_many_task("basic")
