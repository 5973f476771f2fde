"""The embedded broker (filesystem://): a consumer never reads a message half written."""

from __future__ import annotations

import os
import time
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection

from config import fsbroker


@pytest.fixture
def channel(tmp_path: Path) -> Any:
    fsbroker.register()
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path), "processed_folder": str(tmp_path)}
    with Connection("filesystem://", transport_options=options) as conn:
        yield conn.default_channel


def test_filesystem_urls_use_the_atomic_transport(channel: Any) -> None:
    assert isinstance(channel, fsbroker.Channel)
    from config.celery import app

    with app.connection_for_write("filesystem://") as conn:
        assert isinstance(conn.transport, fsbroker.Transport)


def test_a_message_still_being_written_is_not_consumed(channel: Any, tmp_path: Path) -> None:
    # What kombu's own _put leaves for a moment: the final name, with half a message in it.
    # Ours writes under the .part name until the message is whole.
    (tmp_path / f"1_x.basic.msg{fsbroker.PARTIAL_SUFFIX}").write_bytes(b'{"body": "half')
    with pytest.raises(Empty):
        channel._get("basic")
    channel._put("basic", {"body": "whole", "n": 1})
    assert channel._get("basic") == {"body": "whole", "n": 1}
    assert sorted(os.listdir(tmp_path)) == [f"1_x.basic.msg{fsbroker.PARTIAL_SUFFIX}"]


def test_put_never_shows_a_partial_file_under_the_consumed_name(
    channel: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        seen.append(sorted(p for p in os.listdir(tmp_path) if p.endswith(".msg")))  # just before the rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    channel._put("domain", {"body": "x" * 100_000})
    assert seen == [[]]  # nothing a consumer matches existed while the file was written
    assert channel._get("domain") == {"body": "x" * 100_000}


def _produce(folder: str, count: int) -> None:
    """Another process's producer (a web request publishing), through the same transport."""
    fsbroker.register()
    options = {"data_folder_in": folder, "data_folder_out": folder, "processed_folder": folder}
    with Connection("filesystem://", transport_options=options) as conn:
        channel = conn.default_channel
        assert isinstance(channel, fsbroker.Channel)
        for n in range(count):
            channel._put("basic", {"body": "x" * 1_000_000, "n": n})


def test_a_consumer_in_another_process_reads_every_message_whole(channel: Any, tmp_path: Path) -> None:
    # kombu's own _put, in the same race, handed this consumer most of 30 such messages
    # empty or cut (a JSON error each, which kills a worker).
    import multiprocessing

    count = 30
    producer = multiprocessing.get_context("fork").Process(target=_produce, args=(str(tmp_path), count))
    producer.start()
    whole: list[int] = []
    broken: list[str] = []
    deadline = time.monotonic() + 60
    while len(whole) + len(broken) < count and time.monotonic() < deadline:
        try:
            message = channel._get("basic")
        except Empty:
            continue
        except Exception as exc:  # what a half-written file gives a consumer
            broken.append(repr(exc)[:80])
            continue
        assert message["body"] == "x" * 1_000_000
        whole.append(message["n"])
    producer.join(timeout=30)
    assert broken == []
    assert sorted(whole) == list(range(count))
