"""A private key namespace in the test Redis, so queue-depth tests count only their own messages.

Other test runs (and the integration tests' live workers) share Redis db 11. Inside
:func:`isolated_broker`, this process's Celery app publishes and reads under a unique
``global_keyprefix``: no worker consumes there, and the keys are deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu import pools

from config.celery import app


def _detach_pools() -> list[Any]:
    """Make the app look its pools up again; return the ones it was using."""
    # Celery declares ``_pool`` on the class, but celery-types leaves private attributes out.
    used = [app._pool]  # type: ignore[attr-defined]
    app._pool = None  # type: ignore[attr-defined]
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        used.append(amqp._producer_pool)
        amqp._producer_pool = None
    return [pool for pool in used if pool is not None]


def _close_private_pools(private: list[Any]) -> None:
    """Drop the prefixed pools from kombu's registry and close them; the shared ones stay open."""
    for group in (pools.producers, pools.connections):
        for key, pool in list(dict.items(group)):
            if any(pool is p for p in private):
                dict.__delitem__(group, key)
    for pool in private:
        pool.force_close_all()


@contextmanager
def isolated_broker() -> Iterator[str]:
    prefix = f"academy-test-{uuid.uuid4().hex[:12]}:"
    saved = dict(app.conf.broker_transport_options)
    app.conf.broker_transport_options = {**saved, "global_keyprefix": prefix}
    _detach_pools()  # the shared pools stay open in kombu's registry for later tests
    try:
        yield prefix
    finally:
        app.conf.broker_transport_options = saved
        _close_private_pools(_detach_pools())
        client = redis.Redis.from_url(app.conf.broker_read_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
