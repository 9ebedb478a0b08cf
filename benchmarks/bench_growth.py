"""Benchmarks 6-8 (issue 12): a burst of concurrent searches, search p50 at 10k chunks, cost growth.

With the static-embedding model (``BENCH_EMBEDDER=wordllama``) one worker grows one tenant's
index from 10k to the largest size (``--sizes``), on the embedded engines (embedded Chroma +
the embedded keyword store) and on the Chroma server + ES-API server pair (``--engines``). At
each size it measures:

- the ingest rate of the last ``PROBE_DOCS`` documents that reach the size (the index already
  holds everything before them), after an untimed bulk load of the rest;
- sequential search p50/p99 per mode over the topics (round trip) and inside the worker without
  the query's embedding (``max(timings_ms.vector, timings_ms.keyword) + timings_ms.fuse``);
- worker RSS (and the servers' RSS for the pair).

At 10k chunks on the embedded engines it also runs the burst (500 concurrent searches, modes
mixed, top_k 100, 10 s client timeout, one client) and the p50 goal against the echo baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

import psutil
from schemas.document import DocumentUpsert
from streams.client import ReplyChannel, SearchClient
from streams.errors import RagstreamError, RequestTimeoutError
from streams.settings import Settings

from benchmarks.bench_search import _start_echo
from benchmarks.common import Options, Results, ingest_all
from benchmarks.corpus import QUERIES, documents
from benchmarks.stack import Stack, settings_from
from benchmarks.stats import Goal, percentile

__all__ = ["run"]

TENANT = "bench-growth"
CHUNKS_PER_DOC = 3  # benchmarks.corpus documents are 2,000 characters: 3 chunks of 1000/150
PROBE_DOCS = 1000
BULK_DOCS = 1000
MODES = ("vector", "keyword", "hybrid")
BURST = 500


def _mb(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    return float("nan")


async def _searchable(settings: Settings, doc: DocumentUpsert, timeout_s: float = 120) -> None:
    """Until the last document is found by keyword and vector search (filtered to its id)."""
    deadline = time.monotonic() + timeout_s
    async with SearchClient(settings.kafka) as client:
        for mode in ("keyword", "vector"):
            while not (
                await client.search(
                    doc.text[:200], tenant=TENANT, mode=mode, top_k=1, filters={"doc_id": doc.id}
                )
            ).hits:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{doc.id} is not searchable by {mode}")
                await asyncio.sleep(0.2)


async def _grow(settings: Settings, start_doc: int, end_doc: int, seed: int) -> float:
    """Ingest documents ``start_doc`` to ``end_doc`` in bulk; chunks/s."""
    chunks, wall = 0, 0.0
    for lo in range(start_doc, end_doc, BULK_DOCS):
        docs = documents(TENANT, min(BULK_DOCS, end_doc - lo), seed=seed + lo, prefix="g")
        run = await ingest_all(settings.kafka, docs, timeout_s=7200)
        chunks += run.chunks
        wall += run.wall_s
    return chunks / wall if wall else float("nan")


async def _searches(
    settings: Settings, n: int
) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Per mode: round-trip ms, worker ms without the embedding, embedding ms."""
    out: dict[str, tuple[list[float], list[float], list[float]]] = {}
    async with SearchClient(settings.kafka) as client:
        for mode in MODES:
            rtt, inner, embed = [], [], []
            for i in range(n + 5):
                t = time.perf_counter()
                r = await client.search(
                    QUERIES[i % len(QUERIES)], tenant=TENANT, top_k=10, mode=mode, timeout_s=30
                )
                if i < 5:  # warm-up
                    continue
                rtt.append((time.perf_counter() - t) * 1000)
                tm = r.timings_ms
                if tm is not None:  # the legs and fusion, without the query's embedding
                    inner.append(max(tm.vector or 0.0, tm.keyword or 0.0) + (tm.fuse or 0.0))
                    embed.append(tm.embed or 0.0)
            out[mode] = (rtt, inner, embed)
    return out


async def _burst(settings: Settings, results: Results, engine: str) -> None:
    """BURST concurrent searches on one client: each reply's status, timeouts and errors."""
    statuses: Counter[str] = Counter()

    async def one(i: int, client: SearchClient) -> None:
        try:
            r = await client.search(
                QUERIES[i % len(QUERIES)],
                tenant=TENANT,
                top_k=100,
                mode=MODES[i % len(MODES)],
                timeout_s=10,
            )
            statuses[r.status] += 1
        except RequestTimeoutError:
            statuses["timeout"] += 1
        except RagstreamError:
            statuses["error"] += 1

    async with SearchClient(settings.kafka) as client:
        t = time.perf_counter()
        await asyncio.gather(*(one(i, client) for i in range(BURST)))
        wall = time.perf_counter() - t
    counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    results.note(f"growth.{engine}: burst of {BURST} searches in {wall:.1f}s: {counts}")
    results.goals.append(
        Goal(
            "7 burst",
            f"{BURST} concurrent searches, 10k chunks, {engine}",
            counts,
            "-",
            f"{statuses['ok']}/{BURST} ok",
            "all ok",
            statuses["ok"] == BURST,
        )
    )


async def _p50_goal(stack: Stack, settings: Settings, results: Results, n: int) -> None:
    """Hybrid search p50 over the topics against the reply's embedding p50 + echo p50 + 5 ms."""
    topic = f"{settings.kafka.topic_prefix}.echo"
    echo = await _start_echo(
        stack, topic, settings.kafka.partitions, settings.kafka.fetch_max_wait_ms, settings
    )
    payload = b'{"echo": 1}'
    try:
        channel = ReplyChannel(settings.kafka)
        await channel.start()
        try:
            echo_ms = []
            for _ in range(n + 5):
                t = time.perf_counter()
                await channel.request(topic, key=None, value=payload, timeout_s=30)
                echo_ms.append((time.perf_counter() - t) * 1000)
        finally:
            await channel.aclose()
        searches = await _searches(settings, n)
    finally:
        echo.kill()
        echo.wait()
    echo_p50 = percentile(echo_ms[5:], 50)
    for mode in MODES:
        rtt, _, embed = searches[mode]
        p50, embed_p50 = percentile(rtt, 50), percentile(embed, 50)
        floor = embed_p50 + echo_p50
        results.note(
            f"growth: {mode} p50 over the topics at 10k chunks {p50:.1f} ms; reply's embed p50 "
            f"{embed_p50:.2f} ms, echo p50 {echo_p50:.1f} ms: +{p50 - floor:.1f} ms"
        )
        results.goals.append(
            Goal(
                "8 search 10k",
                f"{mode} p50 over the topics, 10k chunks, embedded",
                f"{p50:.1f} ms",
                f"embed {embed_p50:.2f} + echo {echo_p50:.1f} ms",
                f"+{p50 - floor:.1f} ms",
                "<= embed+echo+5 ms",
                p50 - floor <= 5.0,
            )
        )


async def run(stack: Stack, opts: Options, results: Results) -> None:
    """Grow, measure, for each engine pair."""
    sizes = sorted(opts.sizes)
    n = 30 if opts.quick else 100
    for engine in opts.engines:
        extra = {"EMBEDDING_BATCH_SIZE": "64"}
        if engine == "embedded":
            extra |= {"CHROMA_URL": "", "KEYWORD_STORE": "embedded"}
        else:
            extra |= {"KEYWORD_STORE": "elasticsearch"}
        env = stack.env(f"growth-{engine}", embedder="wordllama", extra=extra)
        settings = settings_from(env)
        worker = stack.worker(env)
        await worker.wait_ready(settings)
        docs_done = 0
        try:
            for size in sizes:
                target = size // CHUNKS_PER_DOC
                t0 = time.monotonic()
                bulk = await _grow(settings, docs_done, target - PROBE_DOCS, seed=0)
                probe = documents(TENANT, PROBE_DOCS, seed=10**9 + size, prefix="p")
                run = await ingest_all(settings.kafka, probe, timeout_s=3600)
                docs_done = target
                await _searchable(settings, probe[-1])
                key = f"growth.{engine}.{size // 1000}k"
                results.figure(f"{key}.ingest", "chunks/s").add(run.chunks_per_s)
                searches = await _searches(settings, n)
                rss = _mb(worker.pid)
                results.figure(f"{key}.worker_rss", "MiB").add(rss)
                services = (
                    ""
                    if engine == "embedded"
                    else ", "
                    + ", ".join(
                        f"{name} {_mb(pid):.0f} MiB" for name, pid in stack.services().items()
                    )
                )
                line = []
                for mode, (rtt, inner, _) in searches.items():
                    for q in (50, 99):
                        results.figure(f"{key}.{mode}.p{q}", "ms").add(percentile(rtt, q))
                        results.figure(f"{key}.{mode}.worker_no_embed.p{q}", "ms").add(
                            percentile(inner, q)
                        )
                    line.append(
                        f"{mode} {percentile(rtt, 50):.1f}/{percentile(rtt, 99):.1f} ms "
                        f"(worker w/o embed {percentile(inner, 50):.1f}/"
                        f"{percentile(inner, 99):.1f})"
                    )
                results.note(
                    f"{key}: {docs_done * CHUNKS_PER_DOC} chunks; ingest at this size "
                    f"{run.chunks_per_s:.0f} chunks/s (bulk before it {bulk:.0f}); search p50/p99 "
                    f"{'; '.join(line)}; worker RSS {rss:.0f} MiB{services}; "
                    f"step took {time.monotonic() - t0:.0f}s"
                )
                if size == 10_000 and engine == "embedded":
                    await _p50_goal(stack, settings, results, n)
                    await _burst(settings, results, engine)
        finally:
            worker.stop()
            stack.workers.remove(worker)
        _growth_goals(results, engine, sizes)


def _growth_goals(results: Results, engine: str, sizes: list[int]) -> None:
    lo, hi = f"growth.{engine}.{sizes[0] // 1000}k", f"growth.{engine}.{sizes[-1] // 1000}k"
    if f"{hi}.ingest" not in results.figures or lo == hi:
        return
    a, b = results.figures[f"{lo}.ingest"].median, results.figures[f"{hi}.ingest"].median
    curve = ", ".join(
        f"{s // 1000}k {results.figures[f'growth.{engine}.{s // 1000}k.ingest'].median:.0f}"
        for s in sizes
    )
    results.goals.append(
        Goal(
            "6 growth",
            f"ingest rate at {sizes[-1] // 1000}k, {engine}",
            f"{b:.0f} chunks/s",
            f"10k: {a:.0f} chunks/s ({curve})",
            f"{b / a:.2f}x",
            ">= 0.80x",
            b / a >= 0.8,
        )
    )
    for mode in MODES:
        key = "worker_no_embed.p99"
        a = results.figures[f"{lo}.{mode}.{key}"].median
        b = results.figures[f"{hi}.{mode}.{key}"].median
        fig = results.figures
        curve = ", ".join(
            f"{s // 1000}k {fig[f'growth.{engine}.{s // 1000}k.{mode}.{key}'].median:.1f}"
            for s in sizes
        )
        results.goals.append(
            Goal(
                "6 growth",
                f"{mode} p99 w/o embedding at {sizes[-1] // 1000}k, {engine}",
                f"{b:.1f} ms",
                f"10k: {a:.1f} ms ({curve})",
                f"{b / a:.2f}x",
                "<= 2x",
                b / a <= 2.0,
            )
        )
