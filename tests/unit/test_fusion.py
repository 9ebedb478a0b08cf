"""Reciprocal rank fusion: scores, order, ties and sources."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from schemas.chunks import Chunk, ScoredChunk
from services.fusion import reciprocal_rank_fusion


def _hits(*names: str) -> list[ScoredChunk]:
    return [ScoredChunk(Chunk(tenant="t", doc_id=n, n=0, text=n), score=1.0) for n in names]


def test_rrf_scores_are_sums_of_reciprocal_ranks() -> None:
    """A chunk ranked 1st and 3rd scores 1/61 + 1/63 with k=60."""
    fused = reciprocal_rank_fusion(
        {"vector": _hits("a", "b", "c"), "keyword": _hits("b", "x", "a")}, k=60
    )
    scores = {f.chunk.chunk.doc_id: f.score for f in fused}
    assert scores["a"] == 1 / 61 + 1 / 63
    assert scores["b"] == 1 / 62 + 1 / 61
    assert [f.chunk.chunk.doc_id for f in fused][:2] == ["b", "a"]
    assert sorted(next(f for f in fused if f.chunk.chunk.doc_id == "a").sources) == [
        "keyword",
        "vector",
    ]
    assert next(f for f in fused if f.chunk.chunk.doc_id == "x").sources == ["keyword"]


def test_top_k_truncates() -> None:
    """Only the best top_k come back."""
    assert len(reciprocal_rank_fusion({"v": _hits("a", "b", "c")}, top_k=2)) == 2


@given(
    st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8),
    st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8),
)
def test_fusion_properties(left: list[str], right: list[str]) -> None:
    """Every input chunk appears once, scores are sorted, and the order is symmetric in the legs."""
    a = reciprocal_rank_fusion({"vector": _hits(*left), "keyword": _hits(*right)})
    b = reciprocal_rank_fusion({"keyword": _hits(*right), "vector": _hits(*left)})
    ids = [f.chunk.chunk.doc_id for f in a]
    assert sorted(ids) == sorted(set(left) | set(right))
    assert ids == [f.chunk.chunk.doc_id for f in b]
    assert all(x.score >= y.score for x, y in itertools.pairwise(a))
