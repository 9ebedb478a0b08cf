"""Reading ragstream's topics from the operator commands (status, dead letters).

One place that opens the CLI's plain consumers and producers, so the connection settings
are applied the same way for every operator command. A topic is read from its beginning
up to the end offsets it had when the read started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.connection import aiokafka_kwargs
from streams.errors import RequestTimeoutError
from streams.settings import KafkaSettings

__all__ = ["EXIT_NOT_FOUND", "consumer", "producer", "read_topic", "table"]

EXIT_NOT_FOUND = 3
"""Exit code of a command whose subject (a document, a dead letter) does not exist."""


def consumer(kafka: KafkaSettings) -> AIOKafkaConsumer:
    """A group-less consumer that never commits."""
    return AIOKafkaConsumer(
        **aiokafka_kwargs(kafka),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )


def producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica."""
    return AIOKafkaProducer(**aiokafka_kwargs(kafka), acks="all")


async def _partitions(reader: AIOKafkaConsumer, topic: str, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + min(timeout_s, 5.0)
    while True:
        parts = reader.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            return []  # no such topic (yet): nothing to read
        await reader._client.force_metadata_update()
        await asyncio.sleep(0.2)  # metadata poll interval, bounded by the deadline


async def read_topic(kafka: KafkaSettings, topic: str, *, timeout_s: float = 30.0) -> list[Any]:
    """Every record of ``topic``, in partition then offset order."""
    reader = consumer(kafka)
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in await _partitions(reader, topic, timeout_s)]
        if not tps:
            return []
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        end = await reader.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in tps if await reader.position(tp) < end[tp]]:
            if time.monotonic() > deadline:
                raise RequestTimeoutError(f"could not read {topic} within {timeout_s}s")
            for batch in (await reader.getmany(timeout_ms=500)).values():
                records.extend(
                    r for r in batch if r.offset < end[TopicPartition(topic, r.partition)]
                )
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await reader.stop()


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
