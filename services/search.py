"""The search use case: a request in, fused ranked hits out.

Sits between the search agent (decode, reply) and the stores. Both legs run
concurrently; a leg whose dependency is down degrades the answer instead of failing
it, and only when every requested leg is down does the search fail.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from schemas.chunks import ScoredChunk
from schemas.ingest import ErrorInfo
from schemas.search import SearchHit, SearchRequest, SearchResult, SearchTimings
from services.fusion import FusedHit, reciprocal_rank_fusion
from streams import metrics
from streams.errors import DependencyError, SchemaValidationError
from streams.settings import SearchSettings

if TYPE_CHECKING:
    from services.embedding import Embedder
    from stores.base import KeywordStore, VectorStore

__all__ = ["Searcher", "validate_filters"]

Leg = Literal["vector", "keyword"]
_FILTER_KEY = re.compile(r"^(doc_id|metadata\.[A-Za-z0-9_\-]{1,128})$")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def validate_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Only ``doc_id`` and ``metadata.<key>`` with scalar values: nothing can reach tenant."""
    for key, value in filters.items():
        if not _FILTER_KEY.match(key):
            raise SchemaValidationError(
                f"filter key {key!r} is not allowed; use 'doc_id' or 'metadata.<key>'"
            )
        if isinstance(value, str) and len(value) > 512:
            raise SchemaValidationError(f"filter {key!r}: value longer than 512 characters")
    return dict(filters)


class Searcher:
    """Hybrid (RRF), vector-only or keyword-only search over one tenant's chunks."""

    def __init__(
        self,
        *,
        vectors: VectorStore,
        keywords: KeywordStore,
        embedder: Embedder,
        settings: SearchSettings,
    ) -> None:
        self._vectors = vectors
        self._keywords = keywords
        self._embedder = embedder
        self._settings = settings

    async def _vector_leg(
        self, req: SearchRequest, n: int, filters: dict[str, Any], spent: dict[str, float]
    ) -> list[ScoredChunk]:
        t0 = time.perf_counter()
        with metrics.search_leg("embed"), metrics.embedding_call("search", 1):
            [embedding] = await self._embedder.embed([req.query])
        t1 = time.perf_counter()
        spent["embed"] = _ms(t1 - t0)
        # Hybrid keeps top_k of n candidates: rank by identity, fetch the kept ones' content
        # afterwards (``_with_content``); reading n chunks' content is most of a query's cost.
        content = req.mode != "hybrid"
        with metrics.search_leg("vector"):
            hits = await self._vectors.query(
                req.tenant, embedding, top_k=n, filters=filters, content=content
            )
        spent["vector"] = _ms(time.perf_counter() - t1)
        return hits

    async def _with_content(
        self, req: SearchRequest, fused: list[FusedHit], rankings: dict[str, list[ScoredChunk]]
    ) -> list[FusedHit]:
        """The fused hits with their content: from the keyword leg where it found the chunk,
        else fetched from the vector store (a chunk deleted meanwhile drops out)."""
        known = {sc.chunk.id: sc.chunk for sc in rankings.get("keyword", [])}
        missing = [f.chunk.chunk.id for f in fused if f.chunk.chunk.id not in known]
        if missing:
            known.update((c.id, c) for c in await self._vectors.get(req.tenant, missing))
        return [
            replace(f, chunk=replace(f.chunk, chunk=known[f.chunk.chunk.id]))
            for f in fused
            if f.chunk.chunk.id in known
        ]

    async def _keyword_leg(
        self, req: SearchRequest, n: int, filters: dict[str, Any], spent: dict[str, float]
    ) -> list[ScoredChunk]:
        t0 = time.perf_counter()
        with metrics.search_leg("keyword"):
            hits = await self._keywords.search(req.tenant, req.query, top_k=n, filters=filters)
        spent["keyword"] = _ms(time.perf_counter() - t0)
        return hits

    def _candidates(self, req: SearchRequest, leg: Leg, top_k: int) -> int:
        """How many hits a leg fetches: ``top_k`` alone, more for fusion in hybrid mode."""
        if req.mode != "hybrid":
            return top_k
        s = self._settings
        per_leg = s.vector_candidates if leg == "vector" else s.keyword_candidates
        return max(top_k, per_leg or s.candidates)

    async def search(
        self, req: SearchRequest, *, correlation_id: str | None = None
    ) -> SearchResult:
        """Answer one request; raises only for an invalid request (the agent replies ``error``)."""
        started = time.perf_counter()
        if len(req.query) > self._settings.max_query_chars:
            raise SchemaValidationError(
                f"field 'query': {len(req.query)} characters; the limit is "
                f"{self._settings.max_query_chars}"
            )
        filters = validate_filters(req.filters)
        top_k = min(req.top_k, self._settings.max_top_k)
        spent: dict[str, float] = {}
        legs: dict[Leg, Any] = {}
        if req.mode in ("hybrid", "vector"):
            n = self._candidates(req, "vector", top_k)
            legs["vector"] = self._vector_leg(req, n, filters, spent)
        if req.mode in ("hybrid", "keyword"):
            n = self._candidates(req, "keyword", top_k)
            legs["keyword"] = self._keyword_leg(req, n, filters, spent)
        outcomes = await asyncio.gather(*legs.values(), return_exceptions=True)
        rankings: dict[str, list[ScoredChunk]] = {}
        degraded: list[Leg] = []
        failure: DependencyError | None = None
        for leg, outcome in zip(legs, outcomes, strict=True):
            if isinstance(outcome, DependencyError):
                degraded.append(leg)
                failure = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                rankings[leg] = outcome
        if not rankings:
            assert failure is not None
            return self._unavailable(correlation_id, degraded, failure, spent, started)
        t_fuse = time.perf_counter()
        with metrics.search_leg("fuse"):
            fused = self._fuse(rankings, top_k)
        t_fetch = time.perf_counter()
        if req.mode == "hybrid" and "vector" in rankings:
            try:
                fused = await self._with_content(req, fused, rankings)
            except DependencyError as exc:  # the vector store went away after its query
                spent["vector"] = spent.get("vector", 0.0) + _ms(time.perf_counter() - t_fetch)
                degraded.append("vector")
                del rankings["vector"]
                if not rankings:  # the keyword leg had failed already
                    return self._unavailable(correlation_id, degraded, exc, spent, started)
                fused = self._fuse(rankings, top_k)
            else:
                spent["vector"] = spent.get("vector", 0.0) + _ms(time.perf_counter() - t_fetch)
        t_hits = time.perf_counter()
        hits = self._hits(fused)
        done = time.perf_counter()
        took_ms = _ms(done - started)
        fuse_ms = _ms((t_fetch - t_fuse) + (done - t_hits))
        return SearchResult(
            correlation_id=correlation_id,
            status="degraded" if degraded else "ok",
            hits=hits,
            degraded=degraded,
            took_ms=took_ms,
            timings_ms=SearchTimings(**spent, fuse=fuse_ms, total=took_ms),
        )

    @staticmethod
    def _unavailable(
        correlation_id: str | None,
        degraded: list[Leg],
        failure: DependencyError,
        spent: dict[str, float],
        started: float,
    ) -> SearchResult:
        """The ``error`` reply when every requested leg is down."""
        took_ms = _ms(time.perf_counter() - started)
        return SearchResult(
            correlation_id=correlation_id,
            status="error",
            degraded=degraded,
            error=ErrorInfo(code="unavailable", message=f"search is unavailable: {failure}"),
            took_ms=took_ms,
            timings_ms=SearchTimings(**spent, total=took_ms),
        )

    def _fuse(self, rankings: dict[str, list[ScoredChunk]], top_k: int) -> list[FusedHit]:
        if len(rankings) == 1:
            [(leg, ranked)] = rankings.items()
            return [FusedHit(chunk=sc, score=sc.score, sources=[leg]) for sc in ranked[:top_k]]
        weights = {"vector": self._settings.vector_weight, "keyword": self._settings.keyword_weight}
        return reciprocal_rank_fusion(
            rankings, k=self._settings.rrf_k, top_k=top_k, weights=weights
        )

    @staticmethod
    def _hits(fused: list[FusedHit]) -> list[SearchHit]:
        return [
            SearchHit(
                chunk_id=f.chunk.chunk.id,
                doc_id=f.chunk.chunk.doc_id,
                title=f.chunk.chunk.title,
                text=f.chunk.chunk.text,
                score=round(f.score, 6),
                metadata=f.chunk.chunk.metadata,
                sources=sorted(f.sources),  # type: ignore[arg-type]
            )
            for f in fused
        ]
