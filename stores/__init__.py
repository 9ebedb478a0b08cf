"""Adapters to the outside world, one per system, each translating its client's errors into ours.

``VectorStore`` and ``KeywordStore`` are the interfaces the services use; the Chroma and
Elasticsearch adapters implement them for real, the memory ones for unit tests. The real
adapters are imported on first use, so code that only needs the fakes never loads the
(slow to import) client libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stores.base import Filters, KeywordStore, VectorStore
from stores.memory import MemoryKeywordStore, MemoryVectorStore

if TYPE_CHECKING:
    from stores.chroma import ChromaVectorStore
    from stores.elastic import ElasticKeywordStore

__all__ = [
    "ChromaVectorStore",
    "ElasticKeywordStore",
    "Filters",
    "KeywordStore",
    "MemoryKeywordStore",
    "MemoryVectorStore",
    "VectorStore",
]

_LAZY = {"ChromaVectorStore": "stores.chroma", "ElasticKeywordStore": "stores.elastic"}


def __getattr__(name: str) -> Any:
    """Import a real adapter the first time it is asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stores' has no attribute {name!r}")
