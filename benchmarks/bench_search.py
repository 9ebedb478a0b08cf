"""Benchmark 2: search over topics vs direct in-process ``Searcher`` and vs a bare echo.

Same index (one worker with the local model ingests a small corpus), same broker, same client
class (``ReplyChannel``) for the echo and the search requests, plus the same ``Searcher`` behind a
plain aiokafka loop (``benchmarks/bare_search.py``: request-reply without Faust, reported, to
separate what any request-reply costs from what the framework adds). Sequential p50/p99, then 20
concurrent callers (throughput, p50, p99), first sharing one client, then on 20 clients; each
repeat runs the three side by side. Each run has only its own clients alive (see ``run``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ragstream.runtime import Runtime
from schemas.search import SearchRequest
from streams.client import ReplyChannel, SearchClient
from streams.codec import encode
from streams.topics import create_topic

from benchmarks.common import Options, Results, ingest_all
from benchmarks.corpus import QUERIES, documents
from benchmarks.stack import ROOT, Stack, settings_from
from benchmarks.stats import Goal, percentile

__all__ = ["run"]

CLIENTS = 20
TENANT = "bench-search"
# Concurrent runs: CLIENTS callers sharing one client (the client's intended use: one per
# process, one producer and one reply consumer for every request in flight), and CLIENTS
# client instances (every one polls its own reply topic).
MODES = ("shared", "instances")


def _conc_key(mode: str) -> str:
    return f"c{CLIENTS}" if mode == "shared" else f"c{CLIENTS}x{CLIENTS}"


async def _sequential(call: Callable[[int], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


async def _concurrent(
    calls: list[Callable[[int], Awaitable[Any]]], per_client: int
) -> tuple[float, list[float]]:
    """Each of ``calls`` runs ``per_client`` requests back to back; (req/s, latencies ms)."""
    lat: list[float] = []

    async def client(call: Callable[[int], Awaitable[Any]], c: int) -> None:
        for i in range(per_client):
            t = time.perf_counter()
            await call(c * 1000 + i)
            lat.append((time.perf_counter() - t) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client(call, c) for c, call in enumerate(calls)))
    return len(lat) / (time.perf_counter() - started), lat


def _record(
    results: Results,
    conc: dict[str, dict[str, dict[str, list[float]]]],
    mode: str,
    kind: str,
    run: tuple[float, list[float]],
) -> None:
    """Keep one concurrent run's req/s, p50 and p99."""
    rps, lat = run
    for name, value in (("rps", rps), ("p50", percentile(lat, 50)), ("p99", percentile(lat, 99))):
        conc[mode][kind][name].append(value)
        results.figure(
            f"search.{_conc_key(mode)}.{kind}.{name}", "req/s" if name == "rps" else "ms"
        ).add(value)


async def _start_echo(
    stack: Stack, topic: str, partitions: int, wait_ms: int, settings: Any
) -> subprocess.Popen[bytes]:
    await create_topic(settings.kafka, topic, partitions=partitions)
    log = (stack.root / "echo.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.echo",
            stack.kafka.bootstrap,
            topic,
            str(partitions),
            str(wait_ms),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=60)
    if b"ready" not in line:
        raise RuntimeError(f"echo did not start: {line!r}")
    return proc


async def _start_bare(
    stack: Stack, topic: str, env: dict[str, str], settings: Any
) -> subprocess.Popen[bytes]:
    """``benchmarks/bare_search.py`` with the worker's environment, once it is positioned."""
    await create_topic(settings.kafka, topic, partitions=settings.kafka.partitions)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bare_search", topic, str(settings.kafka.partitions)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=(stack.root / "bare-search.log").open("ab"),
    )
    assert proc.stdout is not None

    async def ready() -> None:
        assert proc.stdout is not None
        while b"ready" not in (line := await asyncio.to_thread(proc.stdout.readline)):
            if not line:
                raise RuntimeError("the bare search service exited before it was ready")

    await asyncio.wait_for(ready(), timeout=120)
    return proc


async def run(stack: Stack, opts: Options, results: Results) -> None:
    """Run benchmark 2 and append its goals to ``results``."""
    seq_n = 60 if opts.quick else 200
    per_client = 5 if opts.quick else 20
    repeats = 2 if opts.quick else opts.repeats
    env = stack.env("search", embedder="local")
    settings = settings_from(env)
    wait_ms = settings.kafka.fetch_max_wait_ms
    worker = stack.worker(env)
    ready_s = await worker.wait_ready(settings)
    results.note(
        f"search: worker ready in {ready_s:.1f}s; KAFKA_FETCH_MAX_WAIT_MS={wait_ms}, "
        f"SEARCH_CONCURRENCY={settings.search.concurrency}, partitions={settings.kafka.partitions}"
    )
    corpus = documents(TENANT, 30 if opts.quick else 60, seed=7)
    run_ = await ingest_all(settings.kafka, corpus)
    results.note(f"search: indexed {run_.docs} docs / {run_.chunks} chunks for the search index")

    runtime = Runtime(settings)
    await runtime.start()
    searcher = runtime.searcher
    assert searcher is not None
    requests = [SearchRequest(query=q, tenant=TENANT, top_k=5, mode="hybrid") for q in QUERIES]
    deadline = time.monotonic() + 30
    while not (await searcher.search(requests[0])).hits:  # the keyword index refreshes
        if time.monotonic() > deadline:
            raise RuntimeError("search index stays empty")
        await asyncio.sleep(0.2)

    echo_topic = f"{settings.kafka.topic_prefix}.echo"
    echo = await _start_echo(stack, echo_topic, settings.kafka.partitions, wait_ms, settings)
    payloads = [encode(r) for r in requests]
    # The same Searcher behind a plain aiokafka loop: request-reply without Faust.
    bare_topic = f"{settings.kafka.topic_prefix}.bare-search"
    bare = await _start_bare(stack, bare_topic, env, settings)

    def direct(_: Any = None) -> Callable[[int], Awaitable[Any]]:
        return lambda i: searcher.search(requests[i % len(requests)], correlation_id="x")

    def topics(c: SearchClient) -> Callable[[int], Awaitable[Any]]:
        return lambda i: c.search(QUERIES[i % len(QUERIES)], tenant=TENANT, top_k=5, timeout_s=30)

    def echoed(ch: ReplyChannel, topic: str = echo_topic) -> Callable[[int], Awaitable[Any]]:
        return lambda i: ch.request(
            topic, key=None, value=payloads[i % len(payloads)], timeout_s=30
        )

    # Every client polls its reply topic every fetch wait, on this process's event loop: idle
    # clients slow whatever is being measured here (20 of each kind cost the direct call ~10 ms
    # p50). So each measurement runs with only its own clients: one of each kind for the
    # sequential runs and the 20 callers sharing it, and the 20 clients of a kind exist only
    # while that kind is measured.
    client = SearchClient(settings.kafka)
    channel = ReplyChannel(settings.kafka)
    await asyncio.gather(client.__aenter__(), channel.start())
    try:
        kinds = {
            "direct": direct(),
            "echo": echoed(channel),
            "bare": echoed(channel, bare_topic),
            "topics": topics(client),
        }
        for call in kinds.values():  # warm up every path
            await _sequential(call, 10)
        await _legs(runtime, requests, results, 20 if opts.quick else 50)
        seq: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": []} for k in kinds}
        conc: dict[str, dict[str, dict[str, list[float]]]] = {
            mode: {k: {"rps": [], "p50": [], "p99": []} for k in kinds} for mode in MODES
        }
        for rep in range(repeats):
            for kind, call in kinds.items():
                lat = await _sequential(call, seq_n)
                seq[kind]["p50"].append(percentile(lat, 50))
                seq[kind]["p99"].append(percentile(lat, 99))
                results.figure(f"search.seq.{kind}.p50", "ms").add(percentile(lat, 50))
                results.figure(f"search.seq.{kind}.p99", "ms").add(percentile(lat, 99))
            # CLIENTS callers sharing the sequential runs' client (and channel).
            shared = {
                "direct": [direct() for _ in range(CLIENTS)],
                "echo": [echoed(channel)] * CLIENTS,
                "topics": [topics(client)] * CLIENTS,
            }
            for kind, calls in shared.items():
                _record(results, conc, "shared", kind, await _concurrent(calls, per_client))
            print(
                f"  search repeat {rep + 1}/{repeats}: seq p50 direct "
                f"{seq['direct']['p50'][-1]:.1f} echo {seq['echo']['p50'][-1]:.1f} "
                f"topics {seq['topics']['p50'][-1]:.1f} ms; c{CLIENTS} direct "
                f"{conc['shared']['direct']['rps'][-1]:.0f}, topics "
                f"{conc['shared']['topics']['rps'][-1]:.0f} req/s (one client)",
                flush=True,
            )
        # CLIENTS clients of a kind, made once (topic churn slows the embedded broker) and
        # measured `repeats` times, then closed before the next kind's are made.
        for kind in ("echo", "topics"):
            made: list[Any] = [
                ReplyChannel(settings.kafka) if kind == "echo" else SearchClient(settings.kafka)
                for _ in range(CLIENTS)
            ]
            try:
                await asyncio.gather(
                    *(m.start() if kind == "echo" else m.__aenter__() for m in made)
                )
                calls = [echoed(m) if kind == "echo" else topics(m) for m in made]
                await asyncio.gather(*(call(0) for call in calls))  # warm: connections, metadata
                for _ in range(repeats):
                    _record(results, conc, "instances", kind, await _concurrent(calls, per_client))
            finally:
                await asyncio.gather(*(m.aclose() for m in made), return_exceptions=True)
        rates = {
            k: ", ".join(f"{r:.0f}" for r in conc["instances"][k]["rps"])
            for k in ("echo", "topics")
        }
        print(f"  search {CLIENTS} clients, req/s per repeat: {rates}", flush=True)
    finally:
        await asyncio.gather(client.aclose(), channel.aclose(), return_exceptions=True)
        for proc in (echo, bare):
            proc.kill()
            proc.wait()
        await runtime.aclose()
        worker.stop()
        stack.workers.remove(worker)

    _goals(results, seq, conc, repeats)


async def _legs(runtime: Runtime, requests: list[SearchRequest], results: Results, n: int) -> None:
    """Where the direct call's time goes: each leg alone, sequentially (p50 ms)."""
    n_cand = runtime.settings.search.candidates
    [vec] = await runtime.embedder.embed([requests[0].query])

    async def embed(i: int) -> Any:
        return await runtime.embedder.embed([requests[i % len(requests)].query])

    async def chroma(i: int) -> Any:
        assert runtime.vectors is not None
        return await runtime.vectors.query(TENANT, vec, top_k=n_cand, filters={})

    async def elastic(i: int) -> Any:
        return await runtime.keywords.search(
            TENANT, requests[i % len(requests)].query, top_k=n_cand, filters={}
        )

    parts = {}
    for name, call in (
        ("embed query", embed),
        ("chroma query", chroma),
        ("elasticsearch search", elastic),
    ):
        lat = await _sequential(call, n)
        parts[name] = percentile(lat, 50)
        results.figure(f"search.leg.{name.replace(' ', '_')}.p50", "ms").add(parts[name])
    results.note(
        "search: direct call by leg, sequential p50: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in parts.items())
        + " (the legs run concurrently in Searcher.search)"
    )


def _goals(
    results: Results,
    seq: dict[str, dict[str, list[float]]],
    conc: dict[str, dict[str, dict[str, list[float]]]],
    repeats: int,
) -> None:
    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    for q, slack in (("p50", 3.0), ("p99", 15.0)):
        floor = [d + e for d, e in zip(seq["direct"][q], seq["echo"][q], strict=True)]
        over = [t - f for t, f in zip(seq["topics"][q], floor, strict=True)]
        results.figure(f"search.seq.overhead.{q}", "ms").runs.extend(over)
        results.goals.append(
            Goal(
                "2 search",
                f"sequential {q}",
                f"{med(seq['topics'][q]):.1f} ms",
                f"direct {med(seq['direct'][q]):.1f} + echo {med(seq['echo'][q]):.1f} ms",
                f"{med(seq['topics'][q]) / med(floor):.2f}x (+{med(over):.1f} ms)",
                f"<= direct+echo+{slack:.0f} ms",
                med(over) <= slack,
            )
        )
    # What Faust costs: the worker against the same Searcher behind a plain aiokafka loop.
    faust = [t - b for t, b in zip(seq["topics"]["p50"], seq["bare"]["p50"], strict=True)]
    bare_over = [
        b - d - e
        for b, d, e in zip(
            seq["bare"]["p50"], seq["direct"]["p50"], seq["echo"]["p50"], strict=True
        )
    ]
    results.figure("search.seq.topics_minus_bare.p50", "ms").runs.extend(faust)
    results.goals.append(
        Goal(
            "2 search",
            "sequential p50 vs the bare service",
            f"{med(seq['topics']['p50']):.1f} ms",
            f"bare {med(seq['bare']['p50']):.1f} ms (itself direct + echo +{med(bare_over):.1f})",
            f"+{med(faust):.1f} ms",
            "(reported)",
            None,
        ),
    )
    direct = conc["shared"]["direct"]
    for mode, label in (("shared", "one client"), ("instances", f"{CLIENTS} clients")):
        c = conc[mode]
        ratio = [t / d for t, d in zip(c["topics"]["rps"], direct["rps"], strict=True)]
        results.goals.append(
            Goal(
                "2 search",
                f"{CLIENTS} callers, {label}: throughput",
                f"{med(c['topics']['rps']):.0f} req/s",
                f"direct {med(direct['rps']):.0f} req/s (echo {med(c['echo']['rps']):.0f})",
                f"{med(ratio):.2f}x",
                ">= 0.80x direct" if mode == "shared" else "(reported)",
                med(ratio) >= 0.8 if mode == "shared" else None,
            )
        )
        results.goals.append(
            Goal(
                "2 search",
                f"{CLIENTS} callers, {label}: p50 / p99",
                f"{med(c['topics']['p50']):.0f} / {med(c['topics']['p99']):.0f} ms",
                f"direct {med(direct['p50']):.0f} / {med(direct['p99']):.0f}, "
                f"echo {med(c['echo']['p50']):.0f} / {med(c['echo']['p99']):.0f} ms",
                f"{med(c['topics']['p50']) / med(direct['p50']):.2f}x p50",
                "(reported)",
                None,
            )
        )
