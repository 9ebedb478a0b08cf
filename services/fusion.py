"""Reciprocal rank fusion: two ranked lists (vector, keyword) become one.

Sits inside the search service, after both legs answered. RRF ignores the legs' raw
scores (cosine vs BM25 are not comparable) and sums ``1 / (k + rank)`` per list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from schemas.chunks import ScoredChunk

__all__ = ["FusedHit", "reciprocal_rank_fusion"]


@dataclass(slots=True)
class FusedHit:
    """A chunk with its fused score and the legs that found it."""

    chunk: ScoredChunk
    score: float
    sources: list[str] = field(default_factory=list)
    best_rank: int = 0


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[ScoredChunk]], *, k: int = 60, top_k: int | None = None
) -> list[FusedHit]:
    """Fuse ranked lists by RRF; ties go to the better single rank, then the chunk id."""
    fused: dict[str, FusedHit] = {}
    for source, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            key = hit.chunk.id
            entry = fused.get(key)
            if entry is None:
                entry = fused[key] = FusedHit(chunk=hit, score=0.0, best_rank=rank)
            entry.score += 1.0 / (k + rank)
            if source not in entry.sources:
                entry.sources.append(source)
            entry.best_rank = min(entry.best_rank, rank)
    ordered = sorted(fused.values(), key=lambda h: (-h.score, h.best_rank, h.chunk.chunk.id))
    return ordered if top_k is None else ordered[:top_k]
