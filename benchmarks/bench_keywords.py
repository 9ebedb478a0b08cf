"""The keyword stores on CISI, without Kafka: retrieval quality, and latency against the ES API.

    python benchmarks/bench_keywords.py [quality|commits|latency|all] [--data DIR] [--es]

``quality`` indexes the collection (BEIR layout: ``corpus.jsonl``, ``queries.jsonl``,
``qrels/test.tsv``) into the embedded tantivy store, chunked as the ingest agent chunks it
(default settings), runs every judged query in keyword mode (a document scores as its best
chunk) and prints nDCG@10, Recall@100 and MRR@10 next to the plain BM25 reference of the
collection's SOURCE.md (0.3325 / 0.4010 on CISI).

``commits`` times 100 chunk writes made one call at a time, all at once (grouped into shared
commits) and as one call: each call returns only after its commit (fsync) is done.

``latency`` indexes the same chunks into the tantivy store and into an Elasticsearch-API
server (noida-db, started here on a free port, as ``ragstream dev --keyword-store
elasticsearch`` runs it), then times each store's ``search`` call (top_k 10 and 100) over the
queries, one at a time, and prints p50/p99 and the ratio noida-db / tantivy. Both are measured
in this run, on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragstream.devstack import free_port, start_elasticsearch
from schemas.chunks import Chunk
from services.chunking import split_text
from stores.base import KeywordStore
from stores.elastic import ElasticKeywordStore
from stores.tantivy_keywords import TantivyKeywordStore
from streams.settings import IngestSettings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ir" / "cisi"
REFERENCE = {"nDCG@10": 0.3325, "Recall@100": 0.4010}
"""The plain BM25 reference of CISI's SOURCE.md (no stemming, no stop words)."""
TENANT = "bench"
BATCH = 200


def load(root: Path) -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, set[str]]]:
    """Corpus, queries with judgements, and the relevant doc ids per query."""
    corpus = [json.loads(line) for line in (root / "corpus.jsonl").open(encoding="utf-8")]
    qrels: dict[str, set[str]] = defaultdict(set)
    with (root / "qrels" / "test.tsv").open(encoding="utf-8") as f:
        next(f)
        for line in f:
            query, doc, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels[query].add(doc)
    queries = [json.loads(line) for line in (root / "queries.jsonl").open(encoding="utf-8")]
    return corpus, [q for q in queries if q["_id"] in qrels], qrels


def chunks_of(corpus: list[dict[str, str]]) -> list[Chunk]:
    """Every document cut as the ingest agent cuts it (default chunk size and overlap)."""
    settings = IngestSettings()
    out = []
    for doc in corpus:
        spans = split_text(doc["text"], size=settings.chunk_size, overlap=settings.chunk_overlap)
        out += [
            Chunk(TENANT, doc["_id"], n, span.text, title=doc.get("title", ""), start=span.start)
            for n, span in enumerate(spans)
        ]
    return out


async def index(store: KeywordStore, chunks: list[Chunk]) -> float:
    """Write the chunks in batches (as the ingest agent does); seconds taken."""
    started = time.perf_counter()
    for i in range(0, len(chunks), BATCH):
        await store.upsert(chunks[i : i + BATCH])
    return time.perf_counter() - started


async def ranking(store: KeywordStore, query: str, depth: int = 100) -> list[str]:
    """Doc ids best first, each document ranked by its best chunk."""
    hits = await store.search(TENANT, query, top_k=depth * 2)
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(hit.chunk.doc_id, None)
    return list(seen)[:depth]


def metrics(ranked: list[str], relevant: set[str]) -> tuple[float, float, float]:
    """nDCG@10 (binary gains, log2 discount), Recall@100, MRR@10 of one query."""
    dcg = sum(1 / math.log2(r + 2) for r, d in enumerate(ranked[:10]) if d in relevant)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(10, len(relevant))))
    recall = len(relevant & set(ranked[:100])) / len(relevant)
    mrr = next((1 / (r + 1) for r, d in enumerate(ranked[:10]) if d in relevant), 0.0)
    return dcg / idcg, recall, mrr


async def _evaluate(
    store: KeywordStore, chunks: list[Chunk], queries: list[dict[str, str]], qrels: Any
) -> dict[str, float]:
    await store.start()
    await index(store, chunks)
    if isinstance(store, ElasticKeywordStore):
        await store._client.indices.refresh(index=store.index)
    rows = [metrics(await ranking(store, q["text"]), qrels[q["_id"]]) for q in queries]
    return {
        "nDCG@10": statistics.fmean(r[0] for r in rows),
        "Recall@100": statistics.fmean(r[1] for r in rows),
        "MRR@10": statistics.fmean(r[2] for r in rows),
    }


async def quality(root: Path, title_boost: float | None, with_es: bool) -> dict[str, float]:
    """nDCG@10, Recall@100, MRR@10 of keyword search on the embedded store (and noida-db)."""
    corpus, queries, qrels = load(root)
    chunks = chunks_of(corpus)
    columns: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        kwargs = {} if title_boost is None else {"title_boost": title_boost}
        store = TantivyKeywordStore(path=Path(tmp) / "keywords", **kwargs)
        try:
            columns["tantivy"] = await _evaluate(store, chunks, queries, qrels)
        finally:
            await store.aclose()
        if with_es:
            es = start_elasticsearch(port=free_port(), data_dir=Path(tmp) / "es")
            elastic = ElasticKeywordStore(url=es.url, index="bench-quality", timeout_s=120)
            try:
                columns["noida-db"] = await _evaluate(elastic, chunks, queries, qrels)
            finally:
                await elastic.aclose()
                es.stop()
    print(f"{len(corpus)} documents, {len(chunks)} chunks, {len(queries)} judged queries")
    names = list(columns)
    print(f"{'metric':<11} " + " ".join(f"{n:>9}" for n in names) + "  reference  ratio")
    for metric in columns["tantivy"]:
        ref = REFERENCE.get(metric)
        values = " ".join(f"{columns[n][metric]:9.4f}" for n in names)
        tail = (
            f"{ref:10.4f} {columns['tantivy'][metric] / ref:6.3f}" if ref else "         -      -"
        )
        print(f"{metric:<11} {values} {tail}")
    return columns["tantivy"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _timed(store: KeywordStore, queries: list[str], top_k: int) -> list[float]:
    out = []
    for text in queries:
        started = time.perf_counter()
        await store.search(TENANT, text, top_k=top_k)
        out.append((time.perf_counter() - started) * 1000)
    return out


async def latency(root: Path, repeats: int, limit: int | None) -> dict[str, float]:
    """p50/p99 of ``search`` on tantivy and on noida-db over the same chunks and queries."""
    corpus, queries, _ = load(root)
    chunks = chunks_of(corpus)
    texts = [q["text"] for q in queries[:limit]] * repeats
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        es = start_elasticsearch(port=free_port(), data_dir=Path(tmp) / "es")
        tantivy_store = TantivyKeywordStore(path=Path(tmp) / "keywords")
        elastic = ElasticKeywordStore(
            url=es.url, index=f"bench-{uuid.uuid4().hex[:8]}", timeout_s=120
        )
        try:
            stores: dict[str, KeywordStore] = {"tantivy": tantivy_store, "noida-db": elastic}
            for name, store in stores.items():
                await store.start()
                seconds = await index(store, chunks)
                print(f"{name}: {len(chunks)} chunks indexed in {seconds:.2f} s")
            await elastic._client.indices.refresh(index=elastic.index)
            for top_k in (10, 100):
                row = {}
                for name, store in stores.items():
                    await _timed(store, texts[:5], top_k)  # warm up
                    lat = await _timed(store, texts, top_k)
                    row[name] = (_pct(lat, 0.5), _pct(lat, 0.99))
                    results[f"{name} top{top_k} p50"], results[f"{name} top{top_k} p99"] = row[name]
                    print(f"top_k {top_k:>3} {name:<9} p50 {row[name][0]:8.2f} ms   "
                          f"p99 {row[name][1]:8.2f} ms   (n={len(lat)})")  # fmt: skip
                ratio50 = row["noida-db"][0] / row["tantivy"][0]
                ratio99 = row["noida-db"][1] / row["tantivy"][1]
                print(
                    f"top_k {top_k:>3} noida-db / tantivy: p50 x{ratio50:.0f}, p99 x{ratio99:.0f}"
                )
        finally:
            await tantivy_store.aclose()
            await elastic.aclose()
            es.stop()
    return results


async def commits(root: Path, n: int) -> dict[str, float]:
    """What durability costs: ``n`` chunks as n sequential calls, n concurrent calls, one call."""
    corpus, _, _ = load(root)
    chunks = chunks_of(corpus)[:n]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("sequential", "concurrent", "one call"):
            store = TantivyKeywordStore(path=Path(tmp) / name)
            await store.start()
            started = time.perf_counter()
            if name == "sequential":
                for chunk in chunks:
                    await store.upsert([chunk])
            elif name == "concurrent":
                await asyncio.gather(*(store.upsert([chunk]) for chunk in chunks))
            else:
                await store.upsert(chunks)
            ms = (time.perf_counter() - started) * 1000
            results[name] = ms
            print(f"{n} chunks, {name:<10}: {ms:8.1f} ms, {store.commits:>3} commits, "
                  f"{ms / max(store.commits, 1):6.1f} ms per commit")  # fmt: skip
            await store.aclose()
    return results


def main() -> None:
    """Parse the arguments and run."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "what", nargs="?", choices=("quality", "latency", "commits", "all"), default="all"
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR-layout directory")
    p.add_argument("--repeats", type=int, default=3, help="passes over the queries (latency)")
    p.add_argument("--title-boost", type=float, default=None, help="override (tuning only)")
    p.add_argument("--es", action="store_true", help="quality: also on noida-db (ES mapping)")
    p.add_argument("--queries", type=int, default=None, help="latency: first N queries only")
    args = p.parse_args()
    if args.what in ("quality", "all"):
        asyncio.run(quality(args.data, args.title_boost, args.es))
    if args.what in ("commits", "all"):
        asyncio.run(commits(args.data, 100))
    if args.what in ("latency", "all"):
        asyncio.run(latency(args.data, args.repeats, args.queries))


if __name__ == "__main__":
    main()
