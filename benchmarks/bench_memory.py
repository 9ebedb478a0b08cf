"""Benchmark 5: the worker's peak RSS during benchmark 1, and RSS under minutes of mixed load.

Mixed load: 4 closed-loop ingest clients (fresh documents) and 4 closed-loop searchers against
one worker with WordLlama (more messages per minute than the local model, so growth shows
sooner). RSS is sampled every second; compared at 1 minute and at the end (default 3 minutes,
``--long-memory`` for the issue's 10, ``--quick`` 20 s vs 1 minute).
"""

from __future__ import annotations

import asyncio
import itertools
import time

from streams.client import IngestClient, SearchClient

from benchmarks.common import Options, Results, ingest_all
from benchmarks.corpus import QUERIES, documents
from benchmarks.stack import RssSampler, Stack, settings_from
from benchmarks.stats import Goal

__all__ = ["run"]

GROWTH_LIMIT = 1.10
"""End RSS over checkpoint RSS above which we call the growth unbounded."""


async def run(stack: Stack, opts: Options, results: Results) -> None:
    """Run benchmark 5."""
    if "ingest_peak_rss_mb" not in results.state:
        env = stack.env("memory-peak", embedder="local")
        w = stack.worker(env)
        try:
            await w.wait_ready(settings_from(env))
            rss = RssSampler(w.pid)
            with rss.running():
                await ingest_all(
                    settings_from(env).kafka, documents("peak", 20 if opts.quick else 60, seed=3)
                )
            results.state["ingest_peak_rss_mb"] = rss.peak_mb
            results.note(
                f"memory: peak RSS measured on its own ingest of {20 if opts.quick else 60} docs "
                "(benchmark 1 did not run)"
            )
        finally:
            w.stop()
            stack.workers.remove(w)
    results.goals.append(
        Goal(
            "5 memory",
            "worker peak RSS during 1",
            f"{results.state['ingest_peak_rss_mb']:.0f} MiB",
            "-",
            "-",
            "(report)",
            None,
        )
    )
    total_s = opts.memory_minutes * 60
    check_s = 60.0 if total_s >= 120 else total_s / 3
    env = stack.env("memory", embedder="wordllama")
    settings = settings_from(env)
    w = stack.worker(env)
    counts = {"docs": 0, "searches": 0}
    try:
        await w.wait_ready(settings)
        await ingest_all(settings.kafka, documents("soak", 20, seed=5))  # something to find
        ids = itertools.count()
        deadline = time.monotonic() + total_s

        async def ingester(client: IngestClient, k: int) -> None:
            while time.monotonic() < deadline:
                [doc] = documents("soak", 1, seed=10_000 + next(ids), prefix=f"soak{k}")
                await (await client.submit(doc))
                counts["docs"] += 1

        async def searcher(client: SearchClient, k: int) -> None:
            i = k
            while time.monotonic() < deadline:
                await client.search(QUERIES[i % len(QUERIES)], tenant="soak", top_k=5, timeout_s=30)
                counts["searches"] += 1
                i += 1

        rss = RssSampler(w.pid, interval_s=1.0)
        async with IngestClient(settings.kafka) as ic, SearchClient(settings.kafka) as sc:
            with rss.running():
                await asyncio.gather(
                    *(ingester(ic, k) for k in range(4)), *(searcher(sc, k) for k in range(4))
                )
    finally:
        w.stop()
        stack.workers.remove(w)
    at_check, at_end = rss.at_mb(check_s), rss.at_mb(total_s + 5)
    half = [(t, r / 2**20) for t, r in rss.samples if t >= total_s / 2]
    slope = _slope(half) * 60
    results.figure("memory.rss_checkpoint", "MiB").add(at_check)
    results.figure("memory.rss_end", "MiB").add(at_end)
    results.figure("memory.peak", "MiB").add(rss.peak_mb)
    results.note(
        f"memory: {opts.memory_minutes:g} min mixed load: {counts['docs']} docs ingested, "
        f"{counts['searches']} searches; RSS {at_check:.0f} MiB at {check_s:.0f}s, "
        f"{at_end:.0f} MiB at "
        f"the end, peak {rss.peak_mb:.0f} MiB; slope over the second half {slope:+.2f} MiB/min"
    )
    ratio = at_end / at_check
    results.goals.append(
        Goal(
            "5 memory",
            f"RSS after {opts.memory_minutes:g} min vs {check_s:.0f} s mixed load",
            f"{at_end:.0f} MiB",
            f"{at_check:.0f} MiB",
            f"{ratio:.2f}x ({slope:+.1f} MiB/min)",
            f"<= {GROWTH_LIMIT:.2f}x",
            ratio <= GROWTH_LIMIT,
        )
    )


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0
