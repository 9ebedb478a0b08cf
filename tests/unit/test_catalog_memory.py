"""The catalog contract against MemoryCatalog, the unit tests' fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stores.catalog_memory import MemoryCatalog
from tests.catalog_contract import CatalogContract


class TestMemoryCatalog(CatalogContract):
    """The shared contract, in memory."""

    @pytest.fixture
    async def catalog(self) -> AsyncIterator[MemoryCatalog]:
        """A started, empty MemoryCatalog."""
        catalog = MemoryCatalog()
        await catalog.start()
        yield catalog
        await catalog.aclose()
