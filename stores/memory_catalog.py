"""``MemoryCatalog``: the ``Catalog`` protocol in a dict, for unit tests (same contract suite)."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.chunks import DocumentRecord
from streams.errors import StoreRejectedError

__all__ = ["MemoryCatalog"]


class MemoryCatalog:
    """Documents in a dict keyed by ``(tenant, doc_id)``; nothing persists."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], DocumentRecord] = {}
        self._closed = False

    async def start(self) -> None:
        """Nothing to create; idempotent."""
        self._check_open()

    async def get(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        """The record of one document, or None."""
        self._check_open()
        return self._rows.get((tenant, doc_id))

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], DocumentRecord]:
        """The records of the given keys that exist."""
        self._check_open()
        return {key: self._rows[key] for key in keys if key in self._rows}

    async def upsert(self, record: DocumentRecord) -> DocumentRecord:
        """Insert or update; ``created_at`` is kept, ``updated_at`` becomes now (UTC)."""
        self._check_open()
        _validate(record)
        now = datetime.now(UTC)
        key = (record.tenant, record.doc_id)
        previous = self._rows.get(key)
        created = (previous.created_at if previous else None) or record.created_at or now
        stored = dataclasses.replace(
            record,
            created_at=created.astimezone(UTC),
            updated_at=now,
            last_error=previous.last_error if previous else None,  # kept, as in SQL
            last_error_at=previous.last_error_at if previous else None,
        )
        self._rows[key] = stored
        return stored

    async def upsert_many(self, records: Sequence[DocumentRecord]) -> None:
        """``upsert`` for many records at once (validated first); the last of a key wins."""
        self._check_open()
        latest = {(r.tenant, r.doc_id): r for r in records}
        for record in latest.values():
            _validate(record)
        for record in latest.values():
            await self.upsert(record)

    async def delete_many(self, keys: Sequence[tuple[str, str]]) -> int:
        """Remove the records of the given keys; how many there were."""
        self._check_open()
        return sum(self._rows.pop(key, None) is not None for key in dict.fromkeys(keys))

    async def delete(self, tenant: str, doc_id: str) -> bool:
        """Remove a document's record; True if there was one."""
        self._check_open()
        return self._rows.pop((tenant, doc_id), None) is not None

    async def record_failure(self, tenant: str, doc_id: str, error: str) -> None:
        """Note why a document could not be indexed: on its row, or a new ``failed`` row."""
        self._check_open()
        now = datetime.now(UTC)
        previous = self._rows.get((tenant, doc_id))
        if previous is None:
            previous = DocumentRecord(
                tenant, doc_id, "", 0, "failed", "", created_at=now, updated_at=now
            )
        failed = dataclasses.replace(previous, last_error=error[:2000], last_error_at=now)
        self._rows[(tenant, doc_id)] = failed

    async def list(
        self, tenant: str, *, limit: int = 100, offset: int = 0, status: str | None = None
    ) -> builtins.list[DocumentRecord]:
        """A page of a tenant's records (of one ``status``, if given), ordered by ``doc_id``."""
        self._check_open()
        mine = sorted(
            (
                r
                for (t, _), r in self._rows.items()
                if t == tenant and (status is None or r.status == status)
            ),
            key=_doc_id,
        )
        return mine[offset : offset + limit]

    async def summary(self) -> builtins.list[tuple[str, str, int]]:
        """``(tenant, status, documents)`` for every tenant and status, in that order."""
        self._check_open()
        counts: dict[tuple[str, str], int] = {}
        for (tenant, _), record in self._rows.items():
            counts[(tenant, record.status)] = counts.get((tenant, record.status), 0) + 1
        return [(t, s, n) for (t, s), n in sorted(counts.items())]

    async def count(self, tenant: str | None = None) -> int:
        """How many documents one tenant (or everyone) has."""
        self._check_open()
        return sum(1 for t, _ in self._rows if tenant is None or t == tenant)

    async def ping(self) -> None:
        """Always reachable while open."""
        self._check_open()

    async def aclose(self) -> None:
        """Forget nothing, accept nothing more; idempotent."""
        self._closed = True

    def _check_open(self) -> None:
        """Refuse to work after ``aclose``, as the real catalog does."""
        if self._closed:
            raise RuntimeError("catalog is closed")


def _doc_id(record: DocumentRecord) -> str:
    """Sort key: the document id."""
    return record.doc_id


def _validate(record: DocumentRecord) -> None:
    """What the SQL table's constraints and column types refuse."""
    if record.chunk_count < 0:
        raise StoreRejectedError(f"chunk_count must be >= 0, got {record.chunk_count}")
    if record.created_at is not None and record.created_at.tzinfo is None:
        raise StoreRejectedError("catalog timestamps must be timezone-aware")
