"""The memory fakes honour the store contracts, plus the fake-only outage switch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stores import MemoryKeywordStore, MemoryVectorStore
from stores.base import VectorStore
from streams.errors import StoreRejectedError, StoreUnavailableError
from tests.contract_search_stores import (
    KeywordStoreContract,
    VectorStoreContract,
    make_chunk,
    vector_for,
)
from tests.protocols import protocol_mismatches


class TestMemoryVectorStore(VectorStoreContract):
    """The vector contract against ``MemoryVectorStore``."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[MemoryVectorStore]:
        store = MemoryVectorStore()
        await store.start()
        yield store
        await store.aclose()

    @pytest.fixture
    def unreachable(self) -> MemoryVectorStore:
        """A fake whose outage switch is on."""
        store = MemoryVectorStore()
        store.error = StoreUnavailableError("down")
        return store


class TestMemoryKeywordStore(KeywordStoreContract):
    """The keyword contract against ``MemoryKeywordStore``."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[MemoryKeywordStore]:
        store = MemoryKeywordStore()
        await store.start()
        yield store
        await store.aclose()

    @pytest.fixture
    def unreachable(self) -> MemoryKeywordStore:
        """A fake whose outage switch is on."""
        store = MemoryKeywordStore()
        store.error = StoreUnavailableError("down")
        return store


@pytest.mark.parametrize(
    "store",
    [
        pytest.param(MemoryVectorStore(), id="vector"),
        pytest.param(MemoryKeywordStore(), id="keyword"),
    ],
)
async def test_error_switch_makes_every_call_raise(
    store: MemoryVectorStore | MemoryKeywordStore,
) -> None:
    """Setting ``error`` makes ping and count raise it, and clearing it heals the store."""
    store.error = StoreUnavailableError("down")
    with pytest.raises(StoreUnavailableError):
        await store.ping()
    with pytest.raises(StoreUnavailableError):
        await store.count("acme")
    store.error = None
    await store.ping()


async def test_vector_upsert_refuses_mismatched_lengths() -> None:
    """Upserting two chunks with one embedding is rejected."""
    store = MemoryVectorStore()
    with pytest.raises(StoreRejectedError):
        await store.upsert([make_chunk(n=0), make_chunk(n=1)], [vector_for(0)])


async def test_vector_query_refuses_a_wrong_dimension() -> None:
    """A query vector of another dimension than the stored ones is rejected."""
    store = MemoryVectorStore()
    await store.upsert([make_chunk()], [vector_for(0)])
    with pytest.raises(StoreRejectedError):
        await store.query("acme", [1.0, 0.0], top_k=1)


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param({"lang": "en"}, id="no-metadata-prefix"),
        pytest.param({"doc_id": ["a"]}, id="list"),
    ],
)
async def test_unsupported_filters_are_rejected(filters: dict[str, object]) -> None:
    """Filter keys other than doc_id / metadata.* and non-scalar values are rejected."""
    with pytest.raises(StoreRejectedError):
        await MemoryKeywordStore().search("acme", "x", top_k=1, filters=filters)  # type: ignore[arg-type]


async def test_stored_metadata_is_a_copy() -> None:
    """Mutating the caller's metadata dict after upsert does not change the stored chunk."""
    store = MemoryKeywordStore()
    chunk = make_chunk(metadata={"lang": "en"})
    await store.upsert([chunk])
    chunk.metadata["lang"] = "fr"
    [hit] = await store.search("acme", "common", top_k=1)
    assert hit.chunk.metadata == {"lang": "en"}


def test_protocol_check_finds_each_kind_of_mismatch() -> None:
    """A missing method, a sync method and a renamed parameter are each reported."""

    class Off(MemoryVectorStore):
        def ping(self) -> None:  # type: ignore[override]
            """Sync, where the protocol's is async."""

        async def delete_document(self, tenant: str, doc_id: str, *, upto: int = 0) -> None:  # type: ignore[override]
            """A renamed parameter."""

    broken = type("NoCount", (Off,), {"count": None})
    problems = protocol_mismatches(broken, VectorStore)
    assert [p.split(":")[0] for p in problems] == ["delete_document", "count", "ping"]
    assert protocol_mismatches(MemoryVectorStore, VectorStore) == []
