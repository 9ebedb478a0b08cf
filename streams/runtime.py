"""The worker's wiring: settings in, started services out.

Built once per worker process; the agents share it. ``start()`` is idempotent and
safe to await from every agent, ``aclose()`` releases every client.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket

import structlog

from services.embedding import Embedder, build_embedder
from services.indexing import Indexer
from services.search import Searcher
from stores.catalog import Catalog
from stores.chroma import ChromaVectorStore
from stores.elastic import ElasticKeywordStore
from streams.settings import Settings
from streams.topics import Topics

__all__ = ["Runtime", "collection_name", "worker_name"]

log = structlog.get_logger(__name__)


def worker_name(settings: Settings) -> str:
    """``RAGSTREAM_WORKER_ID`` or ``host:pid``."""
    return settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"


def collection_name(prefix: str, model: str) -> str:
    """A valid Chroma collection name per embedding model, so vectors never mix."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{prefix}-{model}").strip("-._")
    return slug[:60]


class Runtime:
    """Everything an agent needs, started lazily once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings.kafka)
        self.worker = worker_name(settings)
        self.embedder: Embedder = build_embedder(settings)
        self.catalog = Catalog.from_settings(settings)
        self.keywords = ElasticKeywordStore(
            url=settings.elasticsearch.url,
            index=settings.elasticsearch.index_prefix,
            timeout_s=settings.elasticsearch.timeout_s,
            refresh=settings.elasticsearch.refresh,
            username=settings.elasticsearch.username,
            password=(
                settings.elasticsearch.password.get_secret_value()
                if settings.elasticsearch.password
                else None
            ),
        )
        self.vectors: ChromaVectorStore | None = None
        self.indexer: Indexer | None = None
        self.searcher: Searcher | None = None
        self._started: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start every client once; concurrent callers wait for the same start."""
        failed = self._started is not None and self._started.done() and (
            self._started.cancelled() or self._started.exception() is not None
        )
        if self._started is None or failed:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        await self.embedder.start()
        self.vectors = ChromaVectorStore(
            collection=collection_name(self.settings.chroma.collection_prefix, self.embedder.name),
            path=None if self.settings.chroma.url else str(self.settings.chroma_path),
            url=self.settings.chroma.url or None,
            timeout_s=self.settings.chroma.timeout_s,
        )
        await asyncio.gather(self.catalog.start(), self.keywords.start(), self.vectors.start())
        self.indexer = Indexer(
            catalog=self.catalog,
            vectors=self.vectors,
            keywords=self.keywords,
            embedder=self.embedder,
            settings=self.settings.ingest,
        )
        self.searcher = Searcher(
            vectors=self.vectors,
            keywords=self.keywords,
            embedder=self.embedder,
            settings=self.settings.search,
        )
        log.info(
            "runtime_started",
            worker=self.worker,
            embedder=self.embedder.name,
            chroma=self.settings.chroma.url or str(self.settings.chroma_path),
            elasticsearch=self.settings.elasticsearch.url,
        )

    async def aclose(self) -> None:
        """Close every client; safe to call twice."""
        closers = [self.catalog.aclose(), self.keywords.aclose(), self.embedder.aclose()]
        if self.vectors is not None:
            closers.append(self.vectors.aclose())
        await asyncio.gather(*closers, return_exceptions=True)
