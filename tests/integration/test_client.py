"""The request-reply client on a real broker, without a worker: readiness, timeouts, cleanup."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.client import ReplyChannel, SearchClient
from streams.errors import DependencyError, RequestTimeoutError
from streams.settings import KafkaSettings
from streams.topics import ensure_topics
from tests.integration.harness import produce


def _kafka(bootstrap: str, prefix: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)


async def test_search_without_a_worker_times_out_clearly(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """No worker consuming: the request fails after its timeout with a message that says why."""
    kafka = _kafka(kafka_bootstrap, topic_prefix)
    await ensure_topics(kafka)
    async with SearchClient(kafka) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError, match="is a worker running"):
            await client.search("anything", tenant="t", timeout_s=0.5)
        assert time.monotonic() - started < 5


async def test_reply_channel_matches_concurrent_replies_by_correlation_id(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Replies that arrive out of order reach the request they answer; strays are ignored."""
    kafka = _kafka(kafka_bootstrap, topic_prefix)
    channel = ReplyChannel(kafka)
    await channel.start()
    try:
        futures = {cid: channel.expect(cid) for cid in ("a", "b", "c")}
        for cid in ("c", "stray", "a", "b"):
            await produce(
                kafka_bootstrap,
                channel.reply_topic,
                value=cid.encode(),
                headers=[("correlation-id", cid.encode())],
            )
        async with asyncio.timeout(30):
            values = {cid: (await f).value for cid, f in futures.items()}
        assert values == {"a": b"a", "b": b"b", "c": b"c"}
    finally:
        await channel.aclose()


async def test_reply_topic_is_private_and_deleted_on_close(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Each client gets its own reply topic, which exists while it runs and is gone after."""
    kafka = _kafka(kafka_bootstrap, topic_prefix)
    await ensure_topics(kafka)
    async with SearchClient(kafka) as one, SearchClient(kafka) as two:
        topics = {one._channel.reply_topic, two._channel.reply_topic}
        assert len(topics) == 2
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert not topics & set(await admin.list_topics())
    finally:
        await admin.close()


async def test_unreachable_broker_is_a_dependency_error(topic_prefix: str) -> None:
    """A client pointed at a closed port fails with DependencyError, not a raw Kafka exception."""
    from ragstream.devstack import free_port

    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", topic_prefix=topic_prefix)
    with pytest.raises(DependencyError):
        async with SearchClient(kafka):
            pass


async def test_search_before_start_is_refused(kafka_bootstrap: str, topic_prefix: str) -> None:
    """Sending before the reply consumer is ready is a programming error, said plainly."""
    client = SearchClient(_kafka(kafka_bootstrap, topic_prefix))
    with pytest.raises(RuntimeError, match="not started"):
        await client.search("x", tenant="t", timeout_s=1)


async def test_abandoned_ingest_waits_are_forgotten(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A timed-out ``ingest`` leaves no pending correlation id behind (no leak per request)."""
    from schemas.document import DocumentUpsert
    from streams.client import IngestClient

    async with IngestClient(_kafka(kafka_bootstrap, topic_prefix)) as client:
        for i in range(3):
            doc = DocumentUpsert(id=f"d{i}", tenant="t", text="no worker will answer")
            with pytest.raises(RequestTimeoutError):
                await client.ingest(doc, timeout_s=0.2)
        assert client._channel._pending == {}
