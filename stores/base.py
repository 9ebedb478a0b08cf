"""The store interfaces the services talk to, one protocol per kind of store.

``VectorStore`` (Chroma), ``KeywordStore`` (Elasticsearch), ``Catalog`` (one row per indexed
document) and ``AuthStore`` (API keys, users, sessions; with its records), all SQL-backed in
production. Naming: ``<Kind>`` is the protocol, ``<System><Kind>`` the real adapter
(``ChromaVectorStore``, ``ElasticKeywordStore``, ``SqlCatalog``, ``SqlAuthStore``) and
``Memory<Kind>`` its in-memory fake in ``stores.memory*``; both pass the same contract suite
(``tests/contract_*.py``, class ``<Kind>Contract``).

Sits at the bottom of the flow: ``services`` depend on these protocols, never on a client
library. Every search store keeps chunks by ``chunk.id`` (replays overwrite), filters every
read by tenant, and raises only ``StoreUnavailableError`` (retriable) or ``StoreRejectedError``;
the SQL stores do the same.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from schemas.chunks import Chunk, DocumentRecord, ScoredChunk
from streams.errors import StoreRejectedError

__all__ = [
    "METADATA_PREFIX",
    "ApiKeyRecord",
    "AuthStore",
    "Catalog",
    "Filters",
    "KeywordStore",
    "RefreshTokenRecord",
    "SessionRecord",
    "UserRecord",
    "VectorStore",
    "check_filters",
]

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
        content: bool = True,
    ) -> list[ScoredChunk]:
        """The ``top_k`` nearest chunks of the tenant, best first; score = cosine similarity.

        ``content=False``: each hit's chunk carries its identity only (tenant, doc_id, n;
        empty text, title and metadata), which is cheaper; for a caller that keeps a few of
        many candidates (fusion) and fetches those with ``get``.
        """
        ...

    async def get(self, tenant: str, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The tenant's chunks with these ids, in the order given; an id the tenant does not
        have (deleted meanwhile, or another tenant's) is left out."""
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


class Catalog(Protocol):
    """One record per indexed document, keyed by ``(tenant, doc_id)``: what is indexed, as what."""

    async def start(self) -> None:
        """Create the table if missing; idempotent."""
        ...

    async def get(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        """The record of one document, or None."""
        ...

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], DocumentRecord]:
        """The records of the given keys that exist."""
        ...

    async def upsert(self, record: DocumentRecord) -> DocumentRecord:
        """Insert or update; ``created_at`` is kept, ``updated_at`` becomes now (UTC)."""
        ...

    async def upsert_many(self, records: Sequence[DocumentRecord]) -> None:
        """``upsert`` many records at once, all or nothing; the last of a key wins."""
        ...

    async def delete(self, tenant: str, doc_id: str) -> bool:
        """Remove a document's record; True if there was one."""
        ...

    async def delete_many(self, keys: Sequence[tuple[str, str]]) -> int:
        """Remove the records of the given keys; how many there were."""
        ...

    async def list(
        self, tenant: str, *, limit: int = 100, offset: int = 0, status: str | None = None
    ) -> builtins.list[DocumentRecord]:
        """A page of a tenant's records (of one ``status``, if given), ordered by ``doc_id``."""
        ...

    async def count(self, tenant: str | None = None) -> int:
        """How many documents one tenant (or everyone) has."""
        ...

    async def record_failure(self, tenant: str, doc_id: str, error: str) -> None:
        """Note why a document failed for good: a ``failed`` row, or a note on an indexed one."""
        ...

    async def summary(self) -> builtins.list[tuple[str, str, int]]:
        """``(tenant, status, documents)`` for every tenant and status, in that order."""
        ...

    async def ping(self) -> None:
        """Cheap health probe; raises ``StoreUnavailableError`` (``RuntimeError`` once closed)."""
        ...

    async def aclose(self) -> None:
        """Release the connections; idempotent. Every later call raises ``RuntimeError``."""
        ...


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key: ``key_id`` is the public part of the key, ``secret_hash`` its bcrypt hash."""

    key_id: str
    tenant: str
    scopes: tuple[str, ...]
    secret_hash: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user who may ``ragstream login``; tokens carry ``sub = user:<username>``."""

    username: str
    tenant: str
    permissions: tuple[str, ...]
    password_hash: str
    created_at: datetime
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A login session: the family of refresh tokens one login started (``sid`` in tokens)."""

    session_id: str
    username: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    """One refresh token (by SHA-256 digest), usable once."""

    token_hash: str
    session_id: str
    expires_at: datetime
    created_at: datetime
    used_at: datetime | None = None


class AuthStore(Protocol):
    """API keys, users, login sessions and refresh tokens; only hashes of secrets."""

    async def start(self) -> None:
        """Create the tables if missing; idempotent."""
        ...

    async def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; a duplicate ``key_id`` is ``StoreRejectedError``."""
        ...

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """One key (revoked or not), or None."""
        ...

    async def list_api_keys(self, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        """Every key (of one tenant), oldest first."""
        ...

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        """Revoke a key; True if it existed and was not revoked yet."""
        ...

    async def add_user(self, record: UserRecord) -> None:
        """Store a new user; an existing username is ``StoreRejectedError``."""
        ...

    async def get_user(self, username: str) -> UserRecord | None:
        """One user, or None."""
        ...

    async def list_users(self, tenant: str | None = None) -> builtins.list[UserRecord]:
        """Every user (of one tenant), by name."""
        ...

    async def update_user(
        self,
        username: str,
        *,
        disabled: bool | None = None,
        permissions: tuple[str, ...] | None = None,
        password_hash: str | None = None,
    ) -> bool:
        """Change some fields of a user; True if the user exists."""
        ...

    async def add_session(self, record: SessionRecord) -> None:
        """Start a login session; its user must exist (else ``StoreRejectedError``)."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """One session, or None."""
        ...

    async def revoke_session(self, session_id: str, *, at: datetime) -> bool:
        """Revoke a session; True if it was live."""
        ...

    async def add_refresh_token(self, record: RefreshTokenRecord) -> None:
        """Store a refresh token's digest; its session must exist (else ``StoreRejectedError``)."""
        ...

    async def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        """One refresh token by digest, or None."""
        ...

    async def use_refresh_token(self, token_hash: str, *, at: datetime) -> bool:
        """Mark a refresh token used; True only for the first caller."""
        ...

    async def ping(self) -> None:
        """Cheap health probe; raises ``StoreUnavailableError`` (``RuntimeError`` once closed)."""
        ...

    async def aclose(self) -> None:
        """Release the connections; idempotent. Every later call raises ``RuntimeError``."""
        ...
