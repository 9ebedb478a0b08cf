"""Test harness: a real worker process and raw Kafka helpers for the end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ragstream.devstack import free_port
from streams.client import SearchClient
from streams.errors import RagstreamError
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
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RAGSTREAM_TOPIC_PREFIX": prefix,
        "KAFKA_CONSUMER_GROUP": f"{prefix}-worker",
        "KAFKA_PARTITIONS": "2",
        # Tansu holds every JoinGroup for the full rebalance timeout: keep both short.
        "KAFKA_SESSION_TIMEOUT_S": "3",
        "KAFKA_REBALANCE_TIMEOUT_S": "1",
        "ELASTICSEARCH_URL": elasticsearch_url,
        "ELASTICSEARCH_INDEX_PREFIX": f"{prefix}-chunks",
        "ELASTICSEARCH_REFRESH": "true",
        "CHROMA_URL": "",
        "CHROMA_COLLECTION_PREFIX": prefix,
        "RAGSTREAM_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'catalog.db'}",
        "RAGSTREAM_LOG_FORMAT": "json",
        # These workers test the pipeline; test_security.py overrides this with "required".
        "RAGSTREAM_AUTH": "disabled",
        # Probes and /metrics: a free port per worker environment (6066 may be taken).
        "RAGSTREAM_HTTP_PORT": str(free_port()),
    }
    return env | overrides


class WorkerProcess:
    """``ragstream worker`` as a child process with its own environment."""

    def __init__(self, env: Mapping[str, str], *, log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """Spawn the worker (ready only after ``wait_ready``)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ragstream.cli", "worker"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    async def wait_ready(
        self,
        kafka: KafkaSettings,
        *,
        tenant: str,
        timeout_s: float = 120,
        token: str | None = None,
    ) -> None:
        """Poll with search requests (carrying ``token`` if given) until the worker answers one."""
        deadline = time.monotonic() + timeout_s
        async with SearchClient(kafka, token=token) as client:
            while True:
                self.assert_alive()
                try:
                    await client.search("ready?", tenant=tenant, mode="keyword", timeout_s=3)
                    return
                except RagstreamError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"worker not ready in {timeout_s}s:\n{self.log_tail()}"
                        ) from None

    @property
    def http_url(self) -> str:
        """Base URL of the worker's probes and ``/metrics``."""
        return f"http://127.0.0.1:{self.env['RAGSTREAM_HTTP_PORT']}"

    def assert_alive(self) -> None:
        """Fail with the log tail if the worker died."""
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"worker exited with {code}:\n{self.log_tail()}")

    def stop(self, *, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int | None:
        """Stop the worker (SIGTERM, then SIGKILL); returns its exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the worker's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def produce(
    bootstrap: str,
    topic: str,
    *,
    value: bytes | None,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send one raw message with a plain aiokafka producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    predicate: Callable[[list[ConsumerRecord[Any, Any]]], bool],
    *,
    timeout_s: float = 60,
    partitions: int | None = None,
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning (all partitions) until ``predicate(records)`` holds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=50, enable_auto_commit=False
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
