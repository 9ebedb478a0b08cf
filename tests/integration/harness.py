"""Test harness: a real worker process (``ragstream.workers``) and raw Kafka helpers for the
end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ragstream import workers
from ragstream.devstack import free_port
from ragstream.workers import worker_env
from streams.connection import aiokafka_kwargs
from streams.settings import KafkaSettings

__all__ = ["WorkerProcess", "isolated_env", "produce", "read_until"]

ROOT = Path(__file__).resolve().parents[2]


def isolated_env(
    *, kafka_bootstrap: str, elasticsearch_url: str, data_dir: Path, **overrides: str
) -> dict[str, str]:
    """A worker environment isolated by topic prefix, group, index, collection and catalog.

    Chroma is embedded in ``data_dir`` and the catalog is SQLite there unless overridden
    (``CHROMA_URL=...``, ``DATABASE_URL=...``); any other variable can be overridden too.
    """
    env = worker_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=elasticsearch_url,
        data_dir=data_dir,
        prefix=f"t{uuid.uuid4().hex[:8]}",
        KAFKA_PARTITIONS="2",
        ELASTICSEARCH_REFRESH="true",
        CHROMA_URL="",
        # Probes and /metrics: a free port per worker environment (6066 may be taken).
        RAGSTREAM_HTTP_PORT=str(free_port()),
    )
    # These workers test the pipeline; test_security.py overrides RAGSTREAM_AUTH=required.
    return env | overrides


class WorkerProcess(workers.WorkerProcess):
    """``ragstream worker`` as a child process with its own environment, run from the
    repository root (the package's harness, ``ragstream.workers``)."""

    def __init__(self, env: Mapping[str, str], *, log_path: Path) -> None:
        super().__init__(env, log_path=log_path, cwd=ROOT)

    @property
    def http_url(self) -> str:
        """Base URL of the worker's probes and ``/metrics``."""
        return f"http://127.0.0.1:{self.env['RAGSTREAM_HTTP_PORT']}"


async def run_cli(
    *args: str, env: Mapping[str, str], timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    """``ragstream ARGS`` in a subprocess with ``env`` (text output captured, never raises on
    a non-zero exit: the test reads ``returncode``)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ragstream.cli", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _kwargs(bootstrap: str | KafkaSettings) -> dict[str, Any]:
    """Client arguments: a plain ``host:port``, or settings with TLS/SASL."""
    if isinstance(bootstrap, KafkaSettings):
        return aiokafka_kwargs(bootstrap)
    return {"bootstrap_servers": bootstrap}


async def produce(
    bootstrap: str | KafkaSettings,
    topic: str,
    *,
    value: bytes | None,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send one raw message with a plain aiokafka producer."""
    producer = AIOKafkaProducer(**_kwargs(bootstrap))
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str | KafkaSettings,
    topic: str,
    predicate: Callable[[list[ConsumerRecord[Any, Any]]], bool],
    *,
    timeout_s: float = 60,
    partitions: int | None = None,
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning (all partitions) until ``predicate(records)`` holds."""
    consumer = AIOKafkaConsumer(
        **_kwargs(bootstrap), group_id=None, fetch_max_wait_ms=50, enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        parts = await _partitions(consumer, topic, deadline)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not predicate(records):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{topic}: condition not met; got {len(records)} records")
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 1) * 1000))
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str, deadline: float) -> list[int]:
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        await consumer._client.force_metadata_update()
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} does not exist")
        await asyncio.sleep(0.2)


def value_json(record: ConsumerRecord[Any, Any]) -> dict[str, Any]:
    """A record's value as JSON."""
    return json.loads(record.value)


def new_id() -> str:
    """A short unique id."""
    return uuid.uuid4().hex[:10]
