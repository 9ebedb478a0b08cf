"""Benchmark 4: two workers vs one in the same consumer group, on a 4-partition documents topic.

Run with the local model (the model competes for the 2 cores) and with WordLlama (the pipeline's
own per-document latency is the limit). With the local model also as README advises for
several workers on one host: two workers with ``EMBEDDING_SPIN=false``, and two with
``EMBEDDING_THREADS=1`` each (cores / workers), against the one default worker. Both workers'
logs are counted to prove both took part.
"""

from __future__ import annotations

import time

from benchmarks.common import Options, Results, ingest_all
from benchmarks.corpus import documents
from benchmarks.stack import CpuMeter, Stack, settings_from, wait_for
from benchmarks.stats import Goal

__all__ = ["run"]


async def run(stack: Stack, opts: Options, results: Results) -> None:
    """Run benchmark 4 for both embedders."""
    reps = 1 if opts.quick else 2
    local_n = 24 if opts.quick else 120
    for name, embedder, n, two_env in (
        ("local", "local", local_n, {}),
        ("local, EMBEDDING_SPIN=false", "local", local_n, {"EMBEDDING_SPIN": "false"}),
        ("local, EMBEDDING_THREADS=1", "local", local_n, {"EMBEDDING_THREADS": "1"}),
        ("wordllama", "wordllama", 300 if opts.quick else 900, {}),
    ):
        await _one(stack, results, name, embedder, n, reps, two_env=two_env)


async def _one(
    stack: Stack,
    results: Results,
    name: str,
    embedder: str,
    n: int,
    reps: int,
    *,
    two_env: dict[str, str],
) -> None:
    """One default worker, then two in the same group (fresh ones with ``two_env``, if any)."""
    env = stack.env(f"scale-{embedder}", embedder=embedder, partitions=4)
    settings = settings_from(env)
    key = f"scale.{name.replace(', ', '.')}"
    w1 = stack.worker(env)
    try:
        await w1.wait_ready(settings)
        await ingest_all(settings.kafka, documents("warm", 8, seed=1, prefix="warm1"))
        seed = 0
        for workers in (1, 2):
            if workers == 2:
                if two_env:
                    w1.stop()
                    stack.workers.remove(w1)
                    env = {**env, **two_env}
                    stack.worker(env)
                stack.worker(env)
                for w in stack.workers:
                    await wait_for(
                        lambda w=w: w.count_log("runtime_started") > 0,
                        timeout_s=120,
                        what="a second worker did not start",
                    )
                before = [w.count_log("document_indexed") for w in stack.workers]
                t0 = time.monotonic()
                # Until the group has rebalanced: every worker has indexed something.
                while any(
                    w.count_log("document_indexed") == b
                    for w, b in zip(stack.workers, before, strict=True)
                ):
                    for w in stack.workers:
                        w.assert_alive()
                    if time.monotonic() - t0 > 120:
                        raise TimeoutError("a worker never got a documents partition")
                    seed += 1
                    await ingest_all(
                        settings.kafka, documents("warm", 8, seed=seed, prefix="warm2")
                    )
                results.note(
                    f"{key}: both workers had partitions after {time.monotonic() - t0:.1f}s"
                )
            for _ in range(reps):
                seed += 1
                counts = [w.count_log("document_indexed") for w in stack.workers]
                pids = {f"worker{i + 1}": w.pid for i, w in enumerate(stack.workers)}
                cpu = CpuMeter({**pids, **stack.services()}).start()
                run = await ingest_all(settings.kafka, documents("scale", n, seed=1000 + seed))
                cpu.stop()
                split = [
                    w.count_log("document_indexed") - c
                    for w, c in zip(stack.workers, counts, strict=False)
                ]
                results.figure(f"{key}.{workers}w", "chunks/s").add(run.chunks_per_s)
                results.note(
                    f"{key}: {workers} worker(s): {run.docs} docs / {run.chunks} chunks in "
                    f"{run.wall_s:.1f}s = {run.chunks_per_s:.1f} chunks/s; docs per worker {split};"
                    f" CPU cores: {cpu.text()}"
                )
    finally:
        for w in list(stack.workers):
            w.stop()
        stack.workers.clear()
    one, two = results.figures[f"{key}.1w"], results.figures[f"{key}.2w"]
    ratio = two.median / one.median
    results.goals.append(
        Goal(
            "4 scale",
            f"2 workers vs 1, {name}",
            f"{two.median:.1f} chunks/s",
            f"1 worker {one.median:.1f} chunks/s",
            f"{ratio:.2f}x",
            "(report)",
            None,
        )
    )
