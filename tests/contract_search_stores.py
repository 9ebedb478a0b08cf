"""The ``VectorStore`` and ``KeywordStore`` contracts: one set of behaviour tests for every
implementation.

A test module subclasses ``VectorStoreContract`` or ``KeywordStoreContract`` and provides a
``store`` fixture yielding a started, empty store, and an ``unreachable`` fixture yielding one
whose backend is down; the same tests then run against the memory fakes (``tests/unit``) and
the real Chroma and Elasticsearch (``tests/integration``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from schemas.chunks import Chunk, ScoredChunk
from stores.base import Filters, KeywordStore, VectorStore
from streams.errors import StoreUnavailableError
from tests.protocols import protocol_mismatches

__all__ = [
    "DIM",
    "KeywordStoreContract",
    "VectorStoreContract",
    "make_chunk",
    "vector_for",
]

DIM = 8
"""Dimension of the hand-made test embeddings."""

COMMON = "common"
"""A word every test chunk's text contains, so a keyword search can list them all."""


def vector_for(n: int) -> list[float]:
    """A unit-ish vector pointing mostly along axis ``n % DIM`` (distinct per chunk number)."""
    vector = [0.1] * DIM
    vector[n % DIM] = 1.0
    return vector


def make_chunk(
    tenant: str = "acme",
    doc_id: str = "doc-1",
    n: int = 0,
    *,
    text: str | None = None,
    title: str = "",
    metadata: dict[str, Any] | None = None,
    start: int = 0,
) -> Chunk:
    """A chunk whose text contains ``COMMON``."""
    return Chunk(
        tenant=tenant,
        doc_id=doc_id,
        n=n,
        text=text if text is not None else f"{COMMON} words of chunk {n} of {doc_id}",
        title=title,
        metadata=metadata or {},
        start=start,
    )


class _StoreContract:
    """Behaviour both interfaces share; subclasses say how to write and how to list."""

    async def write(self, store: Any, chunks: Sequence[Chunk]) -> None:
        raise NotImplementedError

    async def find(
        self, store: Any, tenant: str, *, filters: Filters | None = None, top_k: int = 50
    ) -> list[ScoredChunk]:
        raise NotImplementedError

    async def ids(self, store: Any, tenant: str, filters: Filters | None = None) -> set[str]:
        return {hit.chunk.id for hit in await self.find(store, tenant, filters=filters)}

    async def test_ping_answers_only_when_the_store_is_reachable(
        self, store: Any, unreachable: Any
    ) -> None:
        """``ping`` returns on a live store and raises the retriable ``StoreUnavailableError``
        on one whose backend is unreachable."""
        assert await store.ping() is None
        with pytest.raises(StoreUnavailableError) as info:
            await unreachable.ping()
        assert info.value.retriable

    async def test_start_is_idempotent(self, store: Any) -> None:
        """Starting a started store again changes nothing and keeps its chunks."""
        await self.write(store, [make_chunk()])
        await store.start()
        await store.start()
        assert await store.count("acme") == 1

    async def test_empty_store_finds_nothing(self, store: Any) -> None:
        """A fresh store counts zero chunks and finds none."""
        assert await store.count("acme") == 0
        assert await self.find(store, "acme") == []

    async def test_upsert_overwrites_by_id(self, store: Any) -> None:
        """Writing a chunk id twice keeps one chunk, holding the second version."""
        await self.write(store, [make_chunk(text=f"{COMMON} first version")])
        await self.write(store, [make_chunk(text=f"{COMMON} second version")])
        hits = await self.find(store, "acme")
        assert [hit.chunk.text for hit in hits] == [f"{COMMON} second version"]
        assert await store.count("acme") == 1

    async def test_upsert_of_nothing_is_a_no_op(self, store: Any) -> None:
        """An empty batch writes nothing and raises nothing."""
        await self.write(store, [])
        assert await store.count("acme") == 0

    async def test_count_per_tenant_and_document(self, store: Any) -> None:
        """count() counts a tenant's chunks, or one document's."""
        await self.write(
            store,
            [make_chunk(doc_id="a", n=i) for i in range(3)] + [make_chunk(doc_id="b", n=0)],
        )
        assert await store.count("acme") == 4
        assert await store.count("acme", "a") == 3
        assert await store.count("acme", "b") == 1
        assert await store.count("acme", "missing") == 0

    async def test_delete_document_removes_all_its_chunks(self, store: Any) -> None:
        """delete_document() without keep removes every chunk of that document only."""
        await self.write(
            store,
            [make_chunk(doc_id="a", n=i) for i in range(3)] + [make_chunk(doc_id="b", n=0)],
        )
        await store.delete_document("acme", "a")
        assert await store.count("acme", "a") == 0
        assert await self.ids(store, "acme") == {make_chunk(doc_id="b").id}

    async def test_delete_document_keeps_the_first_chunks(self, store: Any) -> None:
        """delete_document(keep=k) removes chunks n >= k and keeps 0..k-1 (a shrunk document)."""
        await self.write(store, [make_chunk(doc_id="a", n=i) for i in range(5)])
        await store.delete_document("acme", "a", keep=2)
        assert await self.ids(store, "acme") == {make_chunk(doc_id="a", n=i).id for i in (0, 1)}

    async def test_delete_of_a_missing_document_is_a_no_op(self, store: Any) -> None:
        """Deleting a document that has no chunks raises nothing."""
        await store.delete_document("acme", "never-written")
        assert await store.count("acme") == 0

    async def test_tenants_are_isolated(self, store: Any) -> None:
        """Tenant B never sees, counts or deletes tenant A's chunks, even naming A's doc ids."""
        await self.write(store, [make_chunk("tenant-a", "shared", n) for n in range(2)])
        assert await self.find(store, "tenant-b") == []
        assert await self.find(store, "tenant-b", filters={"doc_id": "shared"}) == []
        assert await store.count("tenant-b") == 0
        assert await store.count("tenant-b", "shared") == 0
        await store.delete_document("tenant-b", "shared")
        assert await store.count("tenant-a", "shared") == 2

    async def test_same_doc_id_in_two_tenants_are_two_documents(self, store: Any) -> None:
        """One doc id under two tenants gives two chunks, each tenant seeing its own."""
        await self.write(
            store, [make_chunk("tenant-a", "d", text=f"{COMMON} of a"), make_chunk("tenant-b", "d")]
        )
        hits = await self.find(store, "tenant-a", filters={"doc_id": "d"})
        assert [(hit.chunk.tenant, hit.chunk.text) for hit in hits] == [
            ("tenant-a", f"{COMMON} of a")
        ]

    @pytest.mark.parametrize(
        ("filters", "expected"),
        [
            pytest.param({"metadata.lang": "en"}, {0}, id="string-exact-not-prefix"),
            pytest.param({"metadata.lang": "EN"}, set(), id="string-case-sensitive"),
            pytest.param({"metadata.year": 2023}, {1, 2}, id="int"),
            pytest.param({"metadata.draft": True}, {2}, id="bool"),
            pytest.param({"metadata.ratio": 0.1}, {1}, id="float"),
            pytest.param({"metadata.lang": "fr", "metadata.year": 2023}, {1}, id="two-keys-and"),
            pytest.param({"metadata.missing": "x"}, set(), id="missing-key"),
            pytest.param({"doc_id": "other"}, {3}, id="doc-id"),
            pytest.param({"doc_id": "doc-1", "metadata.lang": "fr"}, {1}, id="doc-id-and-metadata"),
        ],
    )
    async def test_filters_match_exactly(
        self, store: Any, filters: dict[str, Any], expected: set[int]
    ) -> None:
        """Filters on doc_id and metadata keys match exact values only, all of them at once."""
        await self.write(
            store,
            [
                make_chunk(
                    n=0, metadata={"lang": "en", "year": 2024, "draft": False, "ratio": 0.3}
                ),
                make_chunk(
                    n=1, metadata={"lang": "fr", "year": 2023, "draft": False, "ratio": 0.1}
                ),
                make_chunk(n=2, metadata={"lang": "en-GB", "year": 2023, "draft": True}),
                make_chunk(doc_id="other", n=3, metadata={"lang": "de"}),
            ],
        )
        hits = await self.find(store, "acme", filters=filters)
        assert {hit.chunk.n for hit in hits} == expected

    @pytest.mark.parametrize(
        "metadata",
        [
            pytest.param({}, id="empty"),
            pytest.param(
                {"lang": "en", "year": 2024, "ratio": 0.25, "draft": False, "tag": ""},
                id="every-scalar-type",
            ),
        ],
    )
    async def test_chunk_round_trips_exactly(self, store: Any, metadata: dict[str, Any]) -> None:
        """A found chunk equals the written one: text, title, start and metadata with its types."""
        chunk = make_chunk(title="A Title", metadata=metadata, start=1234, n=7)
        await self.write(store, [chunk])
        [hit] = await self.find(store, "acme")
        assert hit.chunk == chunk
        assert {k: type(v) for k, v in hit.chunk.metadata.items()} == {
            k: type(v) for k, v in metadata.items()
        }

    async def test_top_k_limits_the_hits(self, store: Any) -> None:
        """No more than top_k hits come back, best first."""
        await self.write(store, [make_chunk(n=i) for i in range(6)])
        hits = await self.find(store, "acme", top_k=4)
        assert len(hits) == 4
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


class VectorStoreContract(_StoreContract):
    """The ``VectorStore`` contract; subclasses provide a ``store`` fixture."""

    async def write(self, store: VectorStore, chunks: Sequence[Chunk]) -> None:
        await store.upsert(chunks, [vector_for(chunk.n) for chunk in chunks])

    async def find(
        self, store: VectorStore, tenant: str, *, filters: Filters | None = None, top_k: int = 50
    ) -> list[ScoredChunk]:
        return await store.query(tenant, [1.0] * DIM, top_k=top_k, filters=filters or {})

    async def test_methods_match_the_protocol(self, store: VectorStore) -> None:
        """Every ``VectorStore`` method exists, is async and takes the protocol's parameters."""
        assert protocol_mismatches(store, VectorStore) == []

    async def test_most_similar_chunk_ranks_first(self, store: VectorStore) -> None:
        """Querying with a chunk's own vector returns it first, with cosine similarity ~1."""
        await self.write(store, [make_chunk(n=i) for i in range(5)])
        hits = await store.query("acme", vector_for(3), top_k=5)
        assert hits[0].chunk.n == 3
        assert hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert all(hit.score < hits[0].score for hit in hits[1:])

    async def test_score_is_cosine_similarity(self, store: VectorStore) -> None:
        """The score is 1 - cosine distance: orthogonal vectors score ~0, opposite ones ~-1."""
        axis = [0.0] * DIM
        axis[0] = 1.0
        await store.upsert([make_chunk(n=0)], [axis])
        orthogonal = [0.0] * DIM
        orthogonal[1] = 1.0
        opposite = [-x for x in axis]
        [hit] = await store.query("acme", orthogonal, top_k=1)
        assert hit.score == pytest.approx(0.0, abs=1e-3)
        [hit] = await store.query("acme", opposite, top_k=1)
        assert hit.score == pytest.approx(-1.0, abs=1e-3)

    async def test_upsert_overwrites_the_vector(self, store: VectorStore) -> None:
        """Re-upserting a chunk with a new embedding moves it: queries see the new vector."""
        await self.write(store, [make_chunk(n=0), make_chunk(n=1)])
        await store.upsert([make_chunk(n=0)], [vector_for(1)])
        hits = await store.query("acme", vector_for(1), top_k=2)
        assert [hit.score for hit in hits] == pytest.approx([1.0, 1.0], abs=1e-3)

    async def test_query_without_content_ranks_the_same_by_identity(
        self, store: VectorStore
    ) -> None:
        """``content=False`` gives the same hits, order and scores, each chunk carrying only
        tenant, doc_id and n (so its id) with empty text, title and metadata; filters apply."""
        chunks = [
            make_chunk(n=i, title="T", metadata={"lang": "en" if i % 2 else "de"}) for i in range(5)
        ]
        await self.write(store, chunks)
        full = await store.query("acme", vector_for(3), top_k=5)
        bare = await store.query("acme", vector_for(3), top_k=5, content=False)
        assert [h.chunk.id for h in bare] == [h.chunk.id for h in full]
        assert [h.score for h in bare] == pytest.approx([h.score for h in full], abs=1e-6)
        assert all(h.chunk.text == "" and h.chunk.metadata == {} for h in bare)
        assert all(h.chunk.title == "" and h.chunk.tenant == "acme" for h in bare)
        english = await store.query(
            "acme", vector_for(3), top_k=5, filters={"metadata.lang": "en"}, content=False
        )
        assert sorted(h.chunk.n for h in english) == [1, 3]

    async def test_get_returns_the_tenants_chunks_in_the_order_asked(
        self, store: VectorStore
    ) -> None:
        """``get`` returns whole chunks by id, in the order given; unknown ids and another
        tenant's ids are left out."""
        mine = [make_chunk(n=i, doc_id="d/1#x", metadata={"rev": i}) for i in range(3)]
        theirs = make_chunk(tenant="globex", n=0, doc_id="d/1#x")
        await self.write(store, [*mine, theirs])
        got = await store.get("acme", [mine[2].id, "acme/none#0", theirs.id, mine[0].id])
        assert got == [mine[2], mine[0]]
        assert await store.get("acme", []) == []
        assert await store.get("nobody", [mine[0].id]) == []


class KeywordStoreContract(_StoreContract):
    """The ``KeywordStore`` contract; subclasses provide a ``store`` fixture."""

    async def write(self, store: KeywordStore, chunks: Sequence[Chunk]) -> None:
        await store.upsert(chunks)

    async def find(
        self, store: KeywordStore, tenant: str, *, filters: Filters | None = None, top_k: int = 50
    ) -> list[ScoredChunk]:
        return await store.search(tenant, COMMON, top_k=top_k, filters=filters or {})

    async def test_methods_match_the_protocol(self, store: KeywordStore) -> None:
        """Every ``KeywordStore`` method exists, is async and takes the protocol's parameters."""
        assert protocol_mismatches(store, KeywordStore) == []

    async def test_best_match_ranks_first(self, store: KeywordStore) -> None:
        """The chunk repeating the rare query term ranks above one mentioning it once."""
        await self.write(
            store,
            [
                make_chunk(n=0, text=f"{COMMON} alpha beta gamma delta zebra epsilon"),
                make_chunk(n=1, text=f"{COMMON} zebra zebra zebra"),
                make_chunk(n=2, text=f"{COMMON} alpha beta gamma"),
            ],
        )
        hits = await store.search("acme", "zebra", top_k=10)
        assert [hit.chunk.n for hit in hits] == [1, 0]
        assert hits[0].score > hits[1].score > 0

    async def test_title_is_searched(self, store: KeywordStore) -> None:
        """A term found only in a chunk's title finds that chunk."""
        await self.write(
            store,
            [make_chunk(n=0, title="Quarterly Giraffe Report"), make_chunk(n=1, title="Other")],
        )
        hits = await store.search("acme", "giraffe", top_k=10)
        assert [hit.chunk.n for hit in hits] == [0]

    async def test_no_match_finds_nothing(self, store: KeywordStore) -> None:
        """A query sharing no term with any chunk returns no hits."""
        await self.write(store, [make_chunk()])
        assert await store.search("acme", "unrelatedterm", top_k=10) == []
