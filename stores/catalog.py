"""The SQL catalog: one row per indexed document (SQLAlchemy 2 async; PostgreSQL or SQLite).

The indexing service reads it to skip unchanged documents and writes it last, after both
search stores. Every driver and SQLAlchemy exception is translated by ``stores._sql``, the one
place where they become ``StoreUnavailableError`` (retriable) or ``StoreRejectedError``.
``SqlCatalog`` implements the ``stores.base.Catalog`` protocol; ``stores.memory_catalog`` is
its in-memory fake.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from schemas.chunks import DocumentRecord
from stores._sql import SqlStore, UTCDateTime
from streams.settings import Settings

__all__ = ["SqlCatalog", "documents", "metadata"]

_KEYS_PER_QUERY = 1000
"""``get_many`` and ``delete_many`` split larger key lists (bind-parameter limits: SQLite
32766, asyncpg 32767)."""


metadata = MetaData()

documents = Table(
    "documents",
    metadata,
    Column("tenant", String(255), primary_key=True),
    Column("doc_id", String(1024), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Added in 0.2 (added to older databases at start): the last failure of the document.
    Column("last_error", Text, nullable=True),
    Column("last_error_at", UTCDateTime(), nullable=True),
    CheckConstraint("chunk_count >= 0", name="ck_documents_chunk_count"),
)
"""``documents``: the composite primary key (tenant, doc_id) is the document's identity."""


def _record(row: Any) -> DocumentRecord:
    """A ``documents`` row as a DocumentRecord."""
    return DocumentRecord(
        tenant=row.tenant,
        doc_id=row.doc_id,
        content_hash=row.content_hash,
        chunk_count=row.chunk_count,
        status=row.status,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
    )


class SqlCatalog(SqlStore):
    """The document catalog in a SQL database, behind one async engine."""

    def __init__(
        self,
        *,
        url: str,
        pool_size: int = 20,
        max_overflow: int = 40,
        pool_pre_ping: bool = True,
        pool_recycle: int = 3600,
        echo: bool = False,
    ) -> None:
        super().__init__(
            url=url,
            metadata=metadata,
            what="catalog",
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=pool_pre_ping,
            pool_recycle=pool_recycle,
            echo=echo,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlCatalog:
        """A catalog on ``settings.database_url`` with the pool settings."""
        db = settings.database
        return cls(
            url=settings.database_url,
            pool_size=db.pool_size,
            max_overflow=db.max_overflow,
            pool_pre_ping=db.pool_pre_ping,
            pool_recycle=db.pool_recycle,
            echo=db.echo,
        )

    async def get(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        """The record of one document, or None."""
        query = select(documents).where(documents.c.tenant == tenant, documents.c.doc_id == doc_id)
        async with self._begin() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row is not None else None

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], DocumentRecord]:
        """The records of the given ``(tenant, doc_id)`` keys that exist, in one query."""
        unique = builtins.list(dict.fromkeys(keys))
        found: dict[tuple[str, str], DocumentRecord] = {}
        if not unique:
            return found
        key = tuple_(documents.c.tenant, documents.c.doc_id)
        async with self._begin() as conn:
            for i in range(0, len(unique), _KEYS_PER_QUERY):
                query = select(documents).where(key.in_(unique[i : i + _KEYS_PER_QUERY]))
                for row in await conn.execute(query):
                    found[(row.tenant, row.doc_id)] = _record(row)
        return found

    async def upsert(self, record: DocumentRecord) -> DocumentRecord:
        """Insert or update; ``created_at`` is kept, ``updated_at`` becomes now (UTC)."""
        now = datetime.now(UTC)
        changes = {
            "content_hash": record.content_hash,
            "chunk_count": record.chunk_count,
            "status": record.status,
            "title": record.title,
            "updated_at": now,
        }
        values = {
            "tenant": record.tenant,
            "doc_id": record.doc_id,
            "created_at": record.created_at or now,
            **changes,
        }
        async with self._begin() as conn:
            if self._dialect in ("postgresql", "sqlite"):
                await conn.execute(self._on_conflict_upsert(values, changes))
            else:  # portable fallback: update, else insert, in the same transaction
                where = (documents.c.tenant == record.tenant) & (
                    documents.c.doc_id == record.doc_id
                )
                result = await conn.execute(update(documents).where(where).values(**changes))
                if result.rowcount == 0:
                    await conn.execute(insert(documents).values(**values))
            row = (
                await conn.execute(
                    select(documents).where(
                        documents.c.tenant == record.tenant, documents.c.doc_id == record.doc_id
                    )
                )
            ).one()
        return _record(row)

    async def upsert_many(self, records: Sequence[DocumentRecord]) -> None:
        """``upsert`` for many records in one transaction; the last record of a key wins."""
        latest = {(r.tenant, r.doc_id): r for r in records}
        if not latest:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "tenant": r.tenant,
                "doc_id": r.doc_id,
                "created_at": r.created_at or now,
                "content_hash": r.content_hash,
                "chunk_count": r.chunk_count,
                "status": r.status,
                "title": r.title,
                "updated_at": now,
            }
            for r in latest.values()
        ]
        changes = ("content_hash", "chunk_count", "status", "title", "updated_at")
        async with self._begin() as conn:
            if self._dialect in ("postgresql", "sqlite"):
                dialect_insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
                statement = dialect_insert(documents)
                statement = statement.on_conflict_do_update(
                    index_elements=[documents.c.tenant, documents.c.doc_id],
                    set_={name: statement.excluded[name] for name in changes},
                )
                await conn.execute(statement, rows)
            else:  # portable fallback: update, else insert, row by row in this transaction
                for row in rows:
                    where = (documents.c.tenant == row["tenant"]) & (
                        documents.c.doc_id == row["doc_id"]
                    )
                    set_ = {name: row[name] for name in changes}
                    result = await conn.execute(update(documents).where(where).values(**set_))
                    if result.rowcount == 0:
                        await conn.execute(insert(documents).values(**row))

    def _on_conflict_upsert(self, values: dict[str, Any], changes: dict[str, Any]) -> Any:
        """``INSERT ... ON CONFLICT (tenant, doc_id) DO UPDATE`` in this dialect."""
        dialect_insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        statement = dialect_insert(documents).values(**values)
        return statement.on_conflict_do_update(
            index_elements=[documents.c.tenant, documents.c.doc_id],
            set_={name: statement.excluded[name] for name in changes},
        )

    async def delete(self, tenant: str, doc_id: str) -> bool:
        """Remove a document's record; True if there was one."""
        query = documents.delete().where(documents.c.tenant == tenant, documents.c.doc_id == doc_id)
        async with self._begin() as conn:
            result = await conn.execute(query)
        return bool(result.rowcount)

    async def delete_many(self, keys: Sequence[tuple[str, str]]) -> int:
        """Remove the records of the given ``(tenant, doc_id)`` keys in one transaction."""
        unique = builtins.list(dict.fromkeys(keys))
        removed = 0
        if not unique:
            return removed
        key = tuple_(documents.c.tenant, documents.c.doc_id)
        async with self._begin() as conn:
            for i in range(0, len(unique), _KEYS_PER_QUERY):
                query = documents.delete().where(key.in_(unique[i : i + _KEYS_PER_QUERY]))
                removed += (await conn.execute(query)).rowcount or 0
        return removed

    async def record_failure(self, tenant: str, doc_id: str, error: str) -> None:
        """Note why a document could not be indexed: on its row, or a new ``failed`` row."""
        now = datetime.now(UTC)
        failure = {"last_error": error[:2000], "last_error_at": now}
        where = (documents.c.tenant == tenant) & (documents.c.doc_id == doc_id)
        async with self._begin() as conn:
            result = await conn.execute(update(documents).where(where).values(**failure))
            if result.rowcount == 0:
                row = {
                    "tenant": tenant,
                    "doc_id": doc_id,
                    "content_hash": "",
                    "chunk_count": 0,
                    "status": "failed",
                    "title": "",
                    "created_at": now,
                    "updated_at": now,
                    **failure,
                }
                await conn.execute(insert(documents).values(**row))

    async def list(
        self, tenant: str, *, limit: int = 100, offset: int = 0, status: str | None = None
    ) -> builtins.list[DocumentRecord]:
        """A page of a tenant's records (of one ``status``, if given), ordered by ``doc_id``."""
        query = select(documents).where(documents.c.tenant == tenant)
        if status is not None:
            query = query.where(documents.c.status == status)
        query = query.order_by(documents.c.doc_id).limit(limit).offset(offset)
        async with self._begin() as conn:
            return [_record(row) for row in await conn.execute(query)]

    async def summary(self) -> builtins.list[tuple[str, str, int]]:
        """``(tenant, status, documents)`` for every tenant and status, in that order."""
        query = (
            select(documents.c.tenant, documents.c.status, func.count())
            .group_by(documents.c.tenant, documents.c.status)
            .order_by(documents.c.tenant, documents.c.status)
        )
        async with self._begin() as conn:
            return [(t, s, int(n)) for t, s, n in await conn.execute(query)]

    async def count(self, tenant: str | None = None) -> int:
        """How many documents one tenant (or everyone) has."""
        query = select(func.count()).select_from(documents)
        if tenant is not None:
            query = query.where(documents.c.tenant == tenant)
        async with self._begin() as conn:
            return int((await conn.execute(query)).scalar_one())
