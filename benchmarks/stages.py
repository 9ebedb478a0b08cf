"""Where one document's time goes in the worker: each step of indexing one document and the two
result sends, timed alone in-process against the same stores and broker (WordLlama embedder).

The worker handles one document at a time (ingest agent concurrency 1), so these latencies add
up to its per-document time; the bulk rows show what batching across documents would buy.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from ragstream.runtime import Runtime
from schemas.chunks import DocumentRecord
from streams.connection import aiokafka_kwargs

from benchmarks.common import Results
from benchmarks.corpus import documents
from benchmarks.stack import settings_from
from benchmarks.stats import render_table

__all__ = ["stage_breakdown"]


async def _time(fn: Callable[[], Awaitable[Any]]) -> float:
    t = time.perf_counter()
    await fn()
    return (time.perf_counter() - t) * 1000


async def stage_breakdown(env: dict[str, str], results: Results, n: int) -> str:
    """Median ms per step over ``n`` documents; returns a markdown table."""
    import ragstream.runtime
    import services.embedding

    from benchmarks.worker import _install_wordllama

    saved = (services.embedding.build_embedder, getattr(ragstream.runtime, "build_embedder", None))
    _install_wordllama()
    settings = settings_from(env)
    rt = Runtime(settings)
    try:
        await rt.start()
    finally:
        services.embedding.build_embedder = saved[0]
        if saved[1] is not None:
            ragstream.runtime.build_embedder = saved[1]
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings.kafka), acks="all", linger_ms=0)
    await producer.start()
    assert rt.vectors is not None
    indexer, vectors = rt.indexer, rt.vectors
    times: dict[str, list[float]] = {}

    def add(k: str, v: float) -> None:
        times.setdefault(k, []).append(v)

    docs = documents("bench-stages", n, seed=555)
    try:
        for doc in docs:
            chunks = indexer.chunk(doc)
            texts = [c.text for c in chunks]
            emb: list[list[float]] = []

            async def embed() -> None:
                emb.extend(await rt.embedder.embed(texts))

            add("catalog.get (SQLite)", await _time(lambda: rt.catalog.get(doc.tenant, doc.id)))
            add("embed (WordLlama, ~3 chunks)", await _time(embed))
            add("chroma upsert (~3 chunks)", await _time(lambda: vectors.upsert(chunks, emb)))
            add("elasticsearch bulk (~3 chunks)", await _time(lambda: rt.keywords.upsert(chunks)))
            add(
                "both stores concurrently",
                await _time(
                    lambda: asyncio.gather(vectors.upsert(chunks, emb), rt.keywords.upsert(chunks))
                ),
            )
            record = DocumentRecord(
                tenant=doc.tenant,
                doc_id=doc.id,
                content_hash="x",
                chunk_count=len(chunks),
                status="indexed",
                title=doc.title,
            )
            add("catalog.upsert (SQLite commit)", await _time(lambda: rt.catalog.upsert(record)))
            add(
                "kafka send_and_wait x2 (result + reply)",
                await _time(lambda: _two_sends(producer, settings)),
            )
        # What batching across ~10 documents would cost, per document.
        for size in (10, 30):
            for i in range(0, min(n, 2 * size), size):
                batch = docs[i : i + size]
                chunks = [c for d in batch for c in indexer.chunk(d)]
                emb = await rt.embedder.embed([c.text for c in chunks])
                add(
                    f"chroma upsert, {size} docs in one call, per doc",
                    await _time(lambda: vectors.upsert(chunks, emb)) / len(batch),
                )
                add(
                    f"elasticsearch bulk, {size} docs in one call, per doc",
                    await _time(lambda: rt.keywords.upsert(chunks)) / len(batch),
                )
                add(
                    f"kafka {2 * size} sends then one wait, per doc",
                    await _time(lambda: _many_sends(producer, settings, 2 * size)) / len(batch),
                )
        full = []
        for doc in documents("bench-stages-full", n, seed=556):
            full.append(await _time(lambda: indexer.handle(doc)))
        add("Indexer.upsert end to end (no Kafka)", statistics.median(full))
    finally:
        await producer.stop()
        await rt.aclose()
    rows = [[k, f"{statistics.median(v):.1f}"] for k, v in times.items()]
    for k, v in times.items():
        results.figure(f"stage.{k}", "ms").add(statistics.median(v))
    return render_table(["step (median over documents)", "ms"], rows)


async def _two_sends(producer: AIOKafkaProducer, settings: Any) -> None:
    topic = f"{settings.kafka.topic_prefix}.ingest-results"
    await producer.send_and_wait(topic, b"{}", key=b"k")
    await producer.send_and_wait(topic, b"{}", key=b"k")


async def _many_sends(producer: AIOKafkaProducer, settings: Any, k: int) -> None:
    topic = f"{settings.kafka.topic_prefix}.ingest-results"
    futures = [await producer.send(topic, b"{}", key=b"k%d" % i) for i in range(k)]
    await asyncio.gather(*futures)
