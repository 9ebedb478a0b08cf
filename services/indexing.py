"""The ingest use case: a decoded document in, both stores and the catalog updated.

Sits between the ingest agent (which decodes, acks and dead-letters) and the stores.
Idempotent by construction: chunk ids are deterministic, writes overwrite, chunks past
the new count are deleted, and the catalog is written last, so a replay after a crash
at any point converges to the same state without duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeGuard

from schemas.chunks import Chunk, DocumentRecord
from schemas.document import DocumentDelete, DocumentUpsert
from services.chunking import split_text
from streams import metrics
from streams.errors import RagstreamError
from streams.settings import IngestSettings

if TYPE_CHECKING:
    from services.embedding import Embedder
    from stores.base import Catalog, KeywordStore, VectorStore

__all__ = ["IndexOutcome", "Indexer", "content_hash"]


Doc = DocumentUpsert | DocumentDelete


@dataclass(frozen=True, slots=True)
class IndexOutcome:
    """What the indexer did with one document (``failed`` only from ``handle_many``)."""

    status: Literal["indexed", "unchanged", "deleted", "failed"]
    chunks: int
    error: Exception | None = None
    """Why a document of a batch failed for good (a non-retriable error): dead-letter it."""


def content_hash(doc: DocumentUpsert, *, model: str, chunk_size: int, chunk_overlap: int) -> str:
    """A hash of everything that shapes the indexed chunks: same hash, nothing to redo."""
    payload = json.dumps(
        [doc.title, doc.text, doc.metadata, model, chunk_size, chunk_overlap],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class Indexer:
    """Chunks, embeds and writes documents, one or a batch at a time; deletes them everywhere."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        vectors: VectorStore,
        keywords: KeywordStore,
        embedder: Embedder,
        settings: IngestSettings,
        embed_batch_size: int = 32,
        ahead_embedder: Embedder | None = None,
    ) -> None:
        self._catalog = catalog
        self._vectors = vectors
        self._keywords = keywords
        self._embedder = embedder
        self._ahead_embedder = ahead_embedder or embedder
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

    async def embed_ahead(self, docs: Sequence[Doc]) -> dict[str, list[float]]:
        """Vectors of the chunks ``docs`` look like they need, by chunk text: a look-ahead.

        Run for the next batch while the current one is written. Its catalog read is only a
        hint (the batch before may still be writing the same ids): ``handle_many`` decides
        again, in order, takes the vectors of the texts it needs and embeds any others.
        Embeds with ``ahead_embedder`` (the runtime's does not retry: the in-order pass does).
        """
        upserts = [d for d in docs if isinstance(d, DocumentUpsert)]
        if not upserts:
            return {}
        previous = await self._catalog.get_many([(d.tenant, d.id) for d in upserts])
        texts = {
            chunk.text: None
            for doc in upserts
            if not _indexed_as(previous.get((doc.tenant, doc.id)), self._digest(doc))
            for chunk in self.chunk(doc)
        }
        vectors = await self._embed(list(texts), self._ahead_embedder)
        return dict(zip(texts, vectors, strict=True))

    async def handle_many(
        self, docs: Sequence[Doc], *, embedded: Mapping[str, list[float]] | None = None
    ) -> list[IndexOutcome]:
        """Apply a batch of document messages in order, with one write per store per run.

        ``embedded`` holds vectors by chunk text from ``embed_ahead``; chunks not in it are
        embedded here. A retriable error propagates (the caller holds and retries the whole
        batch: every write is idempotent). Any other error makes the batch fall back to one
        document at a time (that run only), so only the bad document gets a ``failed``
        outcome (and a retriable error met then still propagates).
        """
        outcomes: list[IndexOutcome] = []
        for run in _runs(docs):
            try:
                outcomes += await self._apply_run(run, embedded or {})
            except Exception as exc:
                if isinstance(exc, RagstreamError) and exc.retriable:
                    raise
                outcomes += [await self._handle_one(doc) for doc in run]
        return outcomes

    async def _handle_one(self, doc: Doc) -> IndexOutcome:
        """``handle``, with a non-retriable error turned into a ``failed`` outcome (and noted
        in the catalog, best effort: the dead letter is the record that counts)."""
        try:
            return await self.handle(doc)
        except Exception as exc:
            if isinstance(exc, RagstreamError) and exc.retriable:
                raise
            code = exc.code if isinstance(exc, RagstreamError) else "internal"
            with contextlib.suppress(RagstreamError):
                await self._catalog.record_failure(doc.tenant, doc.id, f"{code}: {exc}")
            return IndexOutcome("failed", 0, error=exc)

    async def _apply_run(
        self, docs: Sequence[Doc], embedded: Mapping[str, list[float]]
    ) -> list[IndexOutcome]:
        """Apply documents with distinct keys: one read, one write per store, one commit."""
        previous = await self._catalog.get_many([(d.tenant, d.id) for d in docs])
        outcomes: dict[int, IndexOutcome] = {}
        changed: list[tuple[DocumentRecord, list[Chunk], bool]] = []
        for i, doc in enumerate(docs):
            before = previous.get((doc.tenant, doc.id))
            if isinstance(doc, DocumentDelete):
                outcomes[i] = IndexOutcome("deleted", 0)
                continue
            digest = self._digest(doc)
            if _indexed_as(before, digest):
                outcomes[i] = IndexOutcome("unchanged", before.chunk_count)
                continue
            chunks = self.chunk(doc)
            record = DocumentRecord(
                tenant=doc.tenant,
                doc_id=doc.id,
                content_hash=digest,
                chunk_count=len(chunks),
                status="indexed",
                title=doc.title,
            )
            changed.append((record, chunks, before is not None))
            outcomes[i] = IndexOutcome("indexed", len(chunks))
        chunks = [c for _, doc_chunks, _ in changed for c in doc_chunks]
        if chunks:
            missing = list({c.text: None for c in chunks if c.text not in embedded})
            fresh = dict(zip(missing, await self._embed(missing), strict=True))
            embeddings = [embedded.get(c.text) or fresh[c.text] for c in chunks]
            await asyncio.gather(
                self._vectors.upsert(chunks, embeddings), self._keywords.upsert(chunks)
            )
            metrics.chunks_written(len(chunks))
        deletes = [d for d in docs if isinstance(d, DocumentDelete)]
        cleanups = [
            store.delete_document(r.tenant, r.doc_id, keep=r.chunk_count)
            for r, _, existed in changed
            if existed  # drop chunks the new version no longer has
            for store in (self._vectors, self._keywords)
        ] + [
            store.delete_document(d.tenant, d.id)
            for d in deletes
            for store in (self._vectors, self._keywords)
        ]
        await asyncio.gather(*cleanups)
        if changed:
            await self._catalog.upsert_many([r for r, _, _ in changed])
        if deletes:
            await self._catalog.delete_many([(d.tenant, d.id) for d in deletes])
        return [outcomes[i] for i in range(len(docs))]

    async def _embed(
        self, texts: Sequence[str], embedder: Embedder | None = None
    ) -> list[list[float]]:
        """Embeddings of ``texts``: one guarded, timed call per ``embed_batch_size``."""
        embedder = embedder or self._embedder
        embeddings: list[list[float]] = []
        for i in range(0, len(texts), self._batch):
            batch = texts[i : i + self._batch]
            with metrics.embedding_call("ingest", len(batch)):
                embeddings += await embedder.embed(batch)
        return embeddings

    def _digest(self, doc: DocumentUpsert) -> str:
        """``content_hash`` with this indexer's model and chunking."""
        return content_hash(
            doc,
            model=self._embedder.name,
            chunk_size=self._settings.chunk_size,
            chunk_overlap=self._settings.chunk_overlap,
        )

    async def handle(self, doc: DocumentUpsert | DocumentDelete) -> IndexOutcome:
        """Apply one document message (a batch of one)."""
        [outcome] = await self._apply_run([doc], {})
        return outcome


def _indexed_as(before: DocumentRecord | None, digest: str) -> TypeGuard[DocumentRecord]:
    """Whether the catalog's ``before`` already indexes the content hashed to ``digest``."""
    return before is not None and before.status == "indexed" and before.content_hash == digest


def _runs(docs: Sequence[Doc]) -> list[list[Doc]]:
    """Consecutive runs without a repeated ``(tenant, id)``: a key's versions stay in order."""
    runs: list[list[Doc]] = []
    seen: set[tuple[str, str]] = set()
    for doc in docs:
        key = (doc.tenant, doc.id)
        if not runs or key in seen:
            runs.append([])
            seen = set()
        runs[-1].append(doc)
        seen.add(key)
    return runs
