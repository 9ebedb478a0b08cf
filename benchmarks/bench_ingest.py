"""Benchmarks 1 (ingest vs the model), 3 (replay) and 1b (the pipeline's own ceiling).

1: documents produced until the last ingest result arrives, chunks counted, against the same
local model embedding the same chunks in-process at its best batch size (swept in the same run).
Each round produces fresh documents, then the baseline and the worker see the same chunks.
3: the same documents produced again (every result ``unchanged``) against the first ingest.
1b: benchmark 1 with WordLlama static embeddings in the worker (``benchmarks/worker.py``), a
py-spy profile of the worker during an extra round, and CPU per process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from services.embedding import LocalEmbedder

from benchmarks.common import IngestRun, Options, Results, ingest_all
from benchmarks.corpus import chunk_texts, documents
from benchmarks.profiling import PySpy, summarise
from benchmarks.stack import CpuMeter, RssSampler, Stack, Worker, settings_from
from benchmarks.stages import stage_breakdown
from benchmarks.stats import Goal, render_table
from benchmarks.wordllama_embedder import WordLlamaEmbedder

__all__ = ["run_ingest", "run_pipeline", "run_replay"]


async def _embed_rate(make: Callable[[int], Any], texts: Sequence[str], batch: int) -> float:
    """Chunks/s of ``make(batch)`` embedding ``texts`` in one call (it batches internally)."""
    emb = make(batch)
    await emb.start()
    await emb.embed(list(texts[:batch]))  # warm-up
    t = time.perf_counter()
    await emb.embed(list(texts))
    rate = len(texts) / (time.perf_counter() - t)
    await emb.aclose()
    return rate


async def _best_batch(
    make: Callable[[int], Any],
    sample: Sequence[str],
    sizes: Sequence[int],
    results: Results,
    label: str,
) -> int:
    rates = {b: await _embed_rate(make, sample, b) for b in sizes}
    best = max(rates, key=lambda b: rates[b])
    results.note(
        f"{label}: in-process model by batch size (chunks/s): "
        + ", ".join(f"{b}: {r:.1f}" for b, r in rates.items())
        + f" -> best {best}"
    )
    return best


async def _start_worker(stack: Stack, env: dict[str, str], results: Results, label: str) -> Worker:
    worker = stack.worker(env)
    ready = await worker.wait_ready(settings_from(env))
    results.note(f"{label}: worker ready in {ready:.1f}s (pid {worker.pid})")
    return worker


def _cpu(stack: Stack, worker: Worker) -> CpuMeter:
    import os

    return CpuMeter({"worker": worker.pid, "bench": os.getpid(), **stack.services()}).start()


async def _rounds(
    stack: Stack,
    results: Results,
    *,
    key: str,
    env: dict[str, str],
    worker: Worker,
    make: Callable[[int], Any],
    best: int,
    rounds: int,
    per_round: int,
    tenant: str,
) -> tuple[list[IngestRun], list[float], list[Any]]:
    """Fresh documents each round: the in-process baseline, then the worker, on the same chunks."""
    settings = settings_from(env)
    runs: list[IngestRun] = []
    ratios: list[float] = []
    all_docs: list[Any] = []
    for r in range(rounds):
        docs = documents(tenant, per_round, seed=100 + r)
        all_docs += docs
        texts = chunk_texts(
            docs, size=settings.ingest.chunk_size, overlap=settings.ingest.chunk_overlap
        )
        base = await _embed_rate(make, texts, best)
        cpu = _cpu(stack, worker)
        rss = RssSampler(worker.pid)
        with rss.running():
            run = await ingest_all(settings.kafka, docs)
        cpu.stop()
        if run.chunks != len(texts) or set(run.statuses) != {"indexed"}:
            results.note(
                f"{key}: round {r + 1}: statuses {run.statuses}, {run.chunks} chunks "
                f"(expected {len(texts)} indexed)"
            )
        runs.append(run)
        ratios.append(run.chunks_per_s / base)
        results.figure(f"{key}.model_inprocess", "chunks/s").add(base)
        results.figure(f"{key}.end_to_end", "chunks/s").add(run.chunks_per_s)
        results.figure(f"{key}.end_to_end_docs", "docs/s").add(run.docs_per_s)
        results.figure(f"{key}.worker_took_ms_p50", "ms/doc").add(statistics.median(run.took_ms))
        results.figure(f"{key}.worker_peak_rss", "MiB").add(rss.peak_mb)
        results.note(
            f"{key}: round {r + 1}/{rounds}: {run.docs} docs / {run.chunks} chunks in "
            f"{run.wall_s:.1f}s = {run.chunks_per_s:.1f} chunks/s vs model {base:.1f} "
            f"({ratios[-1]:.2f}x); CPU cores: {cpu.text()}"
        )
    return runs, ratios, all_docs


async def run_ingest(stack: Stack, opts: Options, results: Results) -> None:
    """Benchmark 1: ingest with the local model vs the same model in-process."""
    rounds, per_round = (2, 30) if opts.quick else (3, 100)
    env = stack.env("ingest", embedder="local")
    settings = settings_from(env)
    worker = await _start_worker(stack, env, results, "ingest")

    def make(b: int) -> LocalEmbedder:
        # The model at its fastest alone: spinning threads, whatever EMBEDDING_SPIN says.
        return LocalEmbedder(
            batch_size=b,
            max_tokens=settings.embedding.max_tokens,
            threads=settings.embedding.threads,
            spin=True,
        )

    sample = chunk_texts(
        documents("x", 12, seed=1),
        size=settings.ingest.chunk_size,
        overlap=settings.ingest.chunk_overlap,
    )[: 16 if opts.quick else 32]
    sizes = (1, 2, 4, 8) if opts.quick else (1, 2, 4, 8, 16, 32)
    best = await _best_batch(make, sample, sizes, results, "ingest")
    try:
        runs, ratios, docs = await _rounds(
            stack,
            results,
            key="ingest",
            env=env,
            worker=worker,
            make=make,
            best=best,
            rounds=rounds,
            per_round=per_round,
            tenant="bench-ingest",
        )
    finally:
        worker.stop()
        stack.workers.remove(worker)
    total = IngestRun(
        sum(r.docs for r in runs), sum(r.chunks for r in runs), sum(r.wall_s for r in runs), {}
    )
    results.state["ingest"] = {
        "env": env,
        "docs": docs,
        "wall_s": total.wall_s,
        "chunks": total.chunks,
    }
    med = statistics.median(ratios)
    results.goals.append(
        Goal(
            "1 ingest",
            f"{total.docs} docs, {total.chunks} chunks",
            f"{results.figures['ingest.end_to_end'].median:.1f} chunks/s",
            f"model in-process {results.figures['ingest.model_inprocess'].median:.1f} chunks/s"
            f" (batch {best})",
            f"{med:.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]",
            ">= 0.85x",
            med >= 0.85,
        )
    )
    results.state["ingest_peak_rss_mb"] = max(results.figures["ingest.worker_peak_rss"].runs)


async def run_replay(stack: Stack, opts: Options, results: Results) -> None:
    """Benchmark 3: the documents of benchmark 1 produced again, unchanged."""
    if "ingest" not in results.state:
        results.note("replay: no ingest in this run; ingesting a small first batch (local model)")
        env = stack.env("replay", embedder="local")
        worker = await _start_worker(stack, env, results, "replay")
        docs = documents("bench-ingest", 30 if opts.quick else 60, seed=100)
        first = await ingest_all(settings_from(env).kafka, docs)
        results.state["ingest"] = {
            "env": env,
            "docs": docs,
            "wall_s": first.wall_s,
            "chunks": first.chunks,
        }
    else:
        env = results.state["ingest"]["env"]
        worker = await _start_worker(stack, env, results, "replay")  # same catalog and stores
    state = results.state["ingest"]
    docs, first_s = state["docs"], state["wall_s"]
    settings = settings_from(env)
    try:
        walls = []
        for rep in range(2 if opts.quick else opts.repeats):
            cpu = _cpu(stack, worker)
            run = await ingest_all(settings.kafka, docs)
            cpu.stop()
            walls.append(run.wall_s)
            results.figure("replay.wall", "s").add(run.wall_s)
            results.figure("replay.docs_per_s", "docs/s").add(run.docs_per_s)
            results.figure("replay.worker_took_ms_p50", "ms/doc").add(
                statistics.median(run.took_ms)
            )
            results.note(
                f"replay {rep + 1}: {run.docs} docs in {run.wall_s:.2f}s "
                f"({run.docs_per_s:.0f} docs/s), "
                f"statuses {run.statuses}; CPU cores: {cpu.text()}"
            )
    finally:
        worker.stop()
        stack.workers.remove(worker)
    med = statistics.median(walls)
    results.goals.append(
        Goal(
            "3 replay",
            f"{len(docs)} docs again, unchanged",
            f"{med:.2f} s",
            f"first ingest {first_s:.1f} s",
            f"{first_s / med:.1f}x faster",
            ">= 20x faster",
            first_s / med >= 20,
        )
    )
    if "pipeline_docs_per_s" in results.state:
        pipe = results.state["pipeline_docs_per_s"]
        results.note(
            f"replay vs the pipeline ceiling (1b, {pipe:.0f} docs/s): "
            f"{results.figures['replay.docs_per_s'].median / pipe:.2f}x"
        )


async def run_pipeline(stack: Stack, opts: Options, results: Results) -> None:
    """Benchmark 1b: the worker with a fast embedder, plus a py-spy profile."""
    rounds, per_round = (2, 100) if opts.quick else (3, 300)
    env = stack.env("pipeline", embedder="wordllama")
    settings = settings_from(env)
    worker = await _start_worker(stack, env, results, "pipeline")
    sample = chunk_texts(
        documents("x", 100, seed=1),
        size=settings.ingest.chunk_size,
        overlap=settings.ingest.chunk_overlap,
    )
    best = await _best_batch(
        lambda b: WordLlamaEmbedder(batch_size=b), sample, (8, 32, 64, 256), results, "pipeline"
    )
    try:
        runs, ratios, _ = await _rounds(
            stack,
            results,
            key="pipeline",
            env=env,
            worker=worker,
            make=lambda b: WordLlamaEmbedder(batch_size=b),
            best=best,
            rounds=rounds,
            per_round=per_round,
            tenant="bench-pipeline",
        )
        if opts.profile:
            # Ten rounds' worth: a round takes ~1 s now, too few samples for a profile.
            await _profile(stack, results, env, worker, 10 * per_round)
        table = await stage_breakdown(env, results, 20 if opts.quick else 40)
        (stack.root / "pipeline-stages.md").write_text(table)
        print(table, flush=True)
    finally:
        worker.stop()
        stack.workers.remove(worker)
    e2e = results.figures["pipeline.end_to_end"].median
    results.state["pipeline_docs_per_s"] = results.figures["pipeline.end_to_end_docs"].median
    results.goals.append(
        Goal(
            "1b pipeline",
            f"WordLlama, {sum(r.docs for r in runs)} docs",
            f"{e2e:.0f} chunks/s ({results.figures['pipeline.end_to_end_docs'].median:.0f} docs/s)",
            f"WordLlama in-process "
            f"{results.figures['pipeline.model_inprocess'].median:.0f} chunks/s",
            f"{statistics.median(ratios):.3f}x",
            ">= 300 chunks/s",
            e2e >= 300,
        )
    )


async def _profile(
    stack: Stack, results: Results, env: dict[str, str], worker: Worker, n: int
) -> None:
    settings = settings_from(env)
    docs = documents("bench-profile", n, seed=999)
    out = stack.root / "pipeline-profile.txt"
    with PySpy(worker.pid, out) as spy:
        run = await ingest_all(settings.kafka, docs)
    if spy.error:
        results.note(f"pipeline profile: {spy.error}")
        return
    total, threads, top_self, top_incl = summarise(out)
    results.state["profile"] = {
        "samples": total,
        "threads": threads,
        "self": top_self,
        "inclusive": top_incl,
    }
    text = [
        f"py-spy, worker pid {worker.pid}, {run.docs} docs in {run.wall_s:.1f}s, {total} samples "
        f"(100 Hz, idle excluded): {out}",
        "",
        "by thread:",
        render_table(["thread", "% of samples"], [[t, f"{p:.1f}"] for t, p in threads]),
        "",
        "top self time:",
        render_table(["function", "%"], [[f, f"{p:.1f}"] for f, p in top_self]),
        "",
        "top inclusive time:",
        render_table(["function", "%"], [[f, f"{p:.1f}"] for f, p in top_incl]),
    ]
    (stack.root / "pipeline-profile-summary.md").write_text("\n".join(text))
    print("\n".join(text), flush=True)
    results.note(f"pipeline profile summary: {stack.root / 'pipeline-profile-summary.md'}")
