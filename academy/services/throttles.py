"""Per-tenant limits on costly requests, counted under the tenant's row lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from academy.models import AIJob, Tenant
from academy.rejections import Rejection

#: the window ``AI_FORCE_RERUN_PER_HOUR`` counts over
FORCE_RERUN_WINDOW = timedelta(hours=1)


class Throttled(Rejection):
    """Over a limit: the code, and how many seconds until one more is allowed."""

    def __init__(self, code: str, detail: str, *, retry_after: int) -> None:
        super().__init__(code, detail)
        self.retry_after = retry_after


@contextlib.contextmanager
def force_rerun_slot(*, tenant: Tenant) -> Iterator[None]:
    """One forced rerun within the tenant's hourly limit (``AI_FORCE_RERUN_PER_HOUR``;
    0 or less: no limit), for the dispatch run inside the block. Raises
    :class:`Throttled` (``RERUN_THROTTLED``) when the last hour's are used up.

    A forced rerun bypasses idempotency and makes a new job each time, so without a
    limit a client in a retry loop re-runs the same costly job without end. The tenant's
    row stays locked until the block's dispatch commits, so concurrent reruns of one
    tenant count one another instead of all reading the same count.
    """
    limit = settings.AI_FORCE_RERUN_PER_HOUR
    if limit <= 0:
        yield
        return
    with transaction.atomic():
        list(Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk", flat=True))
        since = timezone.now() - FORCE_RERUN_WINDOW
        recent = AIJob.objects.filter(tenant=tenant, force_rerun=True, created_at__gte=since)
        used = recent.count()
        if used >= limit:
            oldest = recent.order_by("created_at").values_list("created_at", flat=True).first() or since
            wait = (oldest + FORCE_RERUN_WINDOW - timezone.now()).total_seconds()
            raise Throttled(
                "RERUN_THROTTLED",
                f"{used} forced reruns in the last hour; the limit is {limit}",
                retry_after=max(1, int(wait) + 1),
            )
        yield
