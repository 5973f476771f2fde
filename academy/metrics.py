"""Prometheus metrics, computed when Prometheus scrapes ``GET /metrics``.

Nothing is counted in process memory: every number is read at scrape time from the
broker (queue depths) or the job table (counts, ages, processing times). So any
gunicorn worker can answer a scrape with the same figures, and a restart loses nothing.

The functions :func:`queue_depths` and :func:`oldest_pending_ages` are shared with the
``ai_queues`` management command.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from academy.jobs.sending import DOMAIN_QUEUE
from academy.models import AIJob, JobStatus
from academy.states import TIERS

logger = logging.getLogger(__name__)

PREFIX: Final = "academy_ai"
#: Upper bounds, in seconds, of the processing-time histogram's buckets (+Inf is added).
DURATION_BUCKETS: Final = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
#: Processing times come from jobs that finished within this window.
DURATION_WINDOW: Final = timedelta(hours=1)
#: How long a scrape waits for the broker before reporting a broker error.
BROKER_TIMEOUT_SECONDS: Final = 3.0
WAITING_STATUSES: Final = (JobStatus.PENDING, JobStatus.RETRYING)


def _broker_app() -> Any:
    from config.celery import app

    return app


def _redis_depths(connection: Any, queues: Sequence[str]) -> dict[str, int]:
    """LLEN of each queue's list, plus the priority lists kombu keeps beside it."""
    channel = connection.default_channel
    steps = sorted({int(step) for step in channel.priority_steps})
    keys: dict[str, list[str]] = {
        queue: [queue if step == 0 else f"{queue}{channel.sep}{step}" for step in steps] for queue in queues
    }
    # The channel's client adds the transport's global_keyprefix, when one is set.
    with channel.conn_or_acquire() as client, client.pipeline() as pipe:
        for names in keys.values():
            for name in names:
                pipe.llen(name)
        lengths = iter(pipe.execute())
    return {queue: sum(int(next(lengths)) for _ in names) for queue, names in keys.items()}


def _declared_depths(connection: Any, queues: Sequence[str]) -> dict[str, int]:
    """Any other transport: a passive declare reports the message count without creating."""
    depths: dict[str, int] = {}
    for queue in queues:
        channel = connection.channel()
        try:
            _, count, _ = channel.queue_declare(queue=queue, passive=True)
            depths[queue] = int(count)
        except connection.channel_errors:
            # Not declared yet: no worker ever consumed it, and with
            # task_create_missing_queues off nothing can be waiting in it.
            depths[queue] = 0
        finally:
            try:
                channel.close()
            except Exception:  # a channel the broker already closed
                logger.debug("metrics_channel_close_failed queue=%s", queue, exc_info=True)
    return depths


def queue_depths(*, queues: Sequence[str] = (*TIERS, DOMAIN_QUEUE)) -> dict[str, int]:
    """Messages waiting in each queue, read from the broker. Raises on a broker error.

    A queue nobody declared yet reads as 0, so every tier is reported even while no worker
    is online.
    """
    app = _broker_app()
    with app.connection_for_read(connect_timeout=BROKER_TIMEOUT_SECONDS) as connection:
        redis = connection.transport.driver_type == "redis"  # no network yet
        if redis:  # the Redis transport takes its socket timeouts from here, not connect_timeout
            connection.transport_options = {
                **connection.transport_options,
                "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
                "socket_timeout": BROKER_TIMEOUT_SECONDS,
            }
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5, timeout=BROKER_TIMEOUT_SECONDS)
        return _redis_depths(connection, queues) if redis else _declared_depths(connection, queues)


def oldest_pending_ages(*, now: datetime | None = None) -> dict[str, float]:
    """Seconds since the oldest PENDING or RETRYING job of each tier was created (0: none)."""
    now = now or timezone.now()
    oldest = dict(
        AIJob.objects.filter(status__in=WAITING_STATUSES)
        .values("tier")
        .annotate(oldest=Min("created_at"))
        .order_by()
        .values_list("tier", "oldest")
    )
    return {tier: max(0.0, (now - oldest[tier]).total_seconds()) if tier in oldest else 0.0 for tier in TIERS}


def job_counts() -> list[tuple[str, str, str, int]]:
    """(status, tier, job_type, count) for every combination that has jobs."""
    rows = AIJob.objects.values("status", "tier", "job_type").annotate(n=Count("pk")).order_by()
    return [(r["status"], r["tier"], r["job_type"], r["n"]) for r in rows]


def _duration_histograms(*, now: datetime) -> list[tuple[str, str, list[int], int, float]]:
    """(tier, job_type, cumulative bucket counts, count, sum seconds), bucketed in SQL."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    buckets = {
        f"le_{i}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(DURATION_BUCKETS)
    }
    rows = (
        AIJob.objects.filter(finished_at__gte=now - DURATION_WINDOW, started_at__isnull=False)
        .annotate(duration=duration)
        .values("tier", "job_type")
        .annotate(total=Count("pk"), seconds=Sum("duration"), **buckets)
        .order_by()
    )
    out = []
    for row in rows:
        seconds = row["seconds"].total_seconds() if row["seconds"] is not None else 0.0
        counts = [int(row[f"le_{i}"]) for i in range(len(DURATION_BUCKETS))]
        out.append((row["tier"], row["job_type"], counts, int(row["total"]), max(0.0, seconds)))
    return out


def _labelled(
    name: str, documentation: str, labels: Sequence[str], rows: Iterable[tuple[Sequence[str], float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=list(labels))
    for values, value in rows:
        family.add_metric(list(values), value)
    return family


class PlatformCollector(Collector):
    """Reads everything at collect() time; holds no state between scrapes."""

    def collect(self) -> Iterator[Metric]:
        errors = {"broker": 0.0, "database": 0.0}
        try:
            depths = queue_depths()
        except Exception:
            logger.warning("metrics_broker_unreachable", exc_info=True)
            errors["broker"] = 1.0
        else:
            yield _labelled(
                "queue_depth",
                "Messages waiting in the broker queue (tier queues and the domain queue).",
                ["queue"],
                (((queue,), float(n)) for queue, n in depths.items()),
            )
        try:
            families = list(self._database_families())
        except Exception:
            logger.warning("metrics_database_unreadable", exc_info=True)
            errors["database"] = 1.0
        else:
            yield from families
        yield _labelled(
            "scrape_error",
            "1 when this scrape could not read the source (its metrics are then missing), else 0.",
            ["source"],
            (((source,), value) for source, value in errors.items()),
        )

    def _database_families(self) -> Iterator[Metric]:
        now = timezone.now()
        yield _labelled(
            "oldest_pending_age_seconds",
            "Age of the oldest PENDING or RETRYING job of the tier, 0 when none waits.",
            ["tier"],
            (((tier,), age) for tier, age in oldest_pending_ages(now=now).items()),
        )
        yield _labelled(
            "jobs",
            "Jobs in the database by status, tier and job type.",
            ["status", "tier", "job_type"],
            (((status, tier, job_type), float(n)) for status, tier, job_type, n in job_counts()),
        )
        fallbacks = (
            AIJob.objects.filter(fallback_from__isnull=False)
            .values_list("tier", "fallback_from_tier")
            .annotate(n=Count("pk"))
            .order_by()
        )
        yield _labelled(
            "fallback_jobs",
            "GPU-fallback re-runs (jobs with fallback_from set) by their tier and the tier they replace.",
            ["tier", "from_tier"],
            (((tier, from_tier or "unknown"), float(n)) for tier, from_tier, n in fallbacks),
        )
        reviews = AIJob.objects.filter(needs_review=True).values_list("job_type").annotate(n=Count("pk")).order_by()
        yield _labelled(
            "review_jobs",
            "Jobs flagged for human review (needs_review) by job type.",
            ["job_type"],
            (((job_type,), float(n)) for job_type, n in reviews),
        )
        rejections = (
            AIJob.objects.exclude(rejection_code="").values_list("rejection_code").annotate(n=Count("pk")).order_by()
        )
        yield _labelled(
            "rejections",
            "Jobs rejected by a worker, by rejection code.",
            ["rejection_code"],
            (((code,), float(n)) for code, n in rejections),
        )
        callbacks = (
            AIJob.objects.filter(callback_failed_at__isnull=False)
            .values_list("source_domain", "job_type")
            .annotate(n=Count("pk"))
            .order_by()
        )
        yield _labelled(
            "callback_failures",
            "Jobs whose domain callback was given up (an error that cannot change, or too many tries),"
            " by source domain and job type.",
            ["source_domain", "job_type"],
            (((domain, job_type), float(n)) for domain, job_type, n in callbacks),
        )
        histogram = HistogramMetricFamily(
            f"{PREFIX}_processing_seconds",
            f"Processing time (finished_at - started_at) of jobs finished in the last "
            f"{int(DURATION_WINDOW.total_seconds())} s, by tier and job type.",
            labels=["tier", "job_type"],
        )
        for tier, job_type, counts, total, seconds in _duration_histograms(now=now):
            buckets = [(str(float(b)), float(n)) for b, n in zip(DURATION_BUCKETS, counts, strict=True)]
            buckets.append(("+Inf", float(total)))
            histogram.add_metric([tier, job_type], buckets, seconds)
        yield histogram


def render() -> bytes:
    """The text exposition of every metric, computed now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector())
    return generate_latest(registry)
