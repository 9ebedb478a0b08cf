"""Cost growth of each embedded search engine alone, in-process (no Kafka, no worker).

    python -m benchmarks.bench_components [--sizes 10000,100000,300000] [--budget-min 30]

Grows one tenant in the embedded keyword store (tantivy) and in embedded Chroma from empty to
each size (chunks of ``benchmarks.corpus`` documents; Chroma gets random unit vectors of 256
dimensions, WordLlama's size, so no model is needed), and at each size measures the write rate of
the last ``PROBE`` chunks and the p50/p99 of ``QUERIES`` searches (top_k 50, the hybrid
candidates). Prints ratios against the first size. Stops growing when the budget is spent.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.chunks import Chunk
from services.chunking import split_text
from stores.chroma import ChromaVectorStore
from stores.tantivy_keywords import TantivyKeywordStore

from benchmarks.corpus import QUERIES, documents
from benchmarks.stats import percentile, render_table

__all__ = ["main"]

TENANT = "bench-components"
PROBE = 3000
STEP_DOCS = 2000
DIMS = 256


def _chunks(lo: int, n: int) -> list[Chunk]:
    docs = documents(TENANT, n, seed=lo, prefix=f"c{lo}")
    return [
        Chunk(tenant=TENANT, doc_id=d.id, n=i, text=s.text, title=d.title, start=s.start)
        for d in docs
        for i, s in enumerate(split_text(d.text, size=1000, overlap=150))
    ]


def _vectors(rng: random.Random, n: int) -> list[list[float]]:
    out = []
    for _ in range(n):
        v = [rng.gauss(0, 1) for _ in range(DIMS)]
        norm = sum(x * x for x in v) ** 0.5
        out.append([x / norm for x in v])
    return out


async def _write(
    kw: TantivyKeywordStore, vec: ChromaVectorStore, chunks: list[Chunk], rng: random.Random
) -> tuple[float, float]:
    """Seconds to write ``chunks`` to each store, in batches of 96 (the worker's order)."""
    t_kw = t_vec = 0.0
    for i in range(0, len(chunks), 96):
        batch = chunks[i : i + 96]
        embeddings = _vectors(rng, len(batch))
        t = time.perf_counter()
        await kw.upsert(batch)
        t_kw += time.perf_counter() - t
        t = time.perf_counter()
        await vec.upsert(batch, embeddings)
        t_vec += time.perf_counter() - t
    return t_kw, t_vec


async def _queries(
    kw: TantivyKeywordStore, vec: ChromaVectorStore, rng: random.Random, n: int
) -> tuple[list[float], list[float]]:
    lat_kw, lat_vec = [], []
    qv = _vectors(rng, n)
    for i in range(n):
        t = time.perf_counter()
        await kw.search(TENANT, QUERIES[i % len(QUERIES)], top_k=50)
        lat_kw.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        await vec.query(TENANT, qv[i], top_k=50)
        lat_vec.append((time.perf_counter() - t) * 1000)
    return lat_kw, lat_vec


async def run(sizes: list[int], budget_s: float, queries: int) -> list[list[str]]:
    root = Path(tempfile.mkdtemp(prefix="ragstream-components-"))
    kw = TantivyKeywordStore(path=root / "keywords")
    vec = ChromaVectorStore(collection="components", path=root / "chroma")
    await kw.start()
    await vec.start()
    rng = random.Random(1)
    rows: list[list[str]] = []
    started = time.monotonic()
    have, next_doc = 0, 0
    try:
        for size in sizes:
            while have < size - PROBE:
                chunks = _chunks(next_doc, STEP_DOCS)[: size - PROBE - have]
                next_doc += STEP_DOCS
                await _write(kw, vec, chunks, rng)
                have += len(chunks)
                if time.monotonic() - started > budget_s:
                    print(f"budget spent at {have} chunks: stopping", flush=True)
                    return rows
            probe = _chunks(10**9 + size, PROBE // 3 + 1)[:PROBE]
            t_kw, t_vec = await _write(kw, vec, probe, rng)
            have += len(probe)
            lat_kw, lat_vec = await _queries(kw, vec, rng, queries)
            row = [
                f"{have:,}",
                f"{len(probe) / t_kw:,.0f}",
                f"{len(probe) / t_vec:,.0f}",
                f"{percentile(lat_kw, 50):.2f} / {percentile(lat_kw, 99):.2f}",
                f"{percentile(lat_vec, 50):.2f} / {percentile(lat_vec, 99):.2f}",
                f"{(time.monotonic() - started) / 60:.1f}",
            ]
            rows.append(row)
            print("  " + " | ".join(row), flush=True)
    finally:
        await kw.aclose()
        await vec.aclose()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="10000,100000,300000")
    p.add_argument("--budget-min", type=float, default=30.0)
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = asyncio.run(run(sizes, args.budget_min * 60, args.queries))
    header = [
        "chunks",
        "tantivy writes/s",
        "chroma writes/s",
        "tantivy p50 / p99 ms",
        "chroma p50 / p99 ms",
        "min",
    ]
    print(render_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
