"""The two store interfaces the services talk to: vectors (Chroma) and keywords (Elasticsearch).

Sits at the bottom of the flow: ``services`` depend on these protocols, never on a client
library. Every implementation keeps chunks by ``chunk.id`` (replays overwrite), filters every
read by tenant, and raises only ``StoreUnavailableError`` (retriable) or ``StoreRejectedError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from schemas.chunks import Chunk, ScoredChunk
from streams.errors import StoreRejectedError

__all__ = ["METADATA_PREFIX", "Filters", "KeywordStore", "VectorStore", "check_filters"]

Filters = Mapping[str, str | int | float | bool]
"""Exact-match filters: keys ``doc_id`` or ``metadata.<key>``, scalar values."""

METADATA_PREFIX = "metadata."
"""Filter keys on user metadata start with this."""

_SCALARS = (str, int, float, bool)


def check_filters(filters: Filters) -> None:
    """Refuse filter keys or values no store can express (callers validate; this is a backstop)."""
    for key, value in filters.items():
        is_meta = key.startswith(METADATA_PREFIX) and len(key) > len(METADATA_PREFIX)
        if key != "doc_id" and not is_meta:
            raise StoreRejectedError(f"unsupported filter key {key!r}")
        if not isinstance(value, _SCALARS):
            raise StoreRejectedError(f"filter {key!r} must be a scalar")


@runtime_checkable
class VectorStore(Protocol):
    """Chunks with their embeddings, searched by cosine similarity within one tenant."""

    async def start(self) -> None:
        """Create the collection (cosine space) if missing; idempotent."""
        ...

    async def upsert(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None:
        """Write chunks by id: overwrite, never duplicate."""
        ...

    async def delete_document(self, tenant: str, doc_id: str, *, keep: int = 0) -> None:
        """Remove the document's chunks with ``n >= keep`` (``keep=0``: all of them)."""
        ...

    async def query(
        self,
        tenant: str,
        embedding: Sequence[float],
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
    ) -> list[ScoredChunk]:
        """The ``top_k`` nearest chunks of the tenant, best first; score = cosine similarity."""
        ...

    async def count(self, tenant: str, doc_id: str | None = None) -> int:
        """How many chunks the tenant (or one of its documents) has."""
        ...

    async def ping(self) -> None:
        """Cheap health probe; raises ``StoreUnavailableError``."""
        ...

    async def aclose(self) -> None:
        """Release the client; idempotent."""
        ...


@runtime_checkable
class KeywordStore(Protocol):
    """Chunks indexed for BM25 full-text search within one tenant."""

    async def start(self) -> None:
        """Create the index with its explicit mapping if missing; idempotent."""
        ...

    async def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Bulk-write chunks by id: overwrite, never duplicate."""
        ...

    async def delete_document(self, tenant: str, doc_id: str, *, keep: int = 0) -> None:
        """Remove the document's chunks with ``n >= keep`` (``keep=0``: all of them)."""
        ...

    async def search(
        self,
        tenant: str,
        query: str,
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
    ) -> list[ScoredChunk]:
        """The ``top_k`` best BM25 matches of the tenant on text (and title), best first."""
        ...

    async def count(self, tenant: str, doc_id: str | None = None) -> int:
        """How many chunks the tenant (or one of its documents) has."""
        ...

    async def ping(self) -> None:
        """Cheap health probe; raises ``StoreUnavailableError``."""
        ...

    async def aclose(self) -> None:
        """Release the client; idempotent."""
        ...
