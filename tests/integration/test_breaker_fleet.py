"""Fleet-aware breakers on real workers: a dependency down for one worker only (a fault proxy
in front of its Elasticsearch) opens a healthy peer at most once, for one reset timeout."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ragstream.devstack import free_port
from schemas.document import DocumentUpsert
from streams.client import IngestClient
from streams.settings import KafkaSettings
from tests.faultproxy import FaultProxy
from tests.integration.harness import WorkerProcess, isolated_env

T = TypeVar("T")
RESET_S = 3.0
TEXT = "A fault proxy makes one worker's Elasticsearch unreachable while its peers' is fine. " * 3


def _transitions(log: Path) -> list[dict[str, Any]]:
    """The elasticsearch breaker's transitions in one worker's JSON log."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"breaker_transition"' in line and line.startswith("{"):
            event = json.loads(line)
            if event.get("breaker") == "elasticsearch":
                out.append(event)
    return out


def _count(log: Path, event: str) -> int:
    return log.read_text(errors="replace").count(f'"{event}"')


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


async def _poll(check: Callable[[], T | None], *, what: str, timeout_s: float = 120) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s}s")
        await asyncio.sleep(0.2)  # poll interval, bounded by the deadline


async def _feed(client: IngestClient, stop: asyncio.Event) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        await client.submit(DocumentUpsert(id=f"d{n}", tenant="flap", text=f"{n}. {TEXT}"))
        await asyncio.sleep(0.1)  # the feed's pace


async def _ready(worker: WorkerProcess, kafka: KafkaSettings) -> None:
    """``wait_ready`` blocks nothing: the proxy in this loop keeps serving meanwhile."""
    await worker.wait_ready(kafka, tenant="probe", timeout_s=240)


async def test_one_workers_outage_opens_a_healthy_peer_once_for_one_reset_timeout(
    kafka_bootstrap: str, elasticsearch_url: str, openai_base_url: str, tmp_path: Path
) -> None:
    """Worker a cannot reach ES (resets) and keeps re-opening; b follows its first opening
    only, is open at most one reset timeout (+ the time to its next call), and keeps writing."""
    es = urlsplit(elasticsearch_url)
    assert es.hostname and es.port
    async with FaultProxy(es.hostname, es.port) as proxy:
        common = isolated_env(
            kafka_bootstrap=kafka_bootstrap,
            elasticsearch_url=elasticsearch_url,
            data_dir=tmp_path,
            EMBEDDING_PROVIDER="openai",
            OPENAI_BASE_URL=openai_base_url,
            OPENAI_EMBEDDING_MODEL="e5-small",
            ELASTICSEARCH_TIMEOUT_S="3",
            INGEST_RETRY_INITIAL_S="0.2",
            INGEST_RETRY_MAX_S="1",
            INGEST_BATCH_MAX="2",
            BREAKER_FLEET="follow",
            BREAKER_ELASTICSEARCH_FAIL_MAX="2",
            BREAKER_ELASTICSEARCH_RESET_TIMEOUT_S=str(RESET_S),
            BREAKER_ELASTICSEARCH_CALL_TIMEOUT_S="4",
        )
        kafka = KafkaSettings.model_validate(
            {
                "bootstrap_servers": kafka_bootstrap,
                "RAGSTREAM_TOPIC_PREFIX": common["RAGSTREAM_TOPIC_PREFIX"],
            }
        )
        a_env = common | {
            "RAGSTREAM_WORKER_ID": "a",
            "ELASTICSEARCH_URL": f"http://{proxy.address}",
        }
        # Each worker its own probes port: they share this host.
        b_env = common | {"RAGSTREAM_WORKER_ID": "b", "RAGSTREAM_HTTP_PORT": str(free_port())}
        a = WorkerProcess(a_env, log_path=tmp_path / "a.log").start()
        b = WorkerProcess(b_env, log_path=tmp_path / "b.log").start()
        stop = asyncio.Event()
        try:
            await _ready(a, kafka)
            await _ready(b, kafka)
            async with IngestClient(kafka) as client:
                feed = asyncio.create_task(_feed(client, stop))
                await _poll(
                    lambda: (
                        _count(a.log_path, "document_indexed")
                        and _count(b.log_path, "document_indexed")
                    ),
                    what="both workers writing",
                )
                proxy.set(reset=True)  # ES is down for a only
                a_opens = lambda: [  # noqa: E731
                    e for e in _transitions(a.log_path) if e["new_state"] == "open"
                ]
                await _poll(lambda: len(a_opens()) >= 3, what="a re-opened twice")
                written_by_b = _count(b.log_path, "document_indexed")
                await _poll(
                    lambda: _count(b.log_path, "document_indexed") > written_by_b + 2,
                    what="b writing during a's outage",
                )
                stop.set()
                await feed
            b_events = _transitions(b.log_path)
            a.assert_alive()
            b.assert_alive()
        finally:
            stop.set()
            proxy.heal()
            await asyncio.gather(asyncio.to_thread(a.stop), asyncio.to_thread(b.stop))
    peer_opens = [e for e in b_events if e["new_state"] == "open"]
    assert [e["reason"] for e in peer_opens] == ["peer"], b_events  # followed a once, only
    opened = _at(peer_opens[0])
    closed = [e for e in b_events if e["new_state"] == "closed" and _at(e) > opened]
    assert closed, b_events
    open_for_s = (_at(closed[0]) - opened).total_seconds()
    # One reset timeout, plus the wait for b's next call (its held batch retries at once).
    assert open_for_s <= RESET_S + 2.0, (open_for_s, b_events)
    assert len(a_opens()) >= 3 and not any(e["reason"] == "peer" for e in a_opens())
