"""Adapters to the outside world, one per system, each translating its client's errors into ours.

``VectorStore``, ``KeywordStore``, ``Catalog`` and ``AuthStore`` (``stores.base``) are the
interfaces the services use. The real adapters live in their own modules
(``ChromaVectorStore`` in ``stores.chroma``, ``ElasticKeywordStore`` in ``stores.elastic``,
``SqlCatalog`` in ``stores.catalog``, ``SqlAuthStore`` in ``stores.auth_store``), imported by
name where they are wired, so code that needs only the in-memory fakes (``stores.memory``,
``stores.memory_catalog``, ``stores.memory_auth``) never loads the (slow to import) client
libraries.
"""

from stores.base import AuthStore, Catalog, Filters, KeywordStore, VectorStore
from stores.memory import MemoryKeywordStore, MemoryVectorStore

__all__ = [
    "AuthStore",
    "Catalog",
    "Filters",
    "KeywordStore",
    "MemoryKeywordStore",
    "MemoryVectorStore",
    "VectorStore",
]
