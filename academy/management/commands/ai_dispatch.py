"""``manage.py ai_dispatch``: dispatch one job from the shell, the way the API does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from academy import storage
from academy.jobs.dispatch import job_dispatch
from academy.jobs.prevalidation import input_key_for
from academy.models import Tenant
from academy.states import TIERS


def _payload(raw: str) -> Any:
    """``--payload`` is JSON text, or ``@path`` of a JSON file."""
    try:
        if raw.startswith("@"):
            return json.loads(Path(raw[1:]).read_text(encoding="utf-8"))
        return json.loads(raw)
    except OSError as exc:
        raise CommandError(f"cannot read the payload file: {exc}") from exc
    except ValueError as exc:
        raise CommandError(f"--payload is not valid JSON: {exc}") from exc


class Command(BaseCommand):
    help = "Dispatch an AI job (pre-validated, published to its tier's queue). Prints the outcome as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_type")
        parser.add_argument("--tier", choices=list(TIERS), help="default: the type's tier rules")
        parser.add_argument("--payload", default="{}", help="JSON text, or @path to a JSON file")
        parser.add_argument("--file", type=Path, help="upload this file as the job's input (needs --tenant)")
        parser.add_argument("--tenant", help="tenant slug")
        parser.add_argument("--idempotency-key", default=None)
        parser.add_argument("--force-rerun", action="store_true")
        parser.add_argument("--reason", default="", help="rerun reason, with --force-rerun")

    def handle(self, *args: Any, **options: Any) -> None:
        payload = _payload(options["payload"])
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant {options['tenant']!r}")
        upload: Path | None = options["file"]
        if upload is not None:
            if tenant is None:
                raise CommandError("--file needs --tenant: files are stored under the tenant's prefix")
            key = input_key_for(options["job_type"])
            if key is None or not isinstance(payload, dict):
                raise CommandError(f"job type {options['job_type']!r} takes no file")
            try:
                data = upload.read_bytes()
            except OSError as exc:
                raise CommandError(f"cannot read {upload}: {exc}") from exc
            payload = {**payload, key: storage.upload_save(tenant=tenant, name=upload.name, data=data)}
        outcome = job_dispatch(
            job_type=options["job_type"],
            payload=payload,
            tenant=tenant,
            tier=options["tier"],
            idempotency_key=options["idempotency_key"],
            force_rerun=options["force_rerun"],
            rerun_reason=options["reason"],
        )
        self.stdout.write(json.dumps(outcome, ensure_ascii=False, indent=2, default=str))
        if not outcome["ok"]:
            raise CommandError(f"not dispatched: {outcome.get('rejection_code') or ''} {outcome.get('error') or ''}")
