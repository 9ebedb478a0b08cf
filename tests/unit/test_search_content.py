"""Hybrid search ranks the vector leg's candidates by identity and fetches only the kept hits'
content, so every reply still carries full chunks."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.chunks import Chunk, ScoredChunk
from schemas.search import SearchRequest
from services.search import Searcher
from stores.base import Filters
from stores.memory import MemoryKeywordStore, MemoryVectorStore
from streams.errors import StoreUnavailableError
from streams.settings import SearchSettings
from tests.fakes import FakeEmbedder


class _Vectors(MemoryVectorStore):
    """Records how it is asked; ``get_error`` makes ``get`` fail; ``forget`` drops chunks
    between the query and the fetch (a delete racing the search)."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[bool] = []
        self.fetched: list[list[str]] = []
        self.get_error: Exception | None = None
        self.forget: set[str] = set()

    async def query(
        self,
        tenant: str,
        embedding: Sequence[float],
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006
        content: bool = True,
    ) -> list[ScoredChunk]:
        self.queries.append(content)
        return await super().query(tenant, embedding, top_k=top_k, filters=filters, content=content)

    async def get(self, tenant: str, chunk_ids: Sequence[str]) -> list[Chunk]:
        self.fetched.append(list(chunk_ids))
        if self.get_error is not None:
            raise self.get_error
        return [c for c in await super().get(tenant, chunk_ids) if c.id not in self.forget]


def _chunk(doc_id: str, text: str, lang: str) -> Chunk:
    return Chunk(
        tenant="t", doc_id=doc_id, n=0, text=text, title=doc_id.upper(), metadata={"lang": lang}
    )


async def _setup() -> tuple[Searcher, _Vectors, list[Chunk]]:
    vectors, keywords, embedder = _Vectors(), MemoryKeywordStore(), FakeEmbedder()
    chunks = [
        _chunk("both", "apples grow on apple trees", "en"),
        _chunk("vec", "orchards of pear and plum", "de"),  # no query word: vector leg only
        _chunk("kw", "apples", "fr"),
    ]
    await vectors.upsert(chunks, await embedder.embed([c.text for c in chunks]))
    await keywords.upsert([chunks[0], chunks[2]])  # "vec" only in the vector store
    searcher = Searcher(
        vectors=vectors, keywords=keywords, embedder=embedder, settings=SearchSettings()
    )
    return searcher, vectors, chunks


async def test_hybrid_hits_carry_full_content_fetched_only_for_vector_only_hits() -> None:
    """Hybrid asks the vector store for identities, then fetches the content of the kept hits
    the keyword leg did not bring; every hit has its text, title and metadata."""
    searcher, vectors, chunks = await _setup()
    result = await searcher.search(SearchRequest(query="apples", tenant="t", top_k=3))
    assert result.status == "ok"
    by_doc = {hit.doc_id: hit for hit in result.hits}
    assert set(by_doc) == {"both", "vec", "kw"}
    for chunk in chunks:
        hit = by_doc[chunk.doc_id]
        assert (hit.text, hit.title, hit.metadata) == (chunk.text, chunk.title, chunk.metadata)
    assert vectors.queries == [False]
    assert vectors.fetched == [[chunks[1].id]]
    assert by_doc["vec"].sources == ["vector"] and by_doc["both"].sources == ["keyword", "vector"]


async def test_vector_mode_reads_content_in_its_query() -> None:
    """Vector mode keeps every hit it asks for: one query with content, no fetch."""
    searcher, vectors, chunks = await _setup()
    result = await searcher.search(SearchRequest(query="apples", tenant="t", mode="vector"))
    assert vectors.queries == [True] and vectors.fetched == []
    assert {hit.text for hit in result.hits} == {c.text for c in chunks}


async def test_a_failed_fetch_degrades_to_the_keyword_hits() -> None:
    """If the vector store fails between its query and the fetch, the reply is ``degraded``
    with the keyword leg's hits, whole."""
    searcher, vectors, _ = await _setup()
    vectors.get_error = StoreUnavailableError("chroma went away")
    result = await searcher.search(SearchRequest(query="apples", tenant="t", top_k=3))
    assert result.status == "degraded" and result.degraded == ["vector"]
    assert {hit.doc_id for hit in result.hits} == {"both", "kw"}
    assert all(hit.sources == ["keyword"] and hit.text for hit in result.hits)
    assert result.timings_ms is not None and result.timings_ms.vector is not None


async def test_a_chunk_deleted_before_the_fetch_drops_out() -> None:
    """A vector-only hit deleted between the query and the fetch is left out, not empty."""
    searcher, vectors, chunks = await _setup()
    vectors.forget = {chunks[1].id}
    result = await searcher.search(SearchRequest(query="apples", tenant="t", top_k=3))
    assert result.status == "ok" and {hit.doc_id for hit in result.hits} == {"both", "kw"}
