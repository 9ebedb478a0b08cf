"""A search request in flight on a worker that is SIGKILLed is answered by the next worker.

The search agent answers up to ``SEARCH_CONCURRENCY`` requests at once and acks each as it
finishes, so acks come out of order. Here a keyword search hangs on a blackholed
Elasticsearch while the vector searches sent after it (on the same partition) are answered
and acked; the worker is SIGKILLed, Elasticsearch comes back, and a second worker of the
group must answer the hung request. Faust alone commits past it (faust-streaming/faust#606),
so the second worker started after it and nobody ever answered (the chaos soak's unanswered
search).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, TopicPartition

from ragstream.devstack import free_port
from streams.client import SearchClient
from streams.connection import aiokafka_kwargs
from streams.settings import KafkaSettings
from streams.topics import ensure_topics
from tests.faultproxy import FaultProxy
from tests.integration.harness import WorkerProcess, isolated_env

COMMIT_WAIT_S = 5.0  # Faust commits acked offsets every second (broker_commit_interval)


async def _committed_and_end(kafka: KafkaSettings, group: str, topic: str) -> tuple[int, int]:
    """The group's committed offset on partition 0 of ``topic`` (-1: none) and its end."""
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(kafka), group_id=group)
    await consumer.start()  # not subscribed: it never joins the group
    try:
        tp = TopicPartition(topic, 0)
        committed = await consumer.committed(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        return (-1 if committed is None else committed), end
    finally:
        await consumer.stop()


async def test_a_request_in_flight_on_a_killed_worker_is_answered_by_the_next(
    kafka_bootstrap: str, elasticsearch_url: str, openai_base_url: str, tmp_path: Path
) -> None:
    """Keyword search hung on ES, three vector searches after it answered, SIGKILL: the
    group's committed offset stays at the hung request, and the next worker answers it."""
    es = urlsplit(elasticsearch_url)
    assert es.hostname and es.port
    async with FaultProxy(es.hostname, es.port) as proxy:
        env = isolated_env(
            kafka_bootstrap=kafka_bootstrap,
            elasticsearch_url=f"http://{proxy.address}",
            data_dir=tmp_path,
            KAFKA_PARTITIONS="1",  # every request on one partition, in the order sent
            EMBEDDING_PROVIDER="openai",
            OPENAI_BASE_URL=openai_base_url,
            OPENAI_EMBEDDING_MODEL="e5-small",
            # The hung search stays in flight until the SIGKILL, not until a timeout.
            ELASTICSEARCH_TIMEOUT_S="120",
            BREAKER_ELASTICSEARCH_CALL_TIMEOUT_S="120",
        )
        kafka = KafkaSettings.model_validate(
            {
                "bootstrap_servers": kafka_bootstrap,
                "RAGSTREAM_TOPIC_PREFIX": env["RAGSTREAM_TOPIC_PREFIX"],
            }
        )
        # Created here with one partition: the probe client could otherwise have them
        # auto-created with the broker's default before the worker creates them.
        requests = (await ensure_topics(kafka.model_copy(update={"partitions": 1}))).search_requests
        group = env["KAFKA_CONSUMER_GROUP"]
        first = WorkerProcess(env, log_path=tmp_path / "first.log").start()
        second_env = env | {"RAGSTREAM_HTTP_PORT": str(free_port())}
        second = WorkerProcess(second_env, log_path=tmp_path / "second.log")
        try:
            await first.wait_ready(kafka, timeout_s=240)
            async with SearchClient(kafka) as client:
                proxy.set(blackhole=True)
                hung = asyncio.create_task(
                    client.search("hung", tenant="t", mode="keyword", timeout_s=300)
                )
                for _ in range(3):
                    result = await client.search("after", tenant="t", mode="vector", timeout_s=60)
                    assert result.status == "ok"
                assert not hung.done()
                # Let the worker commit what it acked (Faust alone: everything up to the end).
                deadline = time.monotonic() + COMMIT_WAIT_S
                while time.monotonic() < deadline:
                    committed, end = await _committed_and_end(kafka, group, requests)
                    if committed == end:
                        break
                    await asyncio.sleep(0.5)  # poll interval, bounded by the deadline
                committed, end = await _committed_and_end(kafka, group, requests)
                assert committed < end, f"committed {committed}: past the request in flight"
                first.stop(sig=signal.SIGKILL)
                proxy.heal()
                second.start()
                result = await hung
                assert result.status == "ok"
            first_answers = first.count_log("search_answered")
            assert second.count_log("search_answered") >= 1, first_answers
        finally:
            proxy.heal()
            await asyncio.gather(asyncio.to_thread(first.stop), asyncio.to_thread(second.stop))
