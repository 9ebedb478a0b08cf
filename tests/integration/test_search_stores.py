"""The store contracts against the real stores: Elasticsearch, tantivy, embedded Chroma, Chroma.

Each test gets its own randomly named index or collection, dropped afterwards, so tests
never see each other's chunks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import chromadb
import pytest
from chromadb.config import Settings
from elasticsearch import AsyncElasticsearch

from stores.chroma import ChromaVectorStore
from stores.elastic import ElasticKeywordStore
from stores.tantivy_keywords import TantivyKeywordStore
from streams.errors import StoreRejectedError
from tests.contract_search_stores import (
    KeywordStoreContract,
    VectorStoreContract,
    make_chunk,
    vector_for,
)
from tests.protocols import closed_port

pytestmark = pytest.mark.integration


def _name(kind: str) -> str:
    return f"test-{kind}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def elastic_store(elasticsearch_url: str) -> AsyncIterator[ElasticKeywordStore]:
    """A started ElasticKeywordStore on a fresh index (refresh on write), dropped afterwards."""
    store = ElasticKeywordStore(url=elasticsearch_url, index=_name("chunks"), refresh=True)
    await store.start()
    yield store
    await store.aclose()
    async with AsyncElasticsearch(elasticsearch_url) as admin:
        await admin.options(ignore_status=404).indices.delete(index=store.index)


def _drop_collection(url: str, name: str) -> None:
    parts = urlsplit(url)
    client = chromadb.HttpClient(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 8000,
        settings=Settings(anonymized_telemetry=False),
    )
    client.delete_collection(name)


class TestElasticKeywordStore(KeywordStoreContract):
    """The keyword contract against Elasticsearch (the dev stack's ES API server)."""

    @pytest.fixture
    async def store(self, elastic_store: ElasticKeywordStore) -> ElasticKeywordStore:
        return elastic_store

    @pytest.fixture
    async def unreachable(self) -> AsyncIterator[ElasticKeywordStore]:
        """A store pointed at a closed port."""
        store = ElasticKeywordStore(url=f"http://127.0.0.1:{closed_port()}", index=_name("x"))
        yield store
        await store.aclose()

    async def test_metadata_type_conflict_is_rejected(self, store: ElasticKeywordStore) -> None:
        """A metadata value whose type contradicts the index mapping raises StoreRejectedError."""
        await store.upsert([make_chunk(n=0, metadata={"year": 2024})])
        with pytest.raises(StoreRejectedError, match="year"):
            await store.upsert([make_chunk(n=1, metadata={"year": "last year"})])

    async def test_search_before_start_is_rejected(self, elasticsearch_url: str) -> None:
        """Searching an index that was never created is a rejection (404), not an outage."""
        store = ElasticKeywordStore(url=elasticsearch_url, index=_name("missing"))
        try:
            with pytest.raises(StoreRejectedError):
                await store.search("acme", "x", top_k=1)
        finally:
            await store.aclose()


class TestTantivyKeywordStore(KeywordStoreContract):
    """The keyword contract against the embedded tantivy index in a temporary directory."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[TantivyKeywordStore]:
        store = TantivyKeywordStore(path=tmp_path / "keywords")
        await store.start()
        yield store
        await store.aclose()

    @pytest.fixture
    async def unreachable(self, tmp_path: Path) -> TantivyKeywordStore:
        """An embedded index that was closed: its files are out of reach."""
        store = TantivyKeywordStore(path=tmp_path / "gone")
        await store.start()
        await store.aclose()
        return store


class TestChromaEmbedded(VectorStoreContract):
    """The vector contract against an embedded, persistent Chroma in a temporary directory."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ChromaVectorStore]:
        store = ChromaVectorStore(collection=_name("vectors"), path=tmp_path / "chroma")
        await store.start()
        yield store
        await store.aclose()

    @pytest.fixture
    async def unreachable(self, tmp_path: Path) -> ChromaVectorStore:
        """An embedded store that was closed: its files are out of reach."""
        store = ChromaVectorStore(collection=_name("vectors"), path=tmp_path / "gone")
        await store.aclose()
        return store


class TestChromaServer(VectorStoreContract):
    """The vector contract against a Chroma server (``chroma run``)."""

    @pytest.fixture
    async def store(self, chroma_url: str) -> AsyncIterator[ChromaVectorStore]:
        store = ChromaVectorStore(collection=_name("vectors"), url=chroma_url)
        await store.start()
        yield store
        await store.aclose()
        await asyncio.to_thread(_drop_collection, chroma_url, store.collection_name)

    @pytest.fixture
    async def unreachable(self) -> AsyncIterator[ChromaVectorStore]:
        """A store pointed at a closed port."""
        store = ChromaVectorStore(collection=_name("x"), url=f"http://127.0.0.1:{closed_port()}")
        yield store
        await store.aclose()

    async def test_wrong_dimension_is_rejected(self, store: ChromaVectorStore) -> None:
        """A query vector of another dimension than the collection's raises StoreRejectedError."""
        await store.upsert([make_chunk()], [vector_for(0)])
        with pytest.raises(StoreRejectedError):
            await store.query("acme", [1.0, 0.0], top_k=1)

    async def test_data_survives_a_new_client(
        self, store: ChromaVectorStore, chroma_url: str
    ) -> None:
        """A second store on the same collection sees what the first wrote."""
        await store.upsert([make_chunk()], [vector_for(0)])
        other = ChromaVectorStore(collection=store.collection_name, url=chroma_url)
        try:
            await other.start()
            assert await other.count("acme") == 1
        finally:
            await other.aclose()
