"""The catalog contract against MemoryCatalog, the unit tests' fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stores.memory_catalog import MemoryCatalog
from tests.contract_catalog import CatalogContract


class TestMemoryCatalog(CatalogContract):
    """The shared contract, in memory."""

    @pytest.fixture
    async def catalog(self) -> AsyncIterator[MemoryCatalog]:
        """A started, empty MemoryCatalog."""
        catalog = MemoryCatalog()
        await catalog.start()
        yield catalog
        await catalog.aclose()
