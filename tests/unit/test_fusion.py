"""Reciprocal rank fusion: scores, order, ties and sources."""

from __future__ import annotations

import itertools

import pytest
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


_lists = st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=10)
_weight = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@given(_lists, _lists, st.integers(min_value=1, max_value=500), _weight, _weight)
def test_weighted_scores_are_weighted_reciprocal_rank_sums(
    left: list[str], right: list[str], k: int, wv: float, wk: float
) -> None:
    """Each fused score is the sum over legs of weight / (k + rank), and nothing is lost."""
    fused = reciprocal_rank_fusion(
        {"vector": _hits(*left), "keyword": _hits(*right)},
        k=k,
        weights={"vector": wv, "keyword": wk},
    )
    assert sorted(f.chunk.chunk.doc_id for f in fused) == sorted(set(left) | set(right))
    for f in fused:
        name = f.chunk.chunk.doc_id
        expected = 0.0
        if name in left:
            expected += wv / (k + left.index(name) + 1)
        if name in right:
            expected += wk / (k + right.index(name) + 1)
        assert abs(f.score - expected) <= 1e-12
        assert sorted(f.sources) == sorted(
            s for s, xs in (("vector", left), ("keyword", right)) if name in xs
        )
    assert all(x.score >= y.score for x, y in itertools.pairwise(fused))


@given(_lists, _lists, st.integers(min_value=1, max_value=500), _weight)
def test_scaling_every_weight_keeps_the_order(
    left: list[str], right: list[str], k: int, scale: float
) -> None:
    """Multiplying both weights by the same positive factor changes no position."""
    rankings = {"vector": _hits(*left), "keyword": _hits(*right)}
    base = reciprocal_rank_fusion(rankings, k=k, weights={"vector": 1.0, "keyword": 2.0})
    scaled = reciprocal_rank_fusion(
        rankings, k=k, weights={"vector": 1.0 * (scale + 0.5), "keyword": 2.0 * (scale + 0.5)}
    )
    assert [f.chunk.chunk.doc_id for f in base] == [f.chunk.chunk.doc_id for f in scaled]


@given(_lists, _lists, st.integers(min_value=1, max_value=500))
def test_a_zero_weight_leg_only_appends(left: list[str], right: list[str], k: int) -> None:
    """Keyword weighted 0: the vector leg's order is kept, keyword-only hits follow."""
    fused = reciprocal_rank_fusion(
        {"vector": _hits(*left), "keyword": _hits(*right)},
        k=k,
        weights={"vector": 1.0, "keyword": 0.0},
    )
    ids = [f.chunk.chunk.doc_id for f in fused]
    assert ids[: len(left)] == left
    assert set(ids[len(left) :]) == set(right) - set(left)


@given(_lists, st.integers(min_value=1, max_value=500), st.integers(min_value=1, max_value=12))
def test_one_leg_keeps_its_order_and_top_k_is_a_prefix(
    ranked: list[str], k: int, top_k: int
) -> None:
    """A single list comes back in its own order, and top_k is a prefix of the full fusion."""
    full = reciprocal_rank_fusion({"keyword": _hits(*ranked)}, k=k)
    assert [f.chunk.chunk.doc_id for f in full] == ranked
    cut = reciprocal_rank_fusion({"keyword": _hits(*ranked)}, k=k, top_k=top_k)
    assert [f.chunk.chunk.doc_id for f in cut] == ranked[:top_k]


@given(_lists, _lists, st.integers(min_value=1, max_value=500))
def test_a_hit_in_both_legs_beats_its_single_leg_score(
    left: list[str], right: list[str], k: int
) -> None:
    """Found by both legs, a chunk scores more than either leg alone gives it."""
    fused = reciprocal_rank_fusion({"vector": _hits(*left), "keyword": _hits(*right)}, k=k)
    for f in fused:
        name = f.chunk.chunk.doc_id
        if name in left and name in right:
            assert f.score > 1 / (k + left.index(name) + 1)
            assert f.score > 1 / (k + right.index(name) + 1)


def test_bad_k_or_negative_weight_is_refused() -> None:
    """k below 1 and negative weights are errors, not silent nonsense."""
    with pytest.raises(ValueError, match="k must be"):
        reciprocal_rank_fusion({"v": _hits("a")}, k=0)
    with pytest.raises(ValueError, match="non-negative"):
        reciprocal_rank_fusion({"v": _hits("a")}, weights={"v": -1.0})
