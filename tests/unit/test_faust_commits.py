"""The worker's Faust consumer commits an offset only when every message before it is acked.

The search agent runs ``SEARCH_CONCURRENCY`` requests at once, so they are acked out of
order. Faust alone commits past a request still in flight when the one after it is acked
first (faust-streaming/faust#606); a worker SIGKILLed then loses that request for good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from ragstream.app import build_app
from streams import faust_transport
from streams.settings import AuthSettings, KafkaSettings, Settings

TOPIC = "t.search-requests"
TP0 = TP(TOPIC, 0)


@pytest.fixture
async def consumer() -> AsyncIterator[Any]:
    """The consumer of a worker app (never started: no broker needed) acking ``TOPIC``."""
    app = faust.App(
        "commits",
        broker=f"{faust_transport.SCHEME}://127.0.0.1:9",
        store="memory://",
        web_enabled=False,
    )
    app.topics.add(app.topic(TOPIC, value_serializer="raw"))
    await app.topics._update_indices()
    assert app.topics.acks_enabled_for(TOPIC)
    yield app.consumer


def _taken(consumer: Any, *offsets: int) -> list[Any]:
    """Messages of partition 0 as an agent takes them (tracked until acked)."""
    messages = [
        ConsumerMessage(
            topic=TOPIC,
            partition=0,
            offset=offset,
            timestamp=0.0,
            timestamp_type=0,
            headers=[],
            key=None,
            value=b"{}",
            checksum=None,
            tp=TP0,
        )
        for offset in offsets
    ]
    for message in messages:
        consumer.track_message(message)
    return messages


def _to_commit(consumer: Any) -> int | None:
    return consumer._filter_committable_offsets([TP0]).get(TP0)


async def test_a_request_acked_first_does_not_commit_the_one_before_it(consumer: Any) -> None:
    """10 in flight, 11 and 12 acked: nothing to commit; once 10 is acked, all three."""
    consumer._committed_offset[TP0] = 10
    slow, *fast = _taken(consumer, 10, 11, 12)
    for message in fast:
        consumer.ack(message)
    assert _to_commit(consumer) is None
    consumer.ack(slow)
    assert _to_commit(consumer) == 13


async def test_without_a_commit_yet_the_first_request_in_flight_is_kept(consumer: Any) -> None:
    """A fresh group (no committed offset): 0 in flight, 1 acked commits nothing."""
    first, second, third = _taken(consumer, 0, 1, 2)
    consumer.ack(second)
    assert _to_commit(consumer) is None
    consumer.ack(first)
    assert _to_commit(consumer) == 2  # 2 is still in flight
    consumer.ack(third)
    assert _to_commit(consumer) == 3


async def test_in_order_acks_commit_as_before(consumer: Any) -> None:
    """The ingest agent acks in order: every acked offset is committable at once."""
    consumer._committed_offset[TP0] = 5
    for message in _taken(consumer, 5, 6, 7):
        consumer.ack(message)
    assert _to_commit(consumer) == 8


def test_the_worker_app_keeps_its_files_under_the_data_dir(tmp_path: Path) -> None:
    """Faust's data directory is under ``RAGSTREAM_DATA_DIR``, never ``{group}-data`` in the
    directory the worker was started from."""
    settings = Settings(
        data_dir=tmp_path,
        kafka=KafkaSettings(consumer_group="g1"),
        security=AuthSettings(mode="disabled"),
    )
    app = build_app(settings)
    assert Path(app.conf.datadir) == tmp_path / "faust" / "g1"
    assert Path(app.conf.datadir).is_dir()  # Faust creates only its last level at start
    assert Path(app.conf.appdir).is_relative_to(tmp_path)
