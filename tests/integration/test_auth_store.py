"""The auth store contract against real databases: SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from stores.auth_store import SqlAuthStore
from streams.errors import StoreUnavailableError
from tests.contract_auth_store import AuthStoreContract


class TestSQLiteAuthStore(AuthStoreContract):
    """The shared contract on a SQLite file per test."""

    @pytest.fixture
    async def auth_store(self, sqlite_url: str) -> AsyncIterator[SqlAuthStore]:
        """A started SqlAuthStore on a new SQLite file."""
        store = SqlAuthStore(url=sqlite_url)
        await store.start()
        yield store
        await store.aclose()


class TestPostgresAuthStore(AuthStoreContract):
    """The shared contract on the session's PostgreSQL database."""

    @pytest.fixture
    async def auth_store(self, postgres_url: str) -> AsyncIterator[SqlAuthStore]:
        """A started SqlAuthStore on the session database (tests use random ids)."""
        store = SqlAuthStore(url=postgres_url, pool_size=2, max_overflow=2)
        await store.start()
        yield store
        await store.aclose()


async def test_postgres_on_a_closed_port_is_unavailable() -> None:
    """Nothing listening: StoreUnavailableError (retriable), never a driver error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = SqlAuthStore(url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test")
    with pytest.raises(StoreUnavailableError) as info:
        await store.get_api_key("k")
    assert info.value.retriable and info.value.__cause__ is not None
    await store.aclose()
