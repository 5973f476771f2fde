"""The embedded broker (filesystem://): a consumer never reads a message half written."""

from __future__ import annotations

import os
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
