"""The auth store contract on the in-memory fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stores.memory_auth import MemoryAuthStore
from tests.contract_auth_store import AuthStoreContract


class TestMemoryAuthStore(AuthStoreContract):
    """The shared contract on ``MemoryAuthStore``."""

    @pytest.fixture
    async def auth_store(self) -> AsyncIterator[MemoryAuthStore]:
        """A started in-memory auth store."""
        store = MemoryAuthStore()
        await store.start()
        yield store
        await store.aclose()
