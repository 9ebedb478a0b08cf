"""The searcher's per-leg timings, per-leg candidates and fusion weights, on in-memory stores."""

from __future__ import annotations

from schemas.chunks import ScoredChunk
from schemas.search import SearchRequest
from services.indexing import Indexer
from services.search import Searcher
from stores.base import Filters
from stores.memory import MemoryKeywordStore
from stores.memory_catalog import MemoryCatalog
from streams.errors import StoreUnavailableError
from streams.settings import IngestSettings, SearchSettings
from tests.fakes import FakeEmbedder, RecordingVectorStore
from tests.unit.test_services import _doc


class _RecordingKeywords(MemoryKeywordStore):
    """Remembers the top_k of every search."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    async def search(
        self,
        tenant: str,
        query: str,
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006
    ) -> list[ScoredChunk]:
        self.asked.append(top_k)
        return await super().search(tenant, query, top_k=top_k, filters=filters)


async def _setup(
    settings: SearchSettings,
) -> tuple[Searcher, RecordingVectorStore, _RecordingKeywords]:
    vectors, keywords, embedder = RecordingVectorStore(), _RecordingKeywords(), FakeEmbedder()
    indexer = Indexer(
        catalog=MemoryCatalog(),
        vectors=vectors,
        keywords=keywords,
        embedder=embedder,
        settings=IngestSettings(chunk_size=60, chunk_overlap=10),
        embed_batch_size=4,
    )
    await indexer.handle(_doc("apples and pears grow on trees", doc_id="fruit"))
    await indexer.handle(_doc("kafka partitions and offsets", doc_id="kafka"))
    await indexer.handle(_doc("apple trees in the orchard", doc_id="orchard"))
    searcher = Searcher(vectors=vectors, keywords=keywords, embedder=embedder, settings=settings)
    return searcher, vectors, keywords


async def test_hybrid_reply_has_every_timing() -> None:
    """A hybrid search reports embed, vector, keyword, fuse and total, none negative."""
    searcher, *_ = await _setup(SearchSettings())
    result = await searcher.search(SearchRequest(query="apples trees", tenant="t"))
    t = result.timings_ms
    assert t is not None
    values = [t.embed, t.vector, t.keyword, t.fuse, t.total]
    assert all(v is not None and v >= 0 for v in values)
    assert t.total == result.took_ms


async def test_single_leg_reply_leaves_the_other_leg_null() -> None:
    """Keyword mode has no embed or vector timing; vector mode has no keyword timing."""
    searcher, *_ = await _setup(SearchSettings())
    kw = (
        await searcher.search(SearchRequest(query="apples", tenant="t", mode="keyword"))
    ).timings_ms
    assert kw is not None and kw.embed is None and kw.vector is None and kw.keyword is not None
    vec = (
        await searcher.search(SearchRequest(query="apples", tenant="t", mode="vector"))
    ).timings_ms
    assert vec is not None and vec.keyword is None and vec.embed is not None


async def test_failed_leg_has_no_timing_and_error_reply_has_total() -> None:
    """A leg that failed reports no time; a search with every leg down still reports total."""
    searcher, _, keywords = await _setup(SearchSettings())
    keywords.error = StoreUnavailableError("down")
    degraded = await searcher.search(SearchRequest(query="apples", tenant="t"))
    assert degraded.status == "degraded" and degraded.timings_ms is not None
    assert degraded.timings_ms.keyword is None and degraded.timings_ms.vector is not None
    failed = await searcher.search(SearchRequest(query="apples", tenant="t", mode="keyword"))
    assert failed.status == "error" and failed.timings_ms is not None
    assert failed.timings_ms.total is not None and failed.timings_ms.keyword is None


async def test_per_leg_candidates_apply_in_hybrid_only() -> None:
    """Hybrid fetches each leg's own candidate count (at least top_k); one leg fetches top_k."""
    settings = SearchSettings(candidates=50, vector_candidates=7, keyword_candidates=30)
    searcher, vectors, keywords = await _setup(settings)
    await searcher.search(SearchRequest(query="apples", tenant="t", top_k=5))
    assert (vectors.asked, keywords.asked) == ([7], [30])
    await searcher.search(SearchRequest(query="apples", tenant="t", top_k=10))
    assert (vectors.asked[-1], keywords.asked[-1]) == (10, 30)
    await searcher.search(SearchRequest(query="apples", tenant="t", top_k=3, mode="keyword"))
    assert keywords.asked[-1] == 3
    plain, v2, k2 = await _setup(SearchSettings(candidates=40))
    await plain.search(SearchRequest(query="apples", tenant="t", top_k=5))
    assert (v2.asked, k2.asked) == ([40], [40])


async def test_a_zero_weight_leg_only_follows_the_other() -> None:
    """Weighting one leg 0 makes hybrid order the hits as the other leg does."""
    query = "trees and offsets"  # the legs disagree: vector kafka first, keyword fruit first
    orders = {}
    for mode in ("vector", "keyword"):
        searcher, *_ = await _setup(SearchSettings())
        result = await searcher.search(SearchRequest(query=query, tenant="t", mode=mode, top_k=2))
        orders[mode] = [h.chunk_id for h in result.hits]
    assert orders["vector"] != orders["keyword"]
    for mode, settings in (
        ("vector", SearchSettings(keyword_weight=0.0)),
        ("keyword", SearchSettings(vector_weight=0.0)),
    ):
        searcher, *_ = await _setup(settings)
        hybrid = await searcher.search(SearchRequest(query=query, tenant="t", top_k=2))
        assert [h.chunk_id for h in hybrid.hits] == orders[mode]
