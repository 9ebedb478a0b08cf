"""The ``Catalog`` contract: one set of behaviour tests for MemoryCatalog and SqlCatalog.

A test module subclasses ``CatalogContract`` and provides a ``catalog`` fixture yielding a
started catalog (memory, SQLite or PostgreSQL). Every test uses its own random tenant, so a
database shared by a session never leaks rows between tests.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.chunks import DocumentRecord
from stores.base import Catalog
from streams.errors import StoreRejectedError
from tests.protocols import protocol_mismatches

__all__ = ["CatalogContract", "make_record", "new_tenant"]


def new_tenant() -> str:
    """A tenant name no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


def make_record(tenant: str, doc_id: str, *, text: str = "v1", **changes: Any) -> DocumentRecord:
    """An indexed document record with the sha256 of ``text`` as its hash."""
    fields: dict[str, Any] = {
        "tenant": tenant,
        "doc_id": doc_id,
        "content_hash": hashlib.sha256(text.encode()).hexdigest(),
        "chunk_count": 3,
        "status": "indexed",
        "title": f"Title of {doc_id}",
    } | changes
    return DocumentRecord(**fields)


def _is_utc(moment: datetime | None) -> bool:
    """True for a timezone-aware datetime at UTC offset zero."""
    return moment is not None and moment.utcoffset() == timedelta(0)


class CatalogContract:
    """Behaviour every catalog implementation shares."""

    async def test_missing_document_is_none(self, catalog: Any) -> None:
        """``get`` of an unknown document returns None rather than raising."""
        assert await catalog.get(new_tenant(), "nope") is None

    async def test_upsert_inserts_with_utc_timestamps(self, catalog: Any) -> None:
        """A new record is stored with every field and tz-aware UTC created/updated times."""
        tenant = new_tenant()
        before = datetime.now(UTC)
        stored = await catalog.upsert(make_record(tenant, "guide/intro.md"))
        fetched = await catalog.get(tenant, "guide/intro.md")
        assert fetched == stored
        assert (fetched.content_hash, fetched.chunk_count, fetched.status, fetched.title) == (
            hashlib.sha256(b"v1").hexdigest(),
            3,
            "indexed",
            "Title of guide/intro.md",
        )
        assert _is_utc(fetched.created_at) and _is_utc(fetched.updated_at)
        assert before - timedelta(seconds=5) <= fetched.created_at <= fetched.updated_at
        assert fetched.updated_at <= datetime.now(UTC) + timedelta(seconds=5)

    async def test_upsert_updates_and_keeps_created_at(self, catalog: Any) -> None:
        """A second upsert replaces the fields, keeps created_at and moves updated_at forward."""
        tenant = new_tenant()
        first = await catalog.upsert(make_record(tenant, "d"))
        second = await catalog.upsert(
            make_record(tenant, "d", text="v2", chunk_count=7, status="failed", title="New")
        )
        assert second.created_at == first.created_at
        assert second.updated_at >= first.updated_at
        assert (second.content_hash, second.chunk_count, second.status, second.title) == (
            hashlib.sha256(b"v2").hexdigest(),
            7,
            "failed",
            "New",
        )
        assert await catalog.get(tenant, "d") == second
        assert await catalog.count(tenant) == 1

    async def test_same_doc_id_in_two_tenants_is_two_documents(self, catalog: Any) -> None:
        """The key is (tenant, doc_id): tenants never overwrite each other."""
        a, b = new_tenant(), new_tenant()
        await catalog.upsert(make_record(a, "same", title="A"))
        await catalog.upsert(make_record(b, "same", title="B"))
        assert (await catalog.get(a, "same")).title == "A"
        assert (await catalog.get(b, "same")).title == "B"

    async def test_delete_reports_whether_something_was_deleted(self, catalog: Any) -> None:
        """``delete`` is True once, then False, and the record is gone."""
        tenant = new_tenant()
        await catalog.upsert(make_record(tenant, "d"))
        assert await catalog.delete(tenant, "d") is True
        assert await catalog.delete(tenant, "d") is False
        assert await catalog.get(tenant, "d") is None

    async def test_get_many_returns_only_existing_keys(self, catalog: Any) -> None:
        """``get_many`` maps each found key to its record and omits the missing ones."""
        a, b = new_tenant(), new_tenant()
        for tenant, doc in [(a, "1"), (a, "2"), (b, "1")]:
            await catalog.upsert(make_record(tenant, doc, title=f"{tenant}:{doc}"))
        found = await catalog.get_many([(a, "1"), (b, "1"), (a, "missing"), (b, "2"), (a, "1")])
        assert set(found) == {(a, "1"), (b, "1")}
        assert found[(b, "1")].title == f"{b}:1"
        assert await catalog.get_many([]) == {}

    async def test_upsert_many_inserts_updates_and_keeps_created_at(self, catalog: Any) -> None:
        """``upsert_many`` writes new and existing records at once; the last of a key wins."""
        a, b = new_tenant(), new_tenant()
        first = await catalog.upsert(make_record(a, "old"))
        await catalog.upsert_many(
            [
                make_record(a, "old", text="v2", chunk_count=5, title="Old v2"),
                make_record(a, "new"),
                make_record(b, "new", title="first"),
                make_record(b, "new", title="second", chunk_count=0),
            ]
        )
        found = await catalog.get_many([(a, "old"), (a, "new"), (b, "new")])
        assert set(found) == {(a, "old"), (a, "new"), (b, "new")}
        old = found[(a, "old")]
        assert (old.content_hash, old.chunk_count, old.title) == (
            hashlib.sha256(b"v2").hexdigest(),
            5,
            "Old v2",
        )
        assert old.created_at == first.created_at and old.updated_at >= first.updated_at
        assert (found[(b, "new")].title, found[(b, "new")].chunk_count) == ("second", 0)
        assert all(_is_utc(r.created_at) and _is_utc(r.updated_at) for r in found.values())
        assert await catalog.count(b) == 1
        await catalog.upsert_many([])

    async def test_upsert_many_is_all_or_nothing(self, catalog: Any) -> None:
        """One impossible record rejects the whole ``upsert_many`` and nothing is stored."""
        tenant = new_tenant()
        with pytest.raises(StoreRejectedError):
            await catalog.upsert_many(
                [make_record(tenant, "ok"), make_record(tenant, "bad", chunk_count=-1)]
            )
        assert await catalog.count(tenant) == 0

    async def test_delete_many_counts_what_it_removed(self, catalog: Any) -> None:
        """``delete_many`` removes the existing keys, ignores missing ones and counts once."""
        a, b = new_tenant(), new_tenant()
        for tenant, doc in [(a, "1"), (a, "2"), (b, "1")]:
            await catalog.upsert(make_record(tenant, doc))
        assert await catalog.delete_many([(a, "1"), (b, "1"), (a, "missing"), (a, "1")]) == 2
        assert set(await catalog.get_many([(a, "1"), (a, "2"), (b, "1")])) == {(a, "2")}
        assert await catalog.delete_many([]) == 0

    async def test_list_pages_in_doc_id_order(self, catalog: Any) -> None:
        """``list`` returns one tenant's records sorted by doc_id, paged by limit and offset."""
        tenant, other = new_tenant(), new_tenant()
        ids = [f"doc{n:02d}" for n in range(7)]
        for doc in reversed(ids):
            await catalog.upsert(make_record(tenant, doc))
        await catalog.upsert(make_record(other, "doc00"))
        assert [r.doc_id for r in await catalog.list(tenant)] == ids
        assert [r.doc_id for r in await catalog.list(tenant, limit=3, offset=2)] == ids[2:5]
        assert await catalog.list(tenant, limit=3, offset=7) == []
        assert await catalog.list(new_tenant()) == []

    async def test_count_per_tenant_and_overall(self, catalog: Any) -> None:
        """``count`` counts one tenant's documents, or all of them without a tenant."""
        a, b = new_tenant(), new_tenant()
        total_before = await catalog.count()
        for doc in ("1", "2", "3"):
            await catalog.upsert(make_record(a, doc))
        await catalog.upsert(make_record(b, "1"))
        assert await catalog.count(a) == 3
        assert await catalog.count(b) == 1
        assert await catalog.count(new_tenant()) == 0
        assert await catalog.count() == total_before + 4

    async def test_unicode_and_long_ids_round_trip(self, catalog: Any) -> None:
        """Non-ASCII titles and ids with slashes, spaces and 500 characters survive."""
        tenant = new_tenant()
        doc = "wiki/Ünïcödé page/" + "x" * 480
        await catalog.upsert(make_record(tenant, doc, title="Café — 東京"))
        assert (await catalog.get(tenant, doc)).title == "Café — 東京"

    async def test_negative_chunk_count_is_rejected(self, catalog: Any) -> None:
        """An impossible record is refused with StoreRejectedError and nothing is stored."""
        tenant = new_tenant()
        with pytest.raises(StoreRejectedError):
            await catalog.upsert(make_record(tenant, "d", chunk_count=-1))
        assert await catalog.get(tenant, "d") is None

    async def test_methods_match_the_protocol(self, catalog: Any) -> None:
        """Every ``Catalog`` method exists, is async and takes the protocol's parameters."""
        assert protocol_mismatches(catalog, Catalog) == []

    async def test_start_is_idempotent_and_ping_answers_until_closed(self, catalog: Any) -> None:
        """A second ``start`` keeps the rows; ``ping`` answers while open, refuses once closed."""
        tenant = new_tenant()
        await catalog.upsert(make_record(tenant, "d"))
        await catalog.start()
        await catalog.start()
        assert (await catalog.get(tenant, "d")) is not None
        assert await catalog.ping() is None
        await catalog.aclose()
        await catalog.aclose()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            await catalog.ping()
        with pytest.raises(RuntimeError, match="closed"):
            await catalog.upsert(make_record(tenant, "e"))

    async def test_record_failure_notes_the_error_and_keeps_an_indexed_row(
        self, catalog: Any
    ) -> None:
        """A failure of an unknown document is a ``failed`` row; of an indexed one, a note."""
        tenant = new_tenant()
        await catalog.record_failure(tenant, "new", "store_rejected: mapping")
        failed = await catalog.get(tenant, "new")
        assert failed.status == "failed" and failed.chunk_count == 0
        assert failed.last_error == "store_rejected: mapping" and _is_utc(failed.last_error_at)
        indexed = await catalog.upsert(make_record(tenant, "old"))
        assert indexed.last_error is None
        await catalog.record_failure(tenant, "old", "embedding_rejected: too long")
        noted = await catalog.get(tenant, "old")
        assert (noted.status, noted.chunk_count, noted.content_hash) == (
            "indexed",
            indexed.chunk_count,
            indexed.content_hash,
        )
        assert noted.last_error == "embedding_rejected: too long"
        again = await catalog.upsert(make_record(tenant, "old", text="v2"))
        assert again.last_error == "embedding_rejected: too long"  # history, until the next

    async def test_list_by_status_and_summary_per_tenant(self, catalog: Any) -> None:
        """``list(status=...)`` filters; ``summary`` counts documents per tenant and status."""
        a, b = new_tenant(), new_tenant()
        for doc in ("1", "2"):
            await catalog.upsert(make_record(a, doc))
        await catalog.record_failure(a, "3", "internal: boom")
        await catalog.upsert(make_record(b, "1"))
        assert [r.doc_id for r in await catalog.list(a, status="failed")] == ["3"]
        assert [r.doc_id for r in await catalog.list(a, status="indexed")] == ["1", "2"]
        rows = [row for row in await catalog.summary() if row[0] in (a, b)]
        assert rows == sorted([(a, "failed", 1), (a, "indexed", 2), (b, "indexed", 1)])
