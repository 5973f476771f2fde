"""The premium (GPU) pool: ``celery -A config worker -Q premium -n premium@%h -c <GPUs>``.

Prefork with one child per GPU. CUDA must not be touched in the parent: a CUDA context
does not survive fork. Each child pins its device in ``worker_process_init`` (after
fork, before any model loads) through CUDA_VISIBLE_DEVICES.
"""

from ai_tasks import gpu
from ai_tasks.pools import define_run_many_task, define_run_task

run_job = define_run_task("premium")
run_jobs = define_run_many_task("premium")
gpu.install_hooks()
