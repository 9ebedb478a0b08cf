"""Hybrid search ranks the vector leg's candidates by identity and fetches only the kept hits'
content, so every reply still carries full chunks."""

from __future__ import annotations

from schemas.chunks import Chunk
from schemas.search import SearchRequest
from services.search import Searcher
from stores.memory import MemoryKeywordStore
from streams.errors import StoreUnavailableError
from streams.settings import SearchSettings
from tests.fakes import FakeEmbedder, RecordingVectorStore


def _chunk(doc_id: str, text: str, lang: str) -> Chunk:
    return Chunk(
        tenant="t", doc_id=doc_id, n=0, text=text, title=doc_id.upper(), metadata={"lang": lang}
    )


async def _setup() -> tuple[Searcher, RecordingVectorStore, list[Chunk]]:
    vectors, keywords, embedder = RecordingVectorStore(), MemoryKeywordStore(), FakeEmbedder()
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
    assert vectors.contents == [False]
    assert vectors.fetched == [[chunks[1].id]]
    assert by_doc["vec"].sources == ["vector"] and by_doc["both"].sources == ["keyword", "vector"]


async def test_vector_mode_reads_content_in_its_query() -> None:
    """Vector mode keeps every hit it asks for: one query with content, no fetch."""
    searcher, vectors, chunks = await _setup()
    result = await searcher.search(SearchRequest(query="apples", tenant="t", mode="vector"))
    assert vectors.contents == [True] and vectors.fetched == []
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


async def test_a_failed_fetch_after_a_failed_keyword_leg_is_an_unavailable_error() -> None:
    """Hybrid with the keyword leg down and the vector store failing at the fetch answers
    ``error: unavailable`` naming both legs (it raised before: nothing left to fuse)."""
    searcher, vectors, _ = await _setup()
    searcher._keywords.error = StoreUnavailableError("es down")  # type: ignore[attr-defined]
    vectors.get_error = StoreUnavailableError("chroma went away")
    result = await searcher.search(SearchRequest(query="apples", tenant="t", top_k=3))
    assert result.status == "error" and result.error is not None
    assert result.error.code == "unavailable" and "chroma went away" in result.error.message
    assert sorted(result.degraded) == ["keyword", "vector"] and result.hits == []
