"""Weighted reciprocal rank fusion: ranked lists (vector, keyword) become one.

Sits inside the search service, after both legs answered. RRF ignores the legs' raw
scores (cosine vs BM25 are not comparable) and sums ``weight / (k + rank)`` per list;
with every weight 1 it is plain RRF.
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
    rankings: Mapping[str, Sequence[ScoredChunk]],
    *,
    k: int = 60,
    top_k: int | None = None,
    weights: Mapping[str, float] | None = None,
) -> list[FusedHit]:
    """Fuse ranked lists by weighted RRF; ties go to the better single rank, then the chunk id.

    ``weights`` maps a list's name to its weight (missing names weigh 1). A list with
    weight 0 adds nothing to the scores, but its hits are still candidates (ranked last).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    weights = weights or {}
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"weights must be non-negative: {dict(weights)}")
    fused: dict[str, FusedHit] = {}
    for source, hits in rankings.items():
        weight = weights.get(source, 1.0)
        for rank, hit in enumerate(hits, start=1):
            key = hit.chunk.id
            entry = fused.get(key)
            if entry is None:
                entry = fused[key] = FusedHit(chunk=hit, score=0.0, best_rank=rank)
            if source in entry.sources:  # a list naming a chunk twice counts its best rank
                continue
            entry.score += weight / (k + rank)
            entry.sources.append(source)
            entry.best_rank = min(entry.best_rank, rank)
    ordered = sorted(fused.values(), key=lambda h: (-h.score, h.best_rank, h.chunk.chunk.id))
    return ordered if top_k is None else ordered[:top_k]
