"""Benchmark 7: what the Prometheus metrics cost, ingest and search with them on vs off.

Two workers in one run, identical but for ``RAGSTREAM_METRICS`` (each its own topics and
index), with the WordLlama embedder, embedded Chroma and the embedded keyword index
(``KEYWORD_STORE=embedded``), as ``ragstream dev`` runs, so the pipeline, not the model or
the ES-API server's linear scan, is the limit (where a per-message cost would show).
Rounds alternate on, off, on, off... so drift on a shared
machine hits both alike; each round ingests fresh documents (documents/s, result to result)
and runs sequential hybrid searches (requests/s). While one worker is measured the other
idles. A Prometheus-style scrape of ``/metrics`` every second runs during the "on" rounds,
as in production. Both indexes grow by the same documents each round, so searches slow down
from round to round alike: the ratio is taken per round (on / off of the same round, the same
index size) and the median of those is the figure. Goal: both ratios within 2%. The rounds'
noise (10-15% from round to round for ingest on 2 cores) can hide a 2% difference, so the cost is
also measured directly: the CPU the metrics calls of one document and one search take, timed
in this process, against the worker's CPU per document and per search in the "off" rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

import httpx
from streams import metrics
from streams.client import SearchClient
from streams.settings import Settings

from benchmarks.common import Options, Results, ingest_all
from benchmarks.corpus import documents
from benchmarks.stack import Stack, Worker, _cpu_s, settings_from
from benchmarks.stats import Goal

__all__ = ["run"]

_QUERIES = ("how are replies routed", "dead letters keep bytes", "breaker opens", "chunk ids")


async def _scrape(url: str, stop: asyncio.Event, took: list[float]) -> int:
    """GET ``/metrics`` every second until ``stop``; how many scrapes (each one's ms in
    ``took``: an upper bound of the worker's time serving it, lag included)."""
    n = 0
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            started = time.perf_counter()
            (await http.get(url)).raise_for_status()
            took.append((time.perf_counter() - started) * 1000)
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)  # the scrape interval
    return n


async def _round(
    settings: Settings, pid: int, seed: int, docs: int, searches: int
) -> tuple[float, float, float, float]:
    """(documents/s, searches/s, worker CPU µs per document, per search) of one round."""
    batch = documents("bench", docs, seed=seed, prefix=f"r{seed}")
    cpu = _cpu_s(pid)
    ingested = await ingest_all(settings.kafka, batch)
    cpu_docs, cpu = _cpu_s(pid) - cpu, _cpu_s(pid)
    async with SearchClient(settings.kafka) as client:
        started = time.perf_counter()
        for i in range(searches):
            await client.search(_QUERIES[i % len(_QUERIES)], tenant="bench", timeout_s=30)
        search_rate = searches / (time.perf_counter() - started)
    cpu_search = _cpu_s(pid) - cpu
    return ingested.docs_per_s, search_rate, cpu_docs / docs * 1e6, cpu_search / searches * 1e6


def _instrumentation_us(batch: int = 32, n: int = 20_000) -> tuple[float, float]:
    """CPU µs of the metrics calls one document and one search make (enabled), timed here.

    Per document: its outcome, its chunks, its share of a batch's histograms (``batch``
    documents) and of one embedding call; per search: its outcome and latency, four legs and
    the query's embedding call, as ``agents`` and ``services`` make them.
    """
    metrics.configure(enabled=True)
    started = time.process_time()
    for i in range(n):
        metrics.document("indexed")
        metrics.chunks_written(3)
        with metrics.embedding_call("ingest", 3):
            pass
        if i % batch == 0:
            metrics.ingest_batch(0.05, documents=batch)
    per_document = (time.process_time() - started) / n * 1e6
    started = time.process_time()
    for _ in range(n):
        for leg in ("embed", "vector", "keyword", "fuse"):
            with metrics.search_leg(leg):
                pass
        with metrics.embedding_call("search", 1):
            pass
        metrics.search(mode="hybrid", status="ok", seconds=0.01)
    per_search = (time.process_time() - started) / n * 1e6
    return per_document, per_search


async def run(stack: Stack, opts: Options, results: Results) -> None:
    """Benchmark 7: metrics on vs off."""
    rounds = 2 if opts.quick else max(opts.repeats, 5)
    docs, searches = (60, 60) if opts.quick else (1500, 200)
    workers: dict[bool, tuple[Worker, Settings]] = {}
    for on in (True, False):
        extra = {
            "RAGSTREAM_METRICS": "true" if on else "false",
            "KEYWORD_STORE": "embedded",
            "CHROMA_URL": "",  # embedded, as `ragstream dev`: no shared server's noise
        }
        env = stack.env(f"metrics-{'on' if on else 'off'}", embedder="wordllama", extra=extra)
        settings = settings_from(env)
        worker = stack.worker(env)
        await worker.wait_ready(settings)
        await ingest_all(settings.kafka, documents("bench", 20, seed=99, prefix="warm"))
        workers[on] = (worker, settings)
    ingest: dict[bool, list[float]] = {True: [], False: []}
    search: dict[bool, list[float]] = {True: [], False: []}
    cpu_doc: list[float] = []
    scrape_ms: list[float] = []
    cpu_search: list[float] = []
    scrapes = 0
    for r in range(rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            worker, settings = workers[on]
            stop = asyncio.Event()
            url = f"http://127.0.0.1:{worker.env['RAGSTREAM_HTTP_PORT']}/metrics"
            scraper = asyncio.create_task(_scrape(url, stop, scrape_ms)) if on else None
            try:
                rate_docs, rate_search, us_doc, us_search = await _round(
                    settings, worker.pid, seed=100 + r, docs=docs, searches=searches
                )
            finally:
                stop.set()
                if scraper is not None:
                    scrapes += await scraper
            results.note(
                f"metrics round {r} {'on' if on else 'off'}: "
                f"{rate_docs:.2f} documents/s, {rate_search:.2f} searches/s"
            )
            ingest[on].append(rate_docs)
            search[on].append(rate_search)
            if not on:
                cpu_doc.append(us_doc)
                cpu_search.append(us_search)
            results.figure(f"metrics.{'on' if on else 'off'}.ingest", "documents/s").add(rate_docs)
            results.figure(f"metrics.{'on' if on else 'off'}.search", "requests/s").add(rate_search)
    for what, rates, unit in (("ingest", ingest, "documents/s"), ("search", search, "requests/s")):
        on, off = statistics.median(rates[True]), statistics.median(rates[False])
        # Paired by round: the same index size, minutes apart at most.
        ratio = statistics.median(a / b for a, b in zip(rates[True], rates[False], strict=True))
        results.goals.append(
            Goal(
                "7 metrics",
                f"{what} throughput, metrics on",
                f"{on:.1f} {unit}",
                f"{off:.1f} {unit} (off)",
                f"{ratio:.3f}x",
                "within 2% (0.98-1.02x), median of per-round on/off",
                0.98 <= ratio <= 1.02,
            )
        )
    # The same cost measured directly, free of the rounds' noise: the CPU the metrics calls take
    # per document / per search, against the worker's CPU per document / per search (off).
    own_doc, own_search = _instrumentation_us()
    for what, own, worker_us in (
        ("document", own_doc, statistics.median(cpu_doc)),
        ("search", own_search, statistics.median(cpu_search)),
    ):
        share = own / worker_us
        results.goals.append(
            Goal(
                "7 metrics",
                f"CPU of the metrics calls per {what}",
                f"{own:.1f} µs",
                f"{worker_us:.0f} µs worker CPU per {what} (off)",
                f"{share:.2%}",
                "<= 2%",
                share <= 0.02,
            )
        )
    scrape = statistics.median(scrape_ms)
    results.goals.append(
        Goal(
            "7 metrics",
            "one scrape of /metrics a second (round trip)",
            f"{scrape:.1f} ms",
            "1000 ms of one core",
            f"{scrape / 1000:.2%}",
            "<= 2%",
            scrape / 1000 <= 0.02,
        )
    )
    results.note(f"metrics benchmark: {rounds} rounds each, {scrapes} scrapes of /metrics while on")
    stack.stop_workers()
