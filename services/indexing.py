"""The ingest use case: a decoded document in, both stores and the catalog updated.

Sits between the ingest agent (which decodes, acks and dead-letters) and the stores.
Idempotent by construction: chunk ids are deterministic, writes overwrite, chunks past
the new count are deleted, and the catalog is written last, so a replay after a crash
at any point converges to the same state without duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from schemas.chunks import Chunk, DocumentRecord
from schemas.document import DocumentDelete, DocumentUpsert
from services.chunking import split_text
from streams.settings import IngestSettings

if TYPE_CHECKING:
    from services.embedding import Embedder
    from stores.base import KeywordStore, VectorStore
    from stores.catalog import Catalog

__all__ = ["IndexOutcome", "Indexer", "content_hash"]


@dataclass(frozen=True, slots=True)
class IndexOutcome:
    """What the indexer did with one document."""

    status: Literal["indexed", "unchanged", "deleted"]
    chunks: int


def content_hash(doc: DocumentUpsert, *, model: str, chunk_size: int, chunk_overlap: int) -> str:
    """A hash of everything that shapes the indexed chunks: same hash, nothing to redo."""
    payload = json.dumps(
        [doc.title, doc.text, doc.metadata, model, chunk_size, chunk_overlap],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class Indexer:
    """Chunks, embeds and writes documents; deletes them everywhere."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        vectors: VectorStore,
        keywords: KeywordStore,
        embedder: Embedder,
        settings: IngestSettings,
        embed_batch_size: int = 32,
    ) -> None:
        self._catalog = catalog
        self._vectors = vectors
        self._keywords = keywords
        self._embedder = embedder
        self._settings = settings
        self._batch = embed_batch_size

    def chunk(self, doc: DocumentUpsert) -> list[Chunk]:
        """The document's chunks, with stable ids ``{tenant}/{id}#{n}``."""
        spans = split_text(
            doc.text, size=self._settings.chunk_size, overlap=self._settings.chunk_overlap
        )
        return [
            Chunk(
                tenant=doc.tenant,
                doc_id=doc.id,
                n=n,
                text=span.text,
                title=doc.title,
                metadata=dict(doc.metadata),
                start=span.start,
            )
            for n, span in enumerate(spans)
        ]

    async def handle(self, doc: DocumentUpsert | DocumentDelete) -> IndexOutcome:
        """Apply one document message."""
        if isinstance(doc, DocumentDelete):
            return await self.delete(doc.tenant, doc.id)
        return await self.upsert(doc)

    async def upsert(self, doc: DocumentUpsert) -> IndexOutcome:
        """Index a new or changed document; answer ``unchanged`` without embedding if same."""
        digest = content_hash(
            doc,
            model=self._embedder.name,
            chunk_size=self._settings.chunk_size,
            chunk_overlap=self._settings.chunk_overlap,
        )
        previous = await self._catalog.get(doc.tenant, doc.id)
        if (
            previous is not None
            and previous.content_hash == digest
            and previous.status == "indexed"
        ):
            return IndexOutcome("unchanged", previous.chunk_count)
        chunks = self.chunk(doc)
        embeddings: list[list[float]] = []
        for i in range(0, len(chunks), self._batch):  # one guarded, timed call per batch
            embeddings += await self._embedder.embed([c.text for c in chunks[i : i + self._batch]])
        await asyncio.gather(
            self._vectors.upsert(chunks, embeddings), self._keywords.upsert(chunks)
        )
        if previous is not None:
            # Drop chunks the new version no longer has (also any left by a crashed attempt).
            await asyncio.gather(
                self._vectors.delete_document(doc.tenant, doc.id, keep=len(chunks)),
                self._keywords.delete_document(doc.tenant, doc.id, keep=len(chunks)),
            )
        await self._catalog.upsert(
            DocumentRecord(
                tenant=doc.tenant,
                doc_id=doc.id,
                content_hash=digest,
                chunk_count=len(chunks),
                status="indexed",
                title=doc.title,
            )
        )
        return IndexOutcome("indexed", len(chunks))

    async def delete(self, tenant: str, doc_id: str) -> IndexOutcome:
        """Remove a document from both stores, then from the catalog."""
        await asyncio.gather(
            self._vectors.delete_document(tenant, doc_id),
            self._keywords.delete_document(tenant, doc_id),
        )
        await self._catalog.delete(tenant, doc_id)
        return IndexOutcome("deleted", 0)
