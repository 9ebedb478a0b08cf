"""In-memory fakes of both store interfaces, for unit tests of services and agents.

They honour the same contract as the real stores (the shared contract suite proves it):
writes by chunk id, tenant isolation, exact-match filters, cosine similarity for vectors and a
plain term-frequency score for keywords. Set ``error`` to make every call raise it (an outage).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace

from schemas.chunks import Chunk, ScoredChunk, identity
from stores.base import METADATA_PREFIX, Filters, check_filters
from streams.errors import RagstreamError, StoreRejectedError

__all__ = ["MemoryKeywordStore", "MemoryVectorStore"]

_TOKEN = re.compile(r"\w+")
_TITLE_BOOST = 2.0


def _copy(chunk: Chunk) -> Chunk:
    """A chunk whose metadata dict the caller cannot mutate behind our back."""
    return replace(chunk, metadata=dict(chunk.metadata))


def _same(stored: object, wanted: object) -> bool:
    """Exact match, where a bool never equals an int."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return type(stored) is type(wanted) and stored == wanted
    return stored == wanted


def _matches(chunk: Chunk, tenant: str, doc_id: str | None, filters: Filters) -> bool:
    """Whether ``chunk`` belongs to the tenant (and document) and passes every filter."""
    if chunk.tenant != tenant or (doc_id is not None and chunk.doc_id != doc_id):
        return False
    for key, wanted in filters.items():
        if key == "doc_id":
            stored: object = chunk.doc_id
        else:
            name = key.removeprefix(METADATA_PREFIX)
            if name not in chunk.metadata:
                return False
            stored = chunk.metadata[name]
        if not _same(stored, wanted):
            return False
    return True


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity (0 when either vector is null)."""
    if len(a) != len(b):
        raise StoreRejectedError(f"embedding has dimension {len(b)}, expected {len(a)}")
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


class _MemoryBase:
    """Chunks by id, the lifecycle and the outage switch shared by both fakes."""

    def __init__(self) -> None:
        self._chunks: dict[str, Chunk] = {}
        self.started = False
        self.closed = False
        self.error: RagstreamError | None = None
        """Set to make every call raise it (simulate an outage or a rejection)."""

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    async def start(self) -> None:
        """Mark the store started; idempotent."""
        self._check()
        self.started = True

    async def delete_document(self, tenant: str, doc_id: str, *, keep: int = 0) -> None:
        """Remove the document's chunks with ``n >= keep``."""
        self._check()
        for key, chunk in list(self._chunks.items()):
            if chunk.tenant == tenant and chunk.doc_id == doc_id and chunk.n >= keep:
                del self._chunks[key]

    async def count(self, tenant: str, doc_id: str | None = None) -> int:
        """How many chunks the tenant (or one of its documents) has."""
        self._check()
        return sum(_matches(c, tenant, doc_id, {}) for c in self._chunks.values())

    async def ping(self) -> None:
        """Raise the configured error, if any."""
        self._check()

    async def aclose(self) -> None:
        """Mark the store closed; idempotent."""
        self.closed = True


class MemoryVectorStore(_MemoryBase):
    """A ``VectorStore`` in a dict: exact cosine similarity over every chunk of the tenant."""

    def __init__(self) -> None:
        super().__init__()
        self._vectors: dict[str, list[float]] = {}

    async def upsert(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None:
        """Write chunks and their embeddings by chunk id."""
        self._check()
        if len(chunks) != len(embeddings):
            raise StoreRejectedError("chunks and embeddings differ in length")
        for chunk, vector in zip(chunks, embeddings, strict=True):
            self._chunks[chunk.id] = _copy(chunk)
            self._vectors[chunk.id] = [float(x) for x in vector]

    async def delete_document(self, tenant: str, doc_id: str, *, keep: int = 0) -> None:
        """Remove the document's chunks with ``n >= keep`` and their vectors."""
        await super().delete_document(tenant, doc_id, keep=keep)
        for key in set(self._vectors) - set(self._chunks):
            del self._vectors[key]

    async def query(
        self,
        tenant: str,
        embedding: Sequence[float],
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
        content: bool = True,
    ) -> list[ScoredChunk]:
        """The ``top_k`` most similar chunks of the tenant, best first."""
        self._check()
        check_filters(filters)
        hits = [
            ScoredChunk(
                _copy(chunk) if content else identity(key), _cosine(self._vectors[key], embedding)
            )
            for key, chunk in self._chunks.items()
            if _matches(chunk, tenant, None, filters)
        ]
        hits.sort(key=lambda hit: hit.score, reverse=True)
        return hits[: max(top_k, 0)]

    async def get(self, tenant: str, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The tenant's chunks with these ids, in the order given."""
        self._check()
        found = (self._chunks.get(key) for key in chunk_ids)
        return [_copy(chunk) for chunk in found if chunk is not None and chunk.tenant == tenant]


class MemoryKeywordStore(_MemoryBase):
    """A ``KeywordStore`` in a dict: score = term frequency in text + boosted frequency in title."""

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Write chunks by chunk id."""
        self._check()
        for chunk in chunks:
            self._chunks[chunk.id] = _copy(chunk)

    async def search(
        self,
        tenant: str,
        query: str,
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
    ) -> list[ScoredChunk]:
        """The ``top_k`` chunks of the tenant sharing most terms with ``query``, best first."""
        self._check()
        check_filters(filters)
        terms = set(_TOKEN.findall(query.lower()))
        hits = []
        for chunk in self._chunks.values():
            if not terms or not _matches(chunk, tenant, None, filters):
                continue
            text = _TOKEN.findall(chunk.text.lower())
            title = _TOKEN.findall(chunk.title.lower())
            score = sum(text.count(t) + _TITLE_BOOST * title.count(t) for t in terms)
            if score > 0:
                hits.append(ScoredChunk(_copy(chunk), float(score)))
        hits.sort(key=lambda hit: hit.score, reverse=True)
        return hits[: max(top_k, 0)]
