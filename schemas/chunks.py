"""Internal records shared by services and stores (not on the wire)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Chunk", "DocumentRecord", "ScoredChunk", "chunk_id", "identity"]


def chunk_id(tenant: str, doc_id: str, n: int) -> str:
    """The deterministic id of chunk ``n``: replays overwrite instead of duplicating."""
    return f"{tenant}/{doc_id}#{n}"


def identity(chunk_id_: str) -> Chunk:
    """The chunk a ``chunk_id`` names, identity only (empty text, title and metadata).

    Unambiguous: a tenant never contains ``/`` and ``n`` is the part after the last ``#``.
    """
    head, _, n = chunk_id_.rpartition("#")
    tenant, _, doc_id = head.partition("/")
    if not (tenant and doc_id and n.isdigit()):
        raise ValueError(f"not a chunk id: {chunk_id_!r}")
    return Chunk(tenant=tenant, doc_id=doc_id, n=int(n), text="")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document, as both stores keep it."""

    tenant: str
    doc_id: str
    n: int
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    start: int = 0
    """Character offset of the chunk in the document text."""

    @property
    def id(self) -> str:
        """``{tenant}/{doc_id}#{n}``."""
        return chunk_id(self.tenant, self.doc_id, self.n)


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A chunk a store found, with that store's score (higher is better)."""

    chunk: Chunk
    score: float


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """The catalog's row for one document."""

    tenant: str
    doc_id: str
    content_hash: str
    chunk_count: int
    status: str
    title: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_error: str | None = None
    """Why the document last failed to index (``error code: message``), if it ever did."""
    last_error_at: datetime | None = None
