"""The catalog contract against real databases: SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from stores.catalog import SqlCatalog
from streams.errors import StoreUnavailableError
from tests.contract_catalog import CatalogContract, make_record, new_tenant


class TestSQLiteCatalog(CatalogContract):
    """The shared contract on a SQLite file per test."""

    @pytest.fixture
    async def catalog(self, sqlite_url: str) -> AsyncIterator[SqlCatalog]:
        """A started SqlCatalog on a new SQLite file."""
        catalog = SqlCatalog(url=sqlite_url)
        await catalog.start()
        yield catalog
        await catalog.aclose()


class TestPostgresCatalog(CatalogContract):
    """The shared contract on the session's PostgreSQL database."""

    @pytest.fixture
    async def catalog(self, postgres_url: str) -> AsyncIterator[SqlCatalog]:
        """A started SqlCatalog on the session database (tests use distinct tenants)."""
        catalog = SqlCatalog(url=postgres_url, pool_size=5, max_overflow=5)
        await catalog.start()
        yield catalog
        await catalog.aclose()


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "call",
    [
        pytest.param("start", id="start"),
        pytest.param("ping", id="ping"),
        pytest.param("get", id="get"),
    ],
)
async def test_postgres_on_a_closed_port_is_unavailable(call: str) -> None:
    """Nothing listening: every call fails as StoreUnavailableError, never a driver error."""
    catalog = SqlCatalog(url=f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/test")
    arguments = {"start": (), "ping": (), "get": ("t", "d")}[call]
    with pytest.raises(StoreUnavailableError) as info:
        await getattr(catalog, call)(*arguments)
    assert info.value.retriable
    assert info.value.__cause__ is not None
    await catalog.aclose()


async def test_postgres_missing_database_is_unavailable(postgres_url: str) -> None:
    """A database that does not exist is mapped too (the operator must create it)."""
    url = postgres_url.rsplit("/", 1)[0] + "/ragstream_no_such_db"
    catalog = SqlCatalog(url=url)
    with pytest.raises(StoreUnavailableError):
        await catalog.ping()
    await catalog.aclose()


@pytest.mark.parametrize(
    "backend", [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]
)
async def test_concurrent_upserts_of_one_document_end_with_one_row(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """Twenty racing upserts of the same key and two racing starts leave exactly one row."""
    url = request.getfixturevalue(f"{backend}_url")
    first, second = SqlCatalog(url=url), SqlCatalog(url=url)
    await asyncio.gather(first.start(), second.start())
    tenant = new_tenant()
    await asyncio.gather(
        *(
            (first if n % 2 else second).upsert(make_record(tenant, "d", chunk_count=n))
            for n in range(20)
        )
    )
    assert await first.count(tenant) == 1
    record = await second.get(tenant, "d")
    assert record is not None and record.chunk_count in range(20)
    await asyncio.gather(first.aclose(), second.aclose())
