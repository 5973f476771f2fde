"""kombu's file-system transport, with messages that appear whole.

The embedded broker of a laptop run (``CELERY_BROKER_URL`` unset, ``filesystem://``)
is kombu's file-system transport. Its ``_put`` creates ``<time>_<uuid>.<queue>.msg``
and then writes it, while a consumer in another process renames any ``*.<queue>.msg``
it lists and reads it, without taking the writer's lock. A consumer that lists the file
between the two reads an empty or cut message, and the worker dies on the JSON error
("Unrecoverable error: JSONDecodeError"); the demo hit this at start-up. Here the
message is written under a name no consumer matches (``.msg.part``) and renamed into
place in one step (``os.replace``, atomic within a folder), so a consumer sees nothing
or the whole message.

Why a transport subclass that overrides ``_put``: ``_put`` and ``_get`` are the methods
every kombu virtual transport is made of (``kombu.transport.virtual.Channel`` leaves them
to each transport, raising NotImplementedError), so this is the shape a fix in kombu
itself would take: the same transport with another ``_put``, touching nothing else of
kombu's. It is registered through ``TRANSPORT_ALIASES``, kombu's own table of URL schemes,
instead of patching kombu's module: ``config.celery`` calls :func:`register` in every
process (web, workers, beat, Flower). Its tests are ``tests/unit/test_fsbroker.py``. Once
kombu's file-system transport writes its messages atomically, this module can go.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):
    # kombu names the argument "message" in the base and "payload" here: positional either way.
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(message)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Make ``filesystem://`` mean this transport in this process."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
