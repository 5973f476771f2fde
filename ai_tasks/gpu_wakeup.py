"""Wake the GPU pool: start the premium machine when premium work waits and no one serves it.

The GPU machine is expensive, so it may be stopped while no premium work comes in. Beat
runs :func:`check` every ``AI_GPU_WAKEUP_INTERVAL_SECONDS`` on the domain pool. It starts
the machine with the configured starter when

1. a premium job is PENDING or RETRYING, and due, since at least
   ``AI_GPU_WAKEUP_AFTER_SECONDS``, and
2. no worker consuming the ``premium`` queue answers ``inspect().active_queues()``
   within a short timeout, and
3. no start happened in the last ``AI_GPU_WAKEUP_COOLDOWN_SECONDS``, in any process.

The cool-down lives in the database, the source of truth: one ``RuntimeFlag`` row,
``ai_gpu_wakeup_started_at``, holds the time of the last start, and a process may start
only if its conditional UPDATE (compare-and-set on the value it read) changed that row.
Two beat processes, or a beat and a manual run, cannot both start within a cool-down.
Clearing the row's value in the admin re-arms the check at once.

Starters (``AI_GPU_STARTER``):

- ``command:<program> <args...>``: split like a shell would (``shlex``) and run directly,
  without a shell, detached in its own session. Nothing from a job ever reaches it.
- ``ec2:<instance-id>``: ``boto3.client("ec2").start_instances``; boto3 is imported only
  here and is not a dependency of the project (``pip install boto3``); region and
  credentials come from boto3's usual chain (``AWS_REGION``, a profile, an instance role).
"""

from __future__ import annotations

import importlib
import logging
import re
import shlex
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Min
from django.utils import timezone

from academy.models import AIJob, RuntimeFlag
from academy.states import CLAIMABLE_STATUSES
from ai_tasks import routing
from config.celery import app

logger = logging.getLogger(__name__)

WAKEUP_TASK: Final = "ai_tasks.gpu_wakeup.check"
STARTED_FLAG: Final = "ai_gpu_wakeup_started_at"
PREMIUM_QUEUE: Final = "premium"
#: seconds to wait for workers' answers to ``inspect().active_queues()``.
INSPECT_TIMEOUT: Final = 1.0
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")

_soft, _hard = routing.time_limits("domain")
#: command starters this process spawned; polled so that finished ones are reaped.
_children: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True)
class Starter:
    kind: str  # "command" or "ec2"
    target: str


def parse_starter(raw: str) -> Starter | None:
    """The configured starter, or None when the wake-up is off or misconfigured."""
    raw = (raw or "").strip()
    if not raw:
        return None
    kind, _, target = raw.partition(":")
    kind, target = kind.strip().lower(), target.strip()
    if kind == "command" and target:
        try:
            if shlex.split(target):
                return Starter("command", target)
        except ValueError as exc:
            logger.error("AI_GPU_STARTER: cannot split the command: %s", exc)
            return None
    if kind == "ec2" and _INSTANCE_ID.match(target):
        return Starter("ec2", target)
    logger.error("AI_GPU_STARTER must be 'command:<program> <args>' or 'ec2:<instance-id>', not %r", raw)
    return None


def premium_waiting_since(now: datetime) -> datetime | None:
    """When the longest-waiting due premium job became due, or None when none waits."""
    oldest = AIJob.objects.filter(tier=PREMIUM_QUEUE, status__in=CLAIMABLE_STATUSES, next_run_at__lte=now).aggregate(
        oldest=Min("next_run_at")
    )["oldest"]
    return cast("datetime | None", oldest)


def premium_workers(timeout: float = INSPECT_TIMEOUT) -> list[str] | None:
    """Names of the workers consuming the premium queue; None when the broker is unreachable."""
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # the broker is down: a GPU would not get the work either
        logger.warning("gpu wake-up: cannot ask workers for their queues: %s", exc)
        return None
    return sorted(
        name
        for name, queues in replies.items()
        if any(isinstance(q, dict) and q.get("name") == PREMIUM_QUEUE for q in queues or [])
    )


def _last_start(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def cooling_down(now: datetime, cooldown: float) -> bool:
    value = RuntimeFlag.objects.filter(key=STARTED_FLAG).values_list("value", flat=True).first()
    last = _last_start(value or "")
    return last is not None and now - last < timedelta(seconds=cooldown)


def claim_start(now: datetime, cooldown: float) -> bool:
    """Take the right to start, once per cool-down across every process (a conditional UPDATE)."""
    row, _ = RuntimeFlag.objects.get_or_create(key=STARTED_FLAG, defaults={"value": ""})
    last = _last_start(row.value)
    if last is not None and now - last < timedelta(seconds=cooldown):
        return False
    # Only the process whose read is still current wins; a concurrent claimer changed the value.
    won = RuntimeFlag.objects.filter(pk=row.pk, value=row.value).update(value=now.isoformat(), updated_at=now)
    return won == 1


def _reap() -> None:
    _children[:] = [child for child in _children if child.poll() is None]


def start_command(command: str) -> dict[str, Any]:
    args = shlex.split(command)
    try:
        child = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # detached: outlives this task, and beat's shutdown signals
            close_fds=True,
        )
    except OSError as exc:
        logger.error("gpu wake-up: cannot run %s: %s", args[0], exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    _children.append(child)
    return {"pid": child.pid}


def start_ec2(instance_id: str) -> dict[str, Any]:
    try:
        boto3 = importlib.import_module("boto3")
    except ImportError:
        logger.error("gpu wake-up: AI_GPU_STARTER is ec2:%s but boto3 is not installed; pip install boto3", instance_id)
        return {"error": "boto3 is not installed"}
    try:
        response = boto3.client("ec2").start_instances(InstanceIds=[instance_id])
    except Exception as exc:  # botocore's errors: credentials, permissions, a wrong id
        logger.error("gpu wake-up: start_instances(%s) failed: %s", instance_id, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    states = [s.get("CurrentState", {}).get("Name") for s in response.get("StartingInstances", [])]
    return {"instance": instance_id, "state": states[0] if states else None}


def start_pool(starter: Starter) -> dict[str, Any]:
    if starter.kind == "command":
        return start_command(starter.target)
    return start_ec2(starter.target)


def check_once(*, now: datetime | None = None) -> dict[str, Any]:
    """One wake-up check; returns what it decided (``action``) and why."""
    starter = parse_starter(str(settings.AI_GPU_STARTER))
    if starter is None:
        return {"action": "disabled"}
    _reap()
    now = now or timezone.now()
    after = float(settings.AI_GPU_WAKEUP_AFTER_SECONDS)
    cooldown = float(settings.AI_GPU_WAKEUP_COOLDOWN_SECONDS)
    since = premium_waiting_since(now)
    if since is None:
        return {"action": "idle"}
    waited = (now - since).total_seconds()
    if waited < after:
        return {"action": "waiting", "waited": waited}
    if cooling_down(now, cooldown):  # a cheap read first: no broadcast while cooling down
        return {"action": "cooldown", "waited": waited}
    workers = premium_workers()
    if workers is None:
        return {"action": "broker_unreachable", "waited": waited}
    if workers:
        return {"action": "worker_up", "workers": workers, "waited": waited}
    if not claim_start(now, cooldown):
        return {"action": "cooldown", "waited": waited}
    logger.warning(
        "gpu wake-up: premium work has waited %.0fs with no premium worker; starting %s %s",
        waited,
        starter.kind,
        starter.target if starter.kind == "ec2" else shlex.split(starter.target)[0],
    )
    return {"action": "started", "starter": starter.kind, "waited": waited, **start_pool(starter)}


@app.task(name=WAKEUP_TASK, soft_time_limit=_soft, time_limit=_hard, ignore_result=True)
def check() -> dict[str, Any]:
    close_old_connections()
    return check_once()
