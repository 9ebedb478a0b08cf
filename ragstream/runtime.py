"""The worker's wiring: settings in, started services out.

Built once per worker process; the agents share it. ``start()`` is idempotent and
safe to await from every agent, ``aclose()`` releases every client.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from typing import Any

import structlog

from ragstream.breaker_events import BreakerEventPublisher, on_breaker_transition
from ragstream.breaker_follow import BreakerFollower
from services.auth import Authenticator
from services.embedding import Embedder, build_embedder
from services.indexing import Indexer
from services.resilience import Breaker, Guarded
from services.retry import Retrying
from services.search import Searcher
from stores.base import Catalog, KeywordStore
from stores.catalog import SqlCatalog
from stores.chroma import ChromaVectorStore
from stores.elastic import ElasticKeywordStore, chunk_index
from stores.tantivy_keywords import TantivyKeywordStore
from streams import observability
from streams.errors import EmbeddingUnavailableError, StoreUnavailableError
from streams.settings import Settings
from streams.topics import Topics

__all__ = [
    "Runtime",
    "build_keyword_store",
    "build_vector_store",
    "collection_name",
    "worker_name",
]

log = structlog.get_logger(__name__)


def worker_name(settings: Settings) -> str:
    """``RAGSTREAM_WORKER_ID`` or ``host:pid``."""
    return settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"


def collection_name(prefix: str, model: str) -> str:
    """A valid Chroma collection name per embedding model, so vectors never mix."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{prefix}-{model}").strip("-._")
    return slug[:60]


def build_vector_store(
    settings: Settings, model: str, *, timeout_s: float | None = None
) -> ChromaVectorStore:
    """The configured Chroma store for vectors of ``model`` (embedded, or a server)."""
    chroma = settings.chroma
    return ChromaVectorStore(
        collection=collection_name(chroma.collection_prefix, model),
        path=None if chroma.url else str(settings.chroma_path),
        url=chroma.url or None,
        timeout_s=chroma.timeout_s if timeout_s is None else timeout_s,
        auth_token=chroma.auth_token,
        auth_header=chroma.auth_token_transport_header,
        ca_certs=chroma.ca_certs,
    )


def build_keyword_store(settings: Settings) -> KeywordStore:
    """The configured keyword store; the embedded one holds its index's lock from here on.

    Raises ``ConfigError`` when another process holds the embedded index (one worker per
    data dir), so a second worker refuses to start instead of failing later.
    """
    if settings.keywords.store == "embedded":
        store = TantivyKeywordStore(path=settings.keywords_path)
        store.open()
        return store
    es = settings.elasticsearch
    return ElasticKeywordStore(
        url=es.url,
        index=chunk_index(es.index_prefix),
        legacy_index=es.index_prefix,
        timeout_s=es.timeout_s,
        refresh=es.refresh,
        username=es.username,
        password=es.password,
        api_key=es.api_key,
        ca_certs=es.ca_certs,
        verify_certs=es.verify_certs,
        cloud_id=es.cloud_id,
    )


class Runtime:
    """Everything the agents need (it is their ``AgentContext``), started lazily once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings.kafka)
        self.worker = worker_name(settings)
        self.embedder: Embedder = build_embedder(settings)
        # The local model runs on one thread per instance: queries get their own, so a search
        # never waits behind an ingest batch (a remote provider serves both concurrently).
        self.query_embedder: Embedder = (
            build_embedder(settings) if settings.embedding.provider == "local" else self.embedder
        )
        self.catalog: Catalog = SqlCatalog.from_settings(settings)
        # Refuses unusable (or, in production, unsafe) auth settings: the worker does not start.
        self.auth = Authenticator.from_settings(settings)
        # The "elasticsearch" breaker guards whichever keyword store is configured.
        self.keywords = build_keyword_store(settings)
        b = settings.breakers
        embedding = "openai" if settings.embedding.provider == "openai" else "embedding"
        # (breaker name, settings knob prefix, error raised on a timeout)
        specs = [
            (embedding, "openai", EmbeddingUnavailableError),
            ("vectordb", "vectordb", StoreUnavailableError),
            ("elasticsearch", "elasticsearch", StoreUnavailableError),
        ]
        self.breakers = {
            name: Breaker(
                name,
                fail_max=getattr(b, f"{knob}_fail_max"),
                reset_timeout_s=getattr(b, f"{knob}_reset_timeout_s"),
                call_timeout_s=getattr(b, f"{knob}_call_timeout_s"),
                unavailable=unavailable,
            )
            for name, knob, unavailable in specs
        }
        self._embedding_breaker = self.breakers[embedding]
        # Transitions: logged and put on the events topic (the app gives it a producer),
        # and an opening is a Sentry warning.
        self.breaker_events = BreakerEventPublisher(
            self.topics.breaker_events,
            worker=self.worker,
            heartbeat_s=b.heartbeat_s,
            legacy_v1=b.events_v1,
        )
        self.breaker_events.attach(self.breakers.values())
        # BREAKER_FLEET=follow: peers' events move these breakers too (the app runs it).
        self.breaker_follower: BreakerFollower | None = None
        if b.fleet == "follow":
            self.breaker_follower = BreakerFollower(
                self.topics.breaker_events,
                worker=self.worker,
                breakers=self.breakers,
                kafka=settings.kafka,
            )
        for breaker in self.breakers.values():
            breaker.subscribe(on_breaker_transition)
        self.vectors: ChromaVectorStore | None = None
        self._indexer: Indexer | None = None
        self._searcher: Searcher | None = None
        self._started: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start every client once; concurrent callers wait for the same start."""
        failed = (
            self._started is not None
            and self._started.done()
            and (self._started.cancelled() or self._started.exception() is not None)
        )
        if self._started is None or failed:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        await self._embedding_breaker.call(self.embedder.start)
        if self.query_embedder is not self.embedder:
            await self._embedding_breaker.call(self.query_embedder.start)
        self.vectors = build_vector_store(self.settings, self.embedder.name)
        # Every outside call goes through its breaker from here on.
        # Each call is also a Sentry span of the message's transaction.
        embedder = self._embedding_proxy(self.embedder)
        vectors: Any = observability.Traced(
            Guarded(self.vectors, self.breakers["vectordb"]), op="vector"
        )
        keywords: Any = observability.Traced(
            Guarded(self.keywords, self.breakers["elasticsearch"]), op="keyword"
        )
        catalog: Any = observability.Traced(self.catalog, op="catalog")
        await asyncio.gather(self.catalog.start(), keywords.start(), vectors.start())
        await self.auth.start(self.settings)
        # Ingest retries a transient embedding failure (a 429, a 5xx) a few times inside the
        # closed breaker before holding the message; search fails fast and degrades instead.
        ingest_embedder: Any = embedder
        if self.settings.embedding.provider == "openai":
            ingest_embedder = Retrying(embedder, methods=("embed",))
        self._indexer = Indexer(
            catalog=catalog,
            vectors=vectors,
            keywords=keywords,
            embedder=ingest_embedder,
            # The look-ahead never retries: a failure there only means the in-order pass
            # embeds (and retries) itself, so a rate-limited API is not asked twice as often.
            ahead_embedder=embedder,
            settings=self.settings.ingest,
            embed_batch_size=self.settings.embedding.batch_size,
        )
        query_embedder = (
            embedder
            if self.query_embedder is self.embedder
            else self._embedding_proxy(self.query_embedder)
        )
        self._searcher = Searcher(
            vectors=vectors,
            keywords=keywords,
            embedder=query_embedder,
            settings=self.settings.search,
        )
        log.info(
            "runtime_started",
            worker=self.worker,
            embedder=self.embedder.name,
            chroma=self.settings.chroma.url or str(self.settings.chroma_path),
            keywords=(
                str(self.settings.keywords_path)
                if self.settings.keywords.store == "embedded"
                else self.settings.elasticsearch.url
            ),
        )

    def _embedding_proxy(self, inner: Embedder) -> Any:
        """An embedder behind the embedding breaker, each call a Sentry span."""
        guarded = Guarded(inner, self._embedding_breaker, unguarded=("aclose", "start"))
        return observability.Traced(guarded, op="embedding")

    @property
    def started(self) -> bool:
        """Whether ``start()`` has finished (``/health/ready``)."""
        task = self._started
        return task is not None and task.done() and not task.cancelled() and not task.exception()

    @property
    def indexer(self) -> Indexer:
        """The ingest use case; only once ``start()`` has finished."""
        if self._indexer is None:
            raise RuntimeError("the runtime is not started")
        return self._indexer

    @property
    def searcher(self) -> Searcher:
        """The search use case; only once ``start()`` has finished."""
        if self._searcher is None:
            raise RuntimeError("the runtime is not started")
        return self._searcher

    def breaker_tags(self) -> dict[str, str]:
        """``breaker.<name>: <state>`` for every breaker (Sentry tags)."""
        return {f"breaker.{name}": b.state for name, b in self.breakers.items()}

    async def aclose(self) -> None:
        """Close every client; safe to call twice."""
        closers = [
            self.catalog.aclose(),
            self.keywords.aclose(),
            self.embedder.aclose(),
            self.auth.aclose(),
        ]
        if self.query_embedder is not self.embedder:
            closers.append(self.query_embedder.aclose())
        if self.vectors is not None:
            closers.append(self.vectors.aclose())
        await asyncio.gather(*closers, return_exceptions=True)
