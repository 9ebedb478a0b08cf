"""Indexer and searcher on the in-memory stores: the use cases without any service."""

from __future__ import annotations

import pytest

from schemas.document import DocumentDelete, DocumentUpsert
from schemas.search import SearchRequest
from services.indexing import Indexer
from services.resilience import Breaker, Guarded
from services.search import Searcher
from stores.memory import MemoryKeywordStore, MemoryVectorStore
from stores.memory_catalog import MemoryCatalog
from streams.errors import SchemaValidationError, StoreRejectedError, StoreUnavailableError
from streams.settings import IngestSettings, SearchSettings
from tests.fakes import FakeEmbedder


@pytest.fixture
def parts() -> tuple[
    Indexer, Searcher, MemoryVectorStore, MemoryKeywordStore, MemoryCatalog, FakeEmbedder
]:
    """An indexer and a searcher sharing in-memory stores."""
    vectors, keywords, catalog, embedder = (
        MemoryVectorStore(),
        MemoryKeywordStore(),
        MemoryCatalog(),
        FakeEmbedder(),
    )
    indexer = Indexer(
        catalog=catalog,
        vectors=vectors,
        keywords=keywords,
        embedder=embedder,
        settings=IngestSettings(chunk_size=60, chunk_overlap=10),
        embed_batch_size=4,
    )
    searcher = Searcher(
        vectors=vectors, keywords=keywords, embedder=embedder, settings=SearchSettings()
    )
    return indexer, searcher, vectors, keywords, catalog, embedder


def _doc(text: str, doc_id: str = "d", tenant: str = "t", **kw: object) -> DocumentUpsert:
    return DocumentUpsert(id=doc_id, tenant=tenant, text=text, **kw)  # type: ignore[arg-type]


async def test_index_update_unchanged_delete(parts) -> None:  # type: ignore[no-untyped-def]
    """The document lifecycle leaves both stores and the catalog consistent."""
    indexer, _, vectors, keywords, catalog, embedder = parts
    text = " ".join(f"word{i}" for i in range(60))
    first = await indexer.handle(_doc(text))
    assert first.status == "indexed" and first.chunks > 4
    assert embedder.calls and max(embedder.calls) <= 4  # embedded in batches of 4
    assert await vectors.count("t", "d") == await keywords.count("t", "d") == first.chunks
    calls = len(embedder.calls)
    assert (await indexer.handle(_doc(text))).status == "unchanged"
    assert len(embedder.calls) == calls  # nothing re-embedded
    shorter = await indexer.handle(_doc("only a few words now"))
    assert (shorter.status, shorter.chunks) == ("indexed", 1)
    assert await vectors.count("t", "d") == await keywords.count("t", "d") == 1
    record = await catalog.get("t", "d")
    assert record is not None and record.chunk_count == 1
    assert (
        await indexer.handle(DocumentDelete(op="delete", id="d", tenant="t"))
    ).status == "deleted"
    assert await vectors.count("t", "d") == await keywords.count("t", "d") == 0
    assert await catalog.get("t", "d") is None


async def test_changed_metadata_reindexes(parts) -> None:  # type: ignore[no-untyped-def]
    """Metadata is part of the content hash: changing it is not ``unchanged``."""
    indexer, *_ = parts
    await indexer.handle(_doc("hello there", metadata={"lang": "en"}))
    assert (await indexer.handle(_doc("hello there", metadata={"lang": "de"}))).status == "indexed"


async def test_hybrid_search_fuses_and_confines_to_tenant(parts) -> None:  # type: ignore[no-untyped-def]
    """Hybrid hits come from both legs, one tenant only, with filters applied."""
    indexer, searcher, *_ = parts
    await indexer.handle(
        _doc("apples and pears grow on trees", doc_id="fruit", metadata={"kind": "food"})
    )
    await indexer.handle(
        _doc("kafka partitions and offsets", doc_id="kafka", metadata={"kind": "ops"})
    )
    await indexer.handle(_doc("apples apples apples", doc_id="secret", tenant="other"))
    result = await searcher.search(
        SearchRequest(query="apples trees", tenant="t"), correlation_id="c1"
    )
    assert result.status == "ok" and result.correlation_id == "c1"
    assert result.hits[0].doc_id == "fruit" and set(result.hits[0].sources) == {"keyword", "vector"}
    assert all(h.doc_id != "secret" for h in result.hits)
    filtered = await searcher.search(
        SearchRequest(query="apples", tenant="t", filters={"metadata.kind": "ops"})
    )
    assert {h.doc_id for h in filtered.hits} <= {"kafka"}


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("tenant", id="tenant"),
        pytest.param("metadata", id="bare-metadata"),
        pytest.param("metadata.a.b", id="nested"),
        pytest.param("$or", id="operator"),
    ],
)
async def test_filters_cannot_reach_other_fields(parts, key: str) -> None:  # type: ignore[no-untyped-def]
    """Only ``doc_id`` and ``metadata.<key>`` filters are accepted."""
    _, searcher, *_ = parts
    with pytest.raises(SchemaValidationError, match="not allowed"):
        await searcher.search(SearchRequest(query="x", tenant="t", filters={key: "v"}))


async def test_one_leg_down_degrades_both_down_errors(parts) -> None:  # type: ignore[no-untyped-def]
    """A failing leg degrades the answer; with both failing the answer is ``unavailable``."""
    indexer, searcher, vectors, keywords, *_ = parts
    await indexer.handle(_doc("apples and pears", doc_id="fruit"))
    keywords.error = StoreUnavailableError("es down")
    result = await searcher.search(SearchRequest(query="apples", tenant="t"))
    assert (result.status, result.degraded) == ("degraded", ["keyword"])
    assert result.hits and result.hits[0].sources == ["vector"]
    vectors.error = StoreUnavailableError("chroma down")
    result = await searcher.search(SearchRequest(query="apples", tenant="t"))
    assert (
        result.status == "error" and result.error is not None and result.error.code == "unavailable"
    )
    assert sorted(result.degraded) == ["keyword", "vector"]


async def test_open_breaker_fails_fast_in_search(parts) -> None:  # type: ignore[no-untyped-def]
    """With the keyword breaker open, search degrades without calling the store at all."""
    indexer, _, vectors, keywords, _, embedder = parts
    await indexer.handle(_doc("apples and pears", doc_id="fruit"))
    breaker = Breaker(
        "elasticsearch",
        fail_max=1,
        reset_timeout_s=60,
        call_timeout_s=1,
        unavailable=StoreUnavailableError,
    )
    guarded = Guarded(keywords, breaker)
    searcher = Searcher(
        vectors=vectors, keywords=guarded, embedder=embedder, settings=SearchSettings()
    )  # type: ignore[arg-type]
    keywords.error = StoreUnavailableError("es down")
    await searcher.search(SearchRequest(query="apples", tenant="t"))
    keywords.error = None  # healthy again, but the breaker is open: it must not be called
    result = await searcher.search(SearchRequest(query="apples", tenant="t"))
    assert result.degraded == ["keyword"] and breaker.state == "open"


async def test_top_k_is_capped_and_query_length_checked(parts) -> None:  # type: ignore[no-untyped-def]
    """top_k beyond the limit is capped; an overlong query is rejected precisely."""
    indexer, _, vectors, keywords, _, embedder = parts
    for i in range(8):
        await indexer.handle(_doc(f"common word number {i}", doc_id=f"d{i}"))
    searcher = Searcher(
        vectors=vectors,
        keywords=keywords,
        embedder=embedder,
        settings=SearchSettings(max_top_k=3, max_query_chars=20),
    )
    assert (
        len((await searcher.search(SearchRequest(query="common", tenant="t", top_k=50))).hits) == 3
    )
    with pytest.raises(SchemaValidationError, match="limit is 20"):
        await searcher.search(SearchRequest(query="x" * 21, tenant="t"))


class _CountingCatalog(MemoryCatalog):
    """A memory catalog that counts its reads and writes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def get_many(self, keys):  # type: ignore[no-untyped-def]
        self.calls.append("get_many")
        return await super().get_many(keys)

    async def upsert_many(self, records):  # type: ignore[no-untyped-def]
        self.calls.append("upsert_many")
        await super().upsert_many(records)

    async def delete_many(self, keys):  # type: ignore[no-untyped-def]
        self.calls.append("delete_many")
        return await super().delete_many(keys)


class _PickyKeywordStore(MemoryKeywordStore):
    """Rejects (as a mapping conflict would) any write that contains one given document."""

    def __init__(self, bad_doc: str) -> None:
        super().__init__()
        self.bad_doc = bad_doc
        self.upserts = 0

    async def upsert(self, chunks):  # type: ignore[no-untyped-def]
        self.upserts += 1
        if any(c.doc_id == self.bad_doc for c in chunks):
            raise StoreRejectedError(f"mapping conflict in {self.bad_doc}")
        await super().upsert(chunks)


def _batch_indexer(
    keywords: MemoryKeywordStore | None = None,
    ahead_embedder: FakeEmbedder | None = None,
) -> tuple[Indexer, MemoryVectorStore, MemoryKeywordStore, _CountingCatalog, FakeEmbedder]:
    vectors, catalog, embedder = MemoryVectorStore(), _CountingCatalog(), FakeEmbedder()
    keywords = keywords or MemoryKeywordStore()
    indexer = Indexer(
        catalog=catalog,
        vectors=vectors,
        keywords=keywords,
        embedder=embedder,
        settings=IngestSettings(chunk_size=60, chunk_overlap=10),
        embed_batch_size=4,
        ahead_embedder=ahead_embedder,
    )
    return indexer, vectors, keywords, catalog, embedder


def _words(n: int, word: str = "w") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


async def test_handle_many_mixes_new_unchanged_changed_and_delete() -> None:
    """One batch indexes, skips, re-indexes and deletes, with one read and one write per kind."""
    indexer, vectors, keywords, catalog, embedder = _batch_indexer()
    for doc in (_doc(_words(30), "same"), _doc(_words(40), "changed"), _doc("bye", "gone")):
        await indexer.handle(doc)
    catalog.calls.clear()
    embedder.calls.clear()
    outcomes = await indexer.handle_many(
        [
            _doc(_words(50), "new"),
            _doc(_words(30), "same"),
            _doc("short now", "changed"),
            DocumentDelete(op="delete", id="gone", tenant="t"),
        ]
    )
    new_chunks = len(indexer.chunk(_doc(_words(50), "new")))
    same_chunks = len(indexer.chunk(_doc(_words(30), "same")))
    assert [(o.status, o.chunks) for o in outcomes] == [
        ("indexed", new_chunks),
        ("unchanged", same_chunks),
        ("indexed", 1),
        ("deleted", 0),
    ]
    assert all(o.error is None for o in outcomes)
    assert catalog.calls == ["get_many", "upsert_many", "delete_many"]
    assert sum(embedder.calls) == new_chunks + 1 and max(embedder.calls) <= 4
    for doc_id, expected in [("new", new_chunks), ("same", same_chunks), ("changed", 1)]:
        assert await vectors.count("t", doc_id) == await keywords.count("t", doc_id) == expected
        record = await catalog.get("t", doc_id)
        assert record is not None and record.chunk_count == expected
    assert await vectors.count("t", "gone") == await keywords.count("t", "gone") == 0
    assert await catalog.get("t", "gone") is None


async def test_handle_many_writes_the_catalog_once_per_batch() -> None:
    """Ten new documents cost one catalog read, one catalog write and one write per store."""
    keywords = _PickyKeywordStore(bad_doc="none")
    indexer, _, _, catalog, _ = _batch_indexer(keywords)
    outcomes = await indexer.handle_many([_doc(_words(20), f"d{n}") for n in range(10)])
    assert {o.status for o in outcomes} == {"indexed"}
    assert catalog.calls == ["get_many", "upsert_many"]
    assert keywords.upserts == 1
    assert await catalog.count("t") == 10


async def test_handle_many_applies_repeated_ids_in_order() -> None:
    """Two versions of one id in a batch are applied in order: the last one is what stays."""
    indexer, vectors, keywords, catalog, _ = _batch_indexer()
    outcomes = await indexer.handle_many(
        [
            _doc(_words(40), "d"),
            _doc("other doc", "x"),
            _doc("tiny", "d"),
            DocumentDelete(op="delete", id="x", tenant="t"),
            _doc("tiny", "d"),
        ]
    )
    assert [o.status for o in outcomes] == ["indexed", "indexed", "indexed", "deleted", "unchanged"]
    assert outcomes[2].chunks == 1
    assert await vectors.count("t", "d") == await keywords.count("t", "d") == 1
    assert await vectors.count("t", "x") == await keywords.count("t", "x") == 0
    record = await catalog.get("t", "d")
    assert record is not None and record.chunk_count == 1
    assert await catalog.get("t", "x") is None
    assert catalog.calls.count("get_many") == 3  # runs: [d, x], [d, x-delete], [d]


async def test_handle_many_falls_back_to_singles_on_a_rejected_document() -> None:
    """A document the store rejects fails alone; the rest of the batch is indexed."""
    indexer, vectors, keywords, catalog, _ = _batch_indexer(_PickyKeywordStore(bad_doc="bad"))
    outcomes = await indexer.handle_many(
        [_doc(_words(20), "a"), _doc(_words(20), "bad"), _doc(_words(20), "b")]
    )
    assert [o.status for o in outcomes] == ["indexed", "failed", "indexed"]
    assert isinstance(outcomes[1].error, StoreRejectedError)
    for doc_id in ("a", "b"):
        assert await keywords.count("t", doc_id) == await vectors.count("t", doc_id) > 0
        assert await catalog.get("t", doc_id) is not None
    assert await keywords.count("t", "bad") == 0
    failed = await catalog.get("t", "bad")  # noted for `ragstream documents get`
    assert failed is not None and failed.status == "failed" and failed.chunk_count == 0
    assert failed.last_error is not None and failed.last_error.startswith("store_rejected: ")


async def test_handle_many_raises_a_retriable_error_for_the_caller_to_hold() -> None:
    """A store outage is not a per-document failure: the whole batch raises it."""
    indexer, _, keywords, catalog, _ = _batch_indexer()
    keywords.error = StoreUnavailableError("es down")
    with pytest.raises(StoreUnavailableError):
        await indexer.handle_many([_doc("a b c", "a"), _doc("d e f", "b")])
    assert await catalog.count("t") == 0
    keywords.error = None
    assert [o.status for o in await indexer.handle_many([_doc("a b c", "a")])] == ["indexed"]


async def test_embed_ahead_embeds_only_what_looks_changed() -> None:
    """The look-ahead skips documents the catalog has with the same content, and deletes."""
    indexer, _, _, _, embedder = _batch_indexer()
    await indexer.handle(_doc(_words(30), "same"))
    embedder.calls.clear()
    new = _doc(_words(50), "new")
    ahead = await indexer.embed_ahead(
        [new, _doc(_words(30), "same"), DocumentDelete(op="delete", id="x", tenant="t")]
    )
    assert set(ahead) == {c.text for c in indexer.chunk(new)}
    assert sum(embedder.calls) == len(ahead)


async def test_handle_many_uses_vectors_embedded_ahead_and_embeds_the_rest() -> None:
    """Chunks embedded ahead are not embedded again; missing ones are; results are the same."""
    indexer, vectors, _, _, embedder = _batch_indexer()
    first, second = _doc(_words(50), "a"), _doc(_words(40, "v"), "b")
    ahead = await indexer.embed_ahead([first])
    embedder.calls.clear()
    outcomes = await indexer.handle_many([first, second], embedded=ahead)
    assert [o.status for o in outcomes] == ["indexed", "indexed"]
    assert sum(embedder.calls) == len(indexer.chunk(second))  # only b's chunks
    reference, ref_vectors, _, _, _ = _batch_indexer()
    await reference.handle_many([first, second])
    for doc_id in ("a", "b"):
        assert await vectors.count("t", doc_id) == await ref_vectors.count("t", doc_id)
    [query] = await embedder.embed(["w1 w2 w3"])
    hits = await vectors.query("t", query, top_k=3, filters={})
    ref_hits = await ref_vectors.query("t", query, top_k=3, filters={})
    assert [(h.chunk.id, h.score) for h in hits] == [(h.chunk.id, h.score) for h in ref_hits]


async def test_a_stale_look_ahead_never_skips_a_document() -> None:
    """Ahead, ``d`` looked unchanged; the batch before then wrote another version: re-index."""
    indexer, vectors, _, _, embedder = _batch_indexer()
    current, other = _doc(_words(45, "z"), "d"), _doc(_words(30), "d")
    await indexer.handle(current)
    ahead = await indexer.embed_ahead([current])  # the catalog has this content: nothing
    assert ahead == {}
    await indexer.handle(other)  # the batch before, written after the look-ahead read
    embedder.calls.clear()
    [outcome] = await indexer.handle_many([current], embedded=ahead)
    assert (outcome.status, outcome.chunks) == ("indexed", len(indexer.chunk(current)))
    assert sum(embedder.calls) == len(indexer.chunk(current))
    assert await vectors.count("t", "d") == len(indexer.chunk(current))


async def test_embed_ahead_uses_its_own_embedder() -> None:
    """The look-ahead embeds through ``ahead_embedder`` (no retries), the in-order pass not."""
    ahead = FakeEmbedder()
    indexer, _, _, _, in_order = _batch_indexer(ahead_embedder=ahead)
    first, second = _doc(_words(30), "a"), _doc(_words(30, "v"), "b")
    embedded = await indexer.embed_ahead([first])
    assert sum(ahead.calls) == len(embedded) and in_order.calls == []
    await indexer.handle_many([first, second], embedded=embedded)
    assert sum(in_order.calls) == len(indexer.chunk(second))
    assert sum(ahead.calls) == len(embedded)
