"""The store contracts against the real stores: Elasticsearch, tantivy, embedded Chroma, Chroma.

Each test gets its own randomly named index or collection, dropped afterwards, so tests
never see each other's chunks.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
import pytest
from chromadb.config import Settings
from elasticsearch import AsyncElasticsearch

from ragstream.runtime import collection_name
from services.embedding import build_embedder
from stores.chroma import ChromaVectorStore, _metadata, tenant_collection
from stores.elastic import ElasticKeywordStore
from stores.tantivy_keywords import TantivyKeywordStore
from streams.errors import ConfigError, StoreRejectedError
from streams.settings import Settings as AppSettings
from tests.contract_search_stores import (
    KeywordStoreContract,
    VectorStoreContract,
    make_chunk,
    vector_for,
)
from tests.integration.harness import run_cli
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


def _server(url: str) -> Any:
    parts = urlsplit(url)
    return chromadb.HttpClient(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 8000,
        settings=Settings(anonymized_telemetry=False),
    )


def _drop_collections(url: str, base: str) -> None:
    """Drop the store's collections: every tenant's (``{base}.``...) and a shared one."""
    client = _server(url)
    for collection in client.list_collections():
        if collection.name == base or collection.name.startswith(f"{base}."):
            client.delete_collection(collection.name)


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
        await asyncio.to_thread(_drop_collections, chroma_url, store.collection_name)

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


class TestChromaCollectionPerTenant:
    """Each tenant's chunks live in a collection of its own (isolation by construction, no
    tenant ``where`` to evaluate); a version-1 shared collection is refused, then migrated."""

    async def test_each_tenant_has_its_own_collection_and_reads_create_none(
        self, tmp_path: Path
    ) -> None:
        """Writes of two tenants make two collections; a search, a count or a delete of a
        tenant that never wrote finds nothing and creates no collection."""
        base = _name("vectors")
        store = ChromaVectorStore(collection=base, path=tmp_path / "chroma")
        await store.start()
        try:
            await store.upsert(
                [make_chunk(tenant="acme"), make_chunk(tenant="globex", n=1)],
                [vector_for(0), vector_for(1)],
            )
            assert await store.query("nobody", vector_for(0), top_k=5) == []
            assert await store.count("nobody") == 0
            await store.delete_document("nobody", "doc-1")
        finally:
            await store.aclose()
        client = chromadb.PersistentClient(
            path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False)
        )
        names = sorted(c.name for c in client.list_collections())
        assert names == sorted([tenant_collection(base, "acme"), tenant_collection(base, "globex")])
        acme = client.get_collection(tenant_collection(base, "acme"))
        assert acme.count() == 1 and acme.get()["metadatas"][0]["tenant"] == "acme"

    async def test_a_shared_v1_collection_is_refused_then_migrated(self, chroma_url: str) -> None:
        """A worker's store refuses to start on a shared collection that holds chunks;
        ``migrate_shared_collection`` moves every chunk, exactly, to its tenant's collection,
        renames the shared one, and copies nothing the second time."""
        base = _name("vectors")
        client = _server(chroma_url)
        shared = client.create_collection(
            base, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        chunks = [make_chunk(tenant="acme", n=n, doc_id=f"d{n}") for n in range(5)] + [
            make_chunk(tenant="globex", n=0, doc_id="g", metadata={"lang": "en"})
        ]
        vectors = [vector_for(n) for n in range(len(chunks))]
        store = ChromaVectorStore(collection=base, url=chroma_url)
        try:
            # Written as version 1 did: one collection, the tenant a metadata field.
            shared.upsert(
                ids=[c.id for c in chunks],
                embeddings=vectors,
                metadatas=[_metadata(c) for c in chunks],
                documents=[c.text for c in chunks],
            )
            with pytest.raises(ConfigError, match="ragstream reindex"):
                await store.start()
            assert await store.migrate_shared_collection(page=2) == len(chunks)
            await store.start()  # no shared collection any more
            assert await store.count("acme") == 5 and await store.count("globex") == 1
            lang = {"metadata.lang": "en"}
            hits = await store.query("globex", vector_for(5), top_k=3, filters=lang)
            assert [h.chunk for h in hits] == [chunks[5]]
            best = await store.query("acme", vector_for(2), top_k=1)
            assert best[0].chunk == chunks[2] and best[0].score > 0.99
            assert await store.migrate_shared_collection() == 0
            left = [c.name for c in client.list_collections() if c.name.startswith(base)]
            assert any(name.startswith(f"{base}.migrated-") for name in left)
            assert base not in left
        finally:
            await store.aclose()
            await asyncio.to_thread(_drop_collections, chroma_url, base)


async def test_ragstream_reindex_moves_a_shared_embedded_collection(tmp_path: Path) -> None:
    """``ragstream reindex`` with a worker's settings finds the shared collection of the
    worker's model in its data dir and moves it; a worker's store then starts."""
    settings = AppSettings(data_dir=tmp_path)
    embedder = build_embedder(settings)
    await embedder.start()
    base = collection_name(settings.chroma.collection_prefix, embedder.name)
    await embedder.aclose()
    client = chromadb.PersistentClient(
        path=str(settings.chroma_path), settings=Settings(anonymized_telemetry=False)
    )
    shared = client.create_collection(base, embedding_function=None)
    chunks = [make_chunk(tenant="acme", n=0), make_chunk(tenant="globex", n=1)]
    shared.upsert(
        ids=[c.id for c in chunks],
        embeddings=[vector_for(0), vector_for(1)],
        metadatas=[_metadata(c) for c in chunks],
        documents=[c.text for c in chunks],
    )
    del shared, client  # the embedded client is one process's at a time
    env = {
        **os.environ,
        "RAGSTREAM_DATA_DIR": str(tmp_path),
        "KEYWORD_STORE": "embedded",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never a running dev stack's
    }
    done = await run_cli("reindex", env=env, timeout_s=180)
    assert done.returncode == 0, done.stderr
    assert f"moved 2 vectors from the shared collection {base}" in done.stdout
    store = ChromaVectorStore(collection=base, path=settings.chroma_path)
    try:
        await store.start()
        assert await store.count("acme") == 1 and await store.count("globex") == 1
    finally:
        await store.aclose()
