"""Retrieval metrics as BEIR and trec_eval compute them: nDCG@k, Recall@k, MRR@k.

Pure functions over one query's ranked document ids and its judgements (``qrels``: doc id to
graded relevance, 0 = judged not relevant). Used by ``ragstream eval`` (``ragstream.evaluation``).
Gains are linear (trec_eval's ``ndcg_cut``, as BEIR reports), the discount is ``log2(rank + 1)``,
and the ideal ranking is the judged documents sorted by grade. A ranking that names a document
twice counts it at its first rank only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["dedupe", "mean", "mrr_at", "ndcg_at", "percentile", "recall_at"]


def dedupe(ranked: Sequence[str]) -> list[str]:
    """The ranking with every id after its first occurrence removed (chunks to documents)."""
    seen: set[str] = set()
    out = []
    for doc in ranked:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def ndcg_at(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain of the first ``k``; 0 when nothing is relevant."""
    ranked = dedupe(ranked)[:k]
    dcg = sum(max(qrels.get(doc, 0), 0) / math.log2(i + 2) for i, doc in enumerate(ranked))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents (grade > 0) found in the first ``k``."""
    relevant = {doc for doc, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(dedupe(ranked)[:k])) / len(relevant)


def mrr_at(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """1 / rank of the first relevant document within the first ``k``, else 0."""
    for i, doc in enumerate(dedupe(ranked)[:k], start=1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / i
    return 0.0


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; 0 for no values."""
    return sum(values) / len(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
