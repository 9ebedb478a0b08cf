"""Choose the hybrid fusion defaults on a BEIR collection already ingested by ``ragstream eval``.

    ragstream eval DIR --tenant T --keep                  # ingest once, keep the tenant
    python -m benchmarks.tune_fusion DIR --tenant T      # fetch both legs once, sweep offline

Fetches every judged query's vector and keyword top-``--top-k`` chunks over the topics once,
then fuses them offline with the searcher's own ``reciprocal_rank_fusion`` for every RRF ``k``
and keyword/vector weight ratio of the grid, and prints nDCG@10, Recall@100 and MRR@10 of each
(document rankings as ``ragstream eval`` scores them), best first, plus each leg alone.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragstream.evaluation import Collection, load_collection
from ragstream.ir_metrics import dedupe, mean, mrr_at, ndcg_at, recall_at
from schemas.chunks import Chunk, ScoredChunk
from services.fusion import reciprocal_rank_fusion
from streams.client import SearchClient
from streams.errors import RemoteError
from streams.settings import Settings

from benchmarks.stats import render_table

__all__ = ["main"]

KS = (1, 5, 10, 20, 40, 60, 100)
RATIOS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
"""keyword weight / vector weight (the vector weight is 1)."""
CANDIDATES = (20, 50, 100)


def _chunk(tenant: str, chunk_id: str, doc_id: str) -> ScoredChunk:
    return ScoredChunk(
        Chunk(tenant=tenant, doc_id=doc_id, n=int(chunk_id.rsplit("#", 1)[1]), text=""), 0.0
    )


async def _fetch(
    coll: Collection, tenant: str, top_k: int, concurrency: int
) -> dict[str, dict[str, list[ScoredChunk]]]:
    """Query id to leg to ranked chunks."""
    out: dict[str, dict[str, list[ScoredChunk]]] = {q: {} for q in coll.queries}
    gate = asyncio.Semaphore(concurrency)
    async with SearchClient(Settings().kafka) as client:

        async def one(qid: str, text: str, mode: str) -> None:
            async with gate:
                try:
                    r = await client.search(
                        text, tenant=tenant, top_k=top_k, mode=mode, timeout_s=60
                    )
                except RemoteError:  # e.g. a query over SEARCH_MAX_QUERY_CHARS: scores 0
                    out[qid][mode] = []
                    return
            out[qid][mode] = [_chunk(tenant, h.chunk_id, h.doc_id) for h in r.hits]

        await asyncio.gather(
            *(one(q, t, m) for q, t in coll.queries.items() for m in ("vector", "keyword"))
        )
    return out


def _score(coll: Collection, ranked: dict[str, list[str]]) -> tuple[float, float, float]:
    q = coll.qrels
    return (
        mean([ndcg_at(ranked[i], q[i], 10) for i in q]),
        mean([recall_at(ranked[i], q[i], 100) for i in q]),
        mean([mrr_at(ranked[i], q[i], 10) for i in q]),
    )


def sweep(
    coll: Collection, legs: dict[str, dict[str, list[ScoredChunk]]], top_k: int
) -> list[tuple[str, float, float, float]]:
    """(setting, nDCG@10, Recall@100, MRR@10) for each leg and each fusion setting."""
    rows = []
    for leg in ("vector", "keyword"):
        ranked = {q: dedupe([c.chunk.doc_id for c in legs[q][leg]]) for q in coll.queries}
        rows.append((f"{leg} alone", *_score(coll, ranked)))
    for k, ratio, cand in itertools.product(KS, RATIOS, CANDIDATES):
        weights = {"vector": 1.0, "keyword": ratio}
        scores = []
        # nDCG@10 and MRR@10 as a top_k 10 request fuses them (each leg fetches max(cand, 10)),
        # Recall@100 as a top_k 100 request (each leg fetches max(cand, 100)).
        for want in (10, top_k):
            ranked = {}
            for q in coll.queries:
                fused = reciprocal_rank_fusion(
                    {leg: legs[q][leg][: max(cand, want)] for leg in ("vector", "keyword")},
                    k=k,
                    top_k=want,
                    weights=weights,
                )
                ranked[q] = dedupe([f.chunk.chunk.doc_id for f in fused])
            scores.append(_score(coll, ranked))
        ndcg, _, mrr = scores[0]
        recall = scores[1][1]
        rows.append((f"k={k} keyword/vector={ratio} candidates={cand}", ndcg, recall, mrr))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Fetch, sweep, print."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("dir", type=Path)
    p.add_argument("--tenant", required=True, help="the tenant 'ragstream eval --keep' used")
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--show", type=int, default=25, help="rows to print (default 25)")
    p.add_argument("--json", type=Path, default=None, help="write every row here")
    args = p.parse_args(argv)
    coll = load_collection(args.dir)
    legs = asyncio.run(_fetch(coll, args.tenant, args.top_k, args.concurrency))
    rows = sweep(coll, legs, args.top_k)
    singles, fused = rows[:2], sorted(rows[2:], key=lambda r: -r[1])
    fmt = [
        [r[0], f"{r[1]:.4f}", f"{r[2]:.4f}", f"{r[3]:.4f}"] for r in singles + fused[: args.show]
    ]
    print(render_table(["setting", "nDCG@10", "Recall@100", "MRR@10"], fmt))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
