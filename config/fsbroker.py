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

``config.celery`` registers this class for the ``filesystem://`` scheme in every
process (web, workers, beat, Flower).
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
