"""End to end on the real stack: a worker process, Tansu, noida-db, a Chroma server, SQLite.

One worker per module (it takes seconds to join); every test uses its own tenant so
tests never see each other's documents.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from ragstream.runtime import collection_name
from schemas.document import DocumentDelete, DocumentUpsert
from schemas.headers import Headers
from services.chunking import split_text
from services.embedding import build_embedder
from stores.catalog import SqlCatalog
from stores.chroma import ChromaVectorStore
from stores.elastic import ElasticKeywordStore, chunk_index
from streams.client import IngestClient, SearchClient
from streams.errors import RemoteError
from streams.settings import KafkaSettings, Settings
from tests.integration.harness import (
    WorkerProcess,
    isolated_env,
    new_id,
    produce,
    read_until,
    value_json,
)

CORPUS = {
    "garden/tomatoes.md": (
        "Growing tomatoes",
        "Tomato plants need deep watering twice a week, "
        "rich soil with compost, and six hours of sun. Stake the vines and pinch the suckers. "
        "Water at the base of the plant in the morning so the leaves stay dry.",
    ),
    "kitchen/sourdough.md": (
        "Sourdough bread",
        "A sourdough starter is flour and water fermented "
        "by wild yeast. Feed the starter daily, mix the dough with salt, let it rise overnight "
        "and bake it in a hot Dutch oven for a crisp crust.",
    ),
    "sky/telescopes.md": (
        "Stargazing",
        "A small telescope shows the rings of Saturn, the moons "
        "of Jupiter and the craters of the Moon. Observe planets and galaxies on dark nights "
        "far from city lights.",
    ),
    "ops/kafka.md": (
        "Kafka basics",
        "Kafka stores records in partitions of a topic. Consumer "
        "groups share partitions and commit offsets so a restarted consumer resumes where it "
        "stopped.",
    ),
}


@dataclass
class Stack:
    """What the tests need to talk to the worker and inspect the stores."""

    settings: Settings
    kafka: KafkaSettings
    worker: WorkerProcess
    keywords: ElasticKeywordStore
    vectors: ChromaVectorStore
    catalog: SqlCatalog


@pytest.fixture(scope="module")
def worker_env(
    kafka_bootstrap: str,
    elasticsearch_url: str,
    chroma_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """Environment of a worker isolated by topic prefix, index, collection and catalog."""
    yield isolated_env(
        kafka_bootstrap=kafka_bootstrap,
        elasticsearch_url=elasticsearch_url,
        data_dir=tmp_path_factory.mktemp("worker"),
        CHROMA_URL=chroma_url,
        INGEST_MAX_TEXT_CHARS="20000",
        INGEST_CHUNK_SIZE="200",
        INGEST_CHUNK_OVERLAP="40",
        # Small batches: a burst spans many, so the look-ahead (batch k + 1 read and embedded
        # while batch k is written) runs between versions of one id in consecutive batches.
        INGEST_BATCH_MAX="4",
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    worker_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch_module: pytest.MonkeyPatch,
) -> AsyncIterator[Stack]:
    """A running, ready worker and clients to the stores it writes."""
    for key, value in worker_env.items():
        monkeypatch_module.setenv(key, value)
    settings = Settings()
    log = tmp_path_factory.mktemp("logs") / "worker.log"
    worker = WorkerProcess(worker_env, log_path=log).start()
    embedder = build_embedder(settings)
    await embedder.start()
    keywords = ElasticKeywordStore(
        url=settings.elasticsearch.url, index=chunk_index(settings.elasticsearch.index_prefix)
    )
    vectors = ChromaVectorStore(
        collection=collection_name(settings.chroma.collection_prefix, embedder.name),
        url=settings.chroma.url,
    )
    catalog = SqlCatalog(url=settings.database_url)
    await embedder.aclose()
    try:
        await worker.wait_ready(settings.kafka, tenant="probe")
        yield Stack(settings, settings.kafka, worker, keywords, vectors, catalog)
    finally:
        worker.stop()
        for store in (keywords, vectors, catalog):
            await store.aclose()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    """A module-scoped monkeypatch."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp


async def _ingest_corpus(stack: Stack, tenant: str) -> dict[str, str]:
    async with IngestClient(stack.kafka) as client:
        results = {}
        for doc_id, (title, text) in CORPUS.items():
            doc = DocumentUpsert(
                id=doc_id,
                tenant=tenant,
                title=title,
                text=text,
                metadata={"section": doc_id.split("/")[0], "lang": "en"},
            )
            results[doc_id] = (await client.ingest(doc, timeout_s=120)).status
    return results


async def _counts(stack: Stack, tenant: str, doc_id: str) -> tuple[int, int]:
    await stack.vectors.start()
    await stack.keywords.start()
    return (await stack.vectors.count(tenant, doc_id), await stack.keywords.count(tenant, doc_id))


async def test_ingest_then_search_in_every_mode(stack: Stack) -> None:
    """A small corpus is indexed, and each mode ranks the expected document first."""
    tenant = f"acme-{new_id()}"
    assert set((await _ingest_corpus(stack, tenant)).values()) == {"indexed"}
    queries = [
        ("hybrid", "how often should I water tomato plants", "garden/tomatoes.md"),
        ("vector", "looking at planets through a lens at night", "sky/telescopes.md"),
        ("keyword", "sourdough starter", "kitchen/sourdough.md"),
        ("hybrid", "consumer groups commit offsets", "ops/kafka.md"),
    ]
    async with SearchClient(stack.kafka) as client:
        for mode, query, expected in queries:
            result = await client.search(query, tenant=tenant, mode=mode, top_k=3, timeout_s=30)
            assert result.status == "ok", result
            assert result.hits and result.hits[0].doc_id == expected, (mode, query, result.hits)
            if mode != "hybrid":
                assert all(h.sources == [mode] for h in result.hits)
        hits = (
            await client.search(
                "tomato", tenant=tenant, filters={"metadata.section": "kitchen"}, timeout_s=30
            )
        ).hits
        assert hits and {h.doc_id for h in hits} == {"kitchen/sourdough.md"}
        other = await client.search("tomato", tenant=f"other-{new_id()}", timeout_s=30)
        assert other.hits == []


async def test_update_shrinks_replay_is_unchanged_and_delete_removes_everywhere(
    stack: Stack,
) -> None:
    """Chunks follow the latest version, replays add nothing, delete empties all stores."""
    tenant = f"upd-{new_id()}"
    long_text = " ".join(
        f"Paragraph {i} talks about topic number {i} in some detail." for i in range(40)
    )
    async with IngestClient(stack.kafka) as client:
        first = await client.ingest(
            DocumentUpsert(id="doc", tenant=tenant, text=long_text), timeout_s=120
        )
        assert first.status == "indexed" and first.chunks > 3
        assert await _counts(stack, tenant, "doc") == (first.chunks, first.chunks)
        again = await client.ingest(
            DocumentUpsert(id="doc", tenant=tenant, text=long_text), timeout_s=60
        )
        assert (again.status, again.chunks) == ("unchanged", first.chunks)
        assert await _counts(stack, tenant, "doc") == (first.chunks, first.chunks)
        short = await client.ingest(
            DocumentUpsert(id="doc", tenant=tenant, text="Now it is short."), timeout_s=60
        )
        assert (short.status, short.chunks) == ("indexed", 1)
        assert await _counts(stack, tenant, "doc") == (1, 1)
        record = await stack.catalog.get(tenant, "doc")
        assert record is not None and record.chunk_count == 1 and record.status == "indexed"
        gone = await client.ingest(
            DocumentDelete(op="delete", id="doc", tenant=tenant), timeout_s=60
        )
        assert gone.status == "deleted"
    assert await _counts(stack, tenant, "doc") == (0, 0)
    assert await stack.catalog.get(tenant, "doc") is None


async def test_replayed_messages_create_no_duplicates(stack: Stack) -> None:
    """The same upsert produced three times (as a redelivery would) leaves one set of chunks."""
    tenant = f"rep-{new_id()}"
    doc = DocumentUpsert(id="same", tenant=tenant, text="Replays must overwrite. " * 30)
    async with IngestClient(stack.kafka) as client:
        statuses = [(await client.ingest(doc, timeout_s=120)).status for _ in range(3)]
    assert statuses == ["indexed", "unchanged", "unchanged"]
    # A replay after a crash between the stores and the catalog: the catalog forgets, stores keep.
    await stack.catalog.delete(tenant, "same")
    async with IngestClient(stack.kafka) as client:
        redo = await client.ingest(doc, timeout_s=120)
    assert redo.status == "indexed"
    assert await _counts(stack, tenant, "same") == (redo.chunks, redo.chunks)


async def test_a_burst_of_documents_is_indexed_in_batches(stack: Stack) -> None:
    """Forty documents sent at once, some in several versions, all get exact results.

    With batches of 4, the versions below sit in consecutive batches, so the look-ahead of a
    batch reads the catalog before the batch before it is written: doc-01's third version
    (the first one's text again) looks unchanged then, and must still be re-indexed.
    """
    tenant = f"burst-{new_id()}"

    def text(n: int) -> str:
        return " ".join(f"Burst document {n} says thing {i}." for i in range(1 + 7 * (n % 6)))

    docs = [DocumentUpsert(id=f"doc-{n:02d}", tenant=tenant, text=text(n)) for n in range(40)]
    for at, doc_id, version in (
        (4, "doc-00", "The second version of doc-00 is short."),
        (5, "doc-01", "The second version of doc-01 is short."),
        (10, "doc-01", text(1)),
    ):
        docs.insert(at, DocumentUpsert(id=doc_id, tenant=tenant, text=version))
    docs.append(DocumentUpsert(id="doc-05", tenant=tenant, text="The second version is short."))
    async with IngestClient(stack.kafka) as client:
        futures = [await client.submit(doc) for doc in docs]
        async with asyncio.timeout(180):
            results = await asyncio.gather(*futures)
    ingest = stack.settings.ingest
    expected = {}
    for doc, result in zip(docs, results, strict=True):
        chunks = len(split_text(doc.text, size=ingest.chunk_size, overlap=ingest.chunk_overlap))
        assert (result.id, result.status, result.chunks) == (doc.id, "indexed", chunks)
        expected[doc.id] = chunks  # the last version of an id is what stays
    assert expected["doc-05"] == expected["doc-00"] == 1
    assert expected["doc-01"] == len(
        split_text(text(1), size=ingest.chunk_size, overlap=ingest.chunk_overlap)
    )
    for doc_id, chunks in expected.items():
        assert await _counts(stack, tenant, doc_id) == (chunks, chunks), doc_id
    records = await stack.catalog.get_many([(tenant, doc_id) for doc_id in expected])
    assert {key[1]: r.chunk_count for key, r in records.items()} == expected


BAD_INPUTS = [
    pytest.param(b"{not json", "malformed_json", id="malformed-json"),
    pytest.param(
        json.dumps(
            {
                "schema": "ragstream.document.v7",
                "op": "upsert",
                "id": "x",
                "tenant": "t",
                "text": "hi",
            }
        ).encode(),
        "unknown_schema",
        id="unknown-schema",
    ),
    pytest.param(
        json.dumps(
            {"schema": "ragstream.document.v1", "op": "upsert", "id": "x", "tenant": "t"}
        ).encode(),
        "invalid_schema",
        id="missing-text",
    ),
    pytest.param(
        json.dumps(
            {
                "schema": "ragstream.document.v1",
                "op": "upsert",
                "id": "x",
                "tenant": "t",
                "text": "   ",
            }
        ).encode(),
        "invalid_schema",
        id="empty-text",
    ),
    pytest.param(
        json.dumps(
            {
                "schema": "ragstream.document.v1",
                "op": "upsert",
                "id": "x",
                "tenant": "t",
                "text": "y" * 20001,
            }
        ).encode(),
        "too_large",
        id="oversized-text",
    ),
    pytest.param(
        json.dumps(
            {"schema": "ragstream.document.v1", "op": "merge", "id": "x", "tenant": "t"}
        ).encode(),
        "invalid_schema",
        id="unknown-op",
    ),
]


@pytest.mark.parametrize(("value", "code"), BAD_INPUTS)
async def test_bad_input_is_dead_lettered_and_the_next_message_goes_through(
    stack: Stack, value: bytes, code: str
) -> None:
    """Bad input yields a dead letter (bytes intact, reason in headers) and a rejected result."""
    cid = uuid.uuid4().hex
    topics = stack.settings.kafka
    await produce(
        topics.bootstrap_servers,
        topics.topic("documents"),
        key=b"x",
        value=value,
        headers=[
            (Headers.CORRELATION_ID, cid.encode()),
            ("authorization", b"Bearer secret"),
            ("trace", b"keep-me"),
        ],
    )
    dead = await read_until(
        topics.bootstrap_servers,
        topics.topic("dead-letters"),
        lambda rs: any(dict(r.headers).get(Headers.CORRELATION_ID) == cid.encode() for r in rs),
    )
    record = next(r for r in dead if dict(r.headers).get(Headers.CORRELATION_ID) == cid.encode())
    headers = dict(record.headers)
    assert record.value == value and record.key == b"x"
    assert headers[Headers.ERROR_CODE] == code.encode()
    assert headers[Headers.ORIGINAL_TOPIC] == topics.topic("documents").encode()
    assert {
        Headers.ERROR_MESSAGE,
        Headers.ORIGINAL_PARTITION,
        Headers.ORIGINAL_OFFSET,
        Headers.EXCEPTION_TYPE,
    } <= set(headers)
    assert headers["trace"] == b"keep-me" and "authorization" not in headers
    results = await read_until(
        topics.bootstrap_servers,
        topics.topic("ingest-results"),
        lambda rs: any(value_json(r).get("correlation_id") == cid for r in rs),
    )
    result = next(value_json(r) for r in results if value_json(r).get("correlation_id") == cid)
    assert result["status"] == "rejected" and result["error"]["code"] == code
    tenant = f"after-{new_id()}"
    async with IngestClient(stack.kafka) as client:
        ok = await client.ingest(
            DocumentUpsert(id="good", tenant=tenant, text="still alive"), timeout_s=60
        )
    assert ok.status == "indexed"
    stack.worker.assert_alive()


async def test_bad_search_requests_get_error_replies(stack: Stack) -> None:
    """A request the worker cannot answer gets an ``error`` reply naming the problem."""
    async with SearchClient(stack.kafka) as client:
        with pytest.raises(RemoteError) as info:
            await client.search("x", tenant="t", filters={"tenant": "someone-else"}, timeout_s=30)
        assert info.value.code == "invalid_schema" and "tenant" in str(info.value)


async def test_raw_kafka_client_can_search_from_the_contract_alone(stack: Stack) -> None:
    """A plain aiokafka producer/consumer, JSON and headers only, gets a ranked reply."""
    tenant = f"raw-{new_id()}"
    await _ingest_corpus(stack, tenant)
    bootstrap = stack.kafka.bootstrap_servers
    reply_topic = f"{stack.kafka.topic_prefix}.raw-replies.{new_id()}"
    request = {
        "schema": "ragstream.search-request.v1",
        "query": "bake bread with a starter",
        "top_k": 2,
        "mode": "hybrid",
        "filters": {},
        "tenant": tenant,
    }
    await produce(
        bootstrap,
        stack.kafka.topic("search-requests"),
        value=json.dumps(request).encode(),
        headers=[("reply-to", reply_topic.encode()), ("correlation-id", b"raw-1")],
    )
    [reply] = await read_until(bootstrap, reply_topic, lambda rs: len(rs) >= 1)
    body = json.loads(reply.value)
    assert dict(reply.headers)["correlation-id"] == b"raw-1" and body["correlation_id"] == "raw-1"
    assert body["schema"] == "ragstream.search-result.v1" and body["status"] == "ok"
    assert body["hits"][0]["doc_id"] == "kitchen/sourdough.md" and len(body["hits"]) == 2
    assert set(body["hits"][0]) >= {
        "chunk_id",
        "doc_id",
        "title",
        "text",
        "score",
        "metadata",
        "sources",
    }
    answered = [
        json.loads(line)
        for line in stack.worker.log_path.read_text().splitlines()
        if '"search_answered"' in line and '"raw-1"' in line
    ]
    assert answered, "the worker's log line for the request carries its correlation id"
    assert {"topic", "partition", "offset"} <= set(answered[0])
    assert answered[0]["correlation_id"] == "raw-1"


async def test_spring_kafka_headers_are_understood_and_echoed(stack: Stack) -> None:
    """``kafka_replyTopic``/``kafka_correlationId`` work, and the binary id comes back unchanged."""
    bootstrap = stack.kafka.bootstrap_servers
    reply_topic = f"{stack.kafka.topic_prefix}.spring-replies.{new_id()}"
    correlation = uuid.uuid4().bytes
    request = {"schema": "ragstream.search-request.v1", "query": "anything", "tenant": "nobody"}
    await produce(
        bootstrap,
        stack.kafka.topic("search-requests"),
        value=json.dumps(request).encode(),
        headers=[("kafka_replyTopic", reply_topic.encode()), ("kafka_correlationId", correlation)],
    )
    [reply] = await read_until(bootstrap, reply_topic, lambda rs: len(rs) >= 1)
    assert dict(reply.headers)["kafka_correlationId"] == correlation
    assert json.loads(reply.value)["status"] == "ok"


async def test_many_searches_in_flight_share_one_client(stack: Stack) -> None:
    """Concurrent requests on one client each get their own reply."""
    import asyncio

    tenant = f"conc-{new_id()}"
    await _ingest_corpus(stack, tenant)
    queries = ["tomato", "sourdough", "telescope", "kafka"] * 3
    async with SearchClient(stack.kafka) as client:
        results = await asyncio.gather(
            *(client.search(q, tenant=tenant, mode="keyword", timeout_s=30) for q in queries)
        )
    for query, result in zip(queries, results, strict=True):
        assert query in result.hits[0].text.lower()


def _librdkafka_search(
    bootstrap: str, topic: str, reply_topic: str, request: dict[str, object]
) -> tuple[dict, dict]:
    """Search with librdkafka (confluent-kafka), the client most non-Python stacks wrap."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # keep a reference until the result
    admin.create_topics([NewTopic(reply_topic, 1, 1)])[reply_topic].result(10)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{new_id()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(reply_topic, 0, 0)])
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        topic,
        json.dumps(request).encode(),
        headers=[("reply-to", reply_topic.encode()), ("correlation-id", b"rdk-1")],
    )
    producer.flush(10)
    try:
        for _ in range(600):
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                return dict(message.headers() or []), json.loads(message.value())
        raise TimeoutError("no reply within 60 s")
    finally:
        consumer.close()


async def test_librdkafka_client_can_search(stack: Stack) -> None:
    """confluent-kafka (librdkafka 2.x), using only the documented JSON and headers, gets hits."""
    import asyncio

    tenant = f"rdk-{new_id()}"
    await _ingest_corpus(stack, tenant)
    request = {
        "schema": "ragstream.search-request.v1",
        "query": "telescope",
        "tenant": tenant,
        "top_k": 1,
        "mode": "keyword",
    }
    headers, body = await asyncio.to_thread(
        _librdkafka_search,
        stack.kafka.bootstrap_servers,
        stack.kafka.topic("search-requests"),
        f"{stack.kafka.topic_prefix}.rdk-replies.{new_id()}",
        request,
    )
    assert headers["correlation-id"] == b"rdk-1" and body["status"] == "ok"
    assert [h["doc_id"] for h in body["hits"]] == ["sky/telescopes.md"]
