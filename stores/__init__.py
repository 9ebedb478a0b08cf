"""Adapters to the outside world, one per system, each translating its client's errors into ours.

``VectorStore`` and ``KeywordStore`` (``stores.base``), ``CatalogStore``
(``stores.catalog_base``) and ``AuthStore`` records (``stores.auth_store``) are the
interfaces the services use. The real adapters live in their own modules
(``stores.chroma``, ``stores.elastic``, ``stores.catalog``, ``stores.auth_store``), imported
by name where they are wired, so code that needs only the in-memory fakes never loads the
(slow to import) client libraries.
"""

from stores.base import Filters, KeywordStore, VectorStore
from stores.memory import MemoryKeywordStore, MemoryVectorStore

__all__ = [
    "Filters",
    "KeywordStore",
    "MemoryKeywordStore",
    "MemoryVectorStore",
    "VectorStore",
]
