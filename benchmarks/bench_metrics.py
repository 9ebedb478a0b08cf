"""Benchmark 7: what the Prometheus metrics cost, ingest and search with them on vs off.

Two workers in one run, identical but for ``RAGSTREAM_METRICS`` (each its own topics and
index), with the WordLlama embedder and the embedded keyword index (``KEYWORD_STORE=embedded``,
as ``ragstream dev``) so the pipeline, not the model or the ES-API server's linear scan, is the
limit (where a per-message cost would show). Rounds alternate on, off, on, off... so drift on a
shared machine hits both alike; each round ingests fresh documents (documents/s, result to result)
and runs sequential hybrid searches (requests/s). While one worker is measured the other
idles. A Prometheus-style scrape of ``/metrics`` every second runs during the "on" rounds,
as in production. Both indexes grow by the same documents each round, so searches slow down
from round to round alike: the ratio is taken per round (on / off of the same round, the same
index size) and the median of those is the figure. Goal: both ratios within 2%.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

import httpx
from streams.client import SearchClient
from streams.settings import Settings

from benchmarks.common import Options, Results, ingest_all
from benchmarks.corpus import documents
from benchmarks.stack import Stack, Worker, settings_from
from benchmarks.stats import Goal

__all__ = ["run"]

_QUERIES = ("how are replies routed", "dead letters keep bytes", "breaker opens", "chunk ids")


async def _scrape(url: str, stop: asyncio.Event) -> int:
    """GET ``/metrics`` every second until ``stop``; how many scrapes."""
    n = 0
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            (await http.get(url)).raise_for_status()
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)  # the scrape interval
    return n


async def _round(settings: Settings, seed: int, docs: int, searches: int) -> tuple[float, float]:
    """(documents/s, searches/s) of one round against one worker."""
    batch = documents("bench", docs, seed=seed, prefix=f"r{seed}")
    ingested = await ingest_all(settings.kafka, batch)
    async with SearchClient(settings.kafka) as client:
        started = time.perf_counter()
        for i in range(searches):
            await client.search(_QUERIES[i % len(_QUERIES)], tenant="bench", timeout_s=30)
        search_rate = searches / (time.perf_counter() - started)
    return ingested.docs_per_s, search_rate


async def run(stack: Stack, opts: Options, results: Results) -> None:
    """Benchmark 7: metrics on vs off."""
    rounds = 2 if opts.quick else max(opts.repeats, 5)
    docs, searches = (60, 60) if opts.quick else (200, 200)
    workers: dict[bool, tuple[Worker, Settings]] = {}
    for on in (True, False):
        extra = {"RAGSTREAM_METRICS": "true" if on else "false", "KEYWORD_STORE": "embedded"}
        env = stack.env(f"metrics-{'on' if on else 'off'}", embedder="wordllama", extra=extra)
        settings = settings_from(env)
        worker = stack.worker(env)
        await worker.wait_ready(settings)
        await ingest_all(settings.kafka, documents("bench", 20, seed=99, prefix="warm"))
        workers[on] = (worker, settings)
    ingest: dict[bool, list[float]] = {True: [], False: []}
    search: dict[bool, list[float]] = {True: [], False: []}
    scrapes = 0
    for r in range(rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            worker, settings = workers[on]
            stop = asyncio.Event()
            url = f"http://127.0.0.1:{worker.env['RAGSTREAM_HTTP_PORT']}/metrics"
            scraper = asyncio.create_task(_scrape(url, stop)) if on else None
            try:
                rate_docs, rate_search = await _round(
                    settings, seed=100 + r, docs=docs, searches=searches
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
    results.note(f"metrics benchmark: {rounds} rounds each, {scrapes} scrapes of /metrics while on")
    stack.stop_workers()
