"""Fakes for unit tests of the services and agents: no broker, no store, no model.

Naming: a ``Fake*`` stands in for something outside the package (a Kafka message, a
producer, an embedding model, the worker's runtime); the in-memory stores are the package's
own ``stores.memory*`` ``Memory*`` classes, which pass the same contract suites as the real
stores. ``FakeContext`` is an ``AgentContext`` built from the real ``Indexer`` and
``Searcher`` over those memory stores, so the agents run their real code path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.chunks import Chunk, ScoredChunk
from schemas.headers import Headers
from services.auth import Authenticator
from services.indexing import Indexer
from services.search import Searcher
from stores.base import Filters
from stores.memory import MemoryKeywordStore, MemoryVectorStore
from stores.memory_catalog import MemoryCatalog
from streams.codec import HeaderList
from streams.settings import IngestSettings, KafkaSettings, SearchSettings, Settings
from streams.topics import Topics

__all__ = [
    "FakeContext",
    "FakeEmbedder",
    "FakeMessage",
    "FakeProducer",
    "FlakyCall",
    "RecordingVectorStore",
    "Sent",
    "fake_settings",
]


class FakeEmbedder:
    """A deterministic embedder: hashed word counts, L2-normalised (no model needed).

    ``calls`` records the size of each ``embed`` call; set ``error`` to make calls raise it.
    """

    name = "bag-of-words-16"
    dimensions = 16

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.error: Exception | None = None

    async def start(self) -> None:
        """Nothing to load."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text; equal texts give equal vectors, in every process."""
        if self.error is not None:
            raise self.error
        self.calls.append(len(texts))
        out = []
        for text in texts:
            vec = [0.0] * self.dimensions
            for word in text.lower().split():
                digest = hashlib.md5(word.encode()).hexdigest()  # noqa: S324 - not security
                vec[int(digest, 16) % self.dimensions] += 1.0
            norm = sum(v * v for v in vec) ** 0.5 or 1.0
            out.append([v / norm for v in vec])
        return out

    async def aclose(self) -> None:
        """Nothing to release."""


class RecordingVectorStore(MemoryVectorStore):
    """A ``MemoryVectorStore`` that records its queries (``asked``: top_k; ``contents``: the
    ``content`` flag) and fetches (``fetched``); ``get_error`` makes ``get`` raise it, and ids
    in ``forget`` are gone by the time ``get`` runs (a delete racing a search)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []
        self.contents: list[bool] = []
        self.fetched: list[list[str]] = []
        self.get_error: Exception | None = None
        self.forget: set[str] = set()

    async def query(
        self,
        tenant: str,
        embedding: Sequence[float],
        *,
        top_k: int,
        filters: Filters = {},  # noqa: B006 - read-only Mapping default
        content: bool = True,
    ) -> list[ScoredChunk]:
        self.asked.append(top_k)
        self.contents.append(content)
        return await super().query(tenant, embedding, top_k=top_k, filters=filters, content=content)

    async def get(self, tenant: str, chunk_ids: Sequence[str]) -> list[Chunk]:
        self.fetched.append(list(chunk_ids))
        if self.get_error is not None:
            raise self.get_error
        return [c for c in await super().get(tenant, chunk_ids) if c.id not in self.forget]


@dataclass(frozen=True, slots=True)
class FakeMessage:
    """What the agents read of a Kafka message (Faust's ``Message`` has the same fields)."""

    value: bytes | None
    key: bytes | None = None
    headers: HeaderList = field(default_factory=list)
    topic: str = "ragstream.documents"
    partition: int = 0
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Sent:
    """One message a ``FakeProducer`` was asked to send."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: HeaderList

    def header(self, name: str) -> bytes | None:
        """The value of header ``name``, or None."""
        return dict(self.headers).get(name)


class FakeProducer:
    """A ``streams.messaging.Sender`` that records every send (as the broker would have it).

    ``fail_topics`` names topics whose sends raise (a reply topic that does not exist);
    the first ``fail`` sends raise ``error`` (a broker outage). ``calls`` counts attempts.
    """

    def __init__(
        self,
        *,
        fail_topics: Sequence[str] = (),
        fail: int = 0,
        error: BaseException | None = None,
    ) -> None:
        self.sent: list[Sent] = []
        self.fail_topics = set(fail_topics)
        self.fail = fail
        self.error = error or ConnectionError("broker down")
        self.calls = 0

    async def send_and_wait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> None:
        """Record the message (or raise for a failing topic, or while the broker is down)."""
        self.calls += 1
        if self.calls <= self.fail:
            raise self.error
        if topic in self.fail_topics:
            raise RuntimeError(f"unknown topic {topic!r}")
        self.sent.append(Sent(topic, key, value, partition, list(headers or [])))

    def values(self) -> list[Any]:
        """The JSON value of every message sent, in order."""
        return [json.loads(s.value) if s.value is not None else None for s in self.sent]

    def on(self, topic: str) -> list[Sent]:
        """What was sent to ``topic``, in order."""
        return [s for s in self.sent if s.topic == topic]


def fake_settings(**ingest: Any) -> Settings:
    """Settings for fakes: small chunks, millisecond retry pauses, topic prefix ``t``."""
    ingest_settings = {"chunk_size": 60, "chunk_overlap": 10, "retry_initial_s": 0.001}
    ingest_settings |= {"retry_max_s": 0.004, **ingest}
    return Settings(
        kafka=KafkaSettings(topic_prefix="t"),
        ingest=IngestSettings(**ingest_settings),
        search=SearchSettings(),
    )


class FakeContext:
    """An ``AgentContext``: the real indexer and searcher over memory stores and a fake model.

    ``auth`` defaults to authentication disabled (every message is anonymous and allowed).
    """

    def __init__(self, *, settings: Settings | None = None, auth: Any = None) -> None:
        self.settings = settings or fake_settings()
        self.topics = Topics.from_settings(self.settings.kafka)
        self.auth = auth or Authenticator(required=False)
        self.vectors = MemoryVectorStore()
        self.keywords = MemoryKeywordStore()
        self.catalog = MemoryCatalog()
        self.embedder = FakeEmbedder()
        self.indexer = Indexer(
            catalog=self.catalog,
            vectors=self.vectors,
            keywords=self.keywords,
            embedder=self.embedder,
            settings=self.settings.ingest,
            embed_batch_size=4,
        )
        self.searcher = Searcher(
            vectors=self.vectors,
            keywords=self.keywords,
            embedder=self.embedder,
            settings=self.settings.search,
        )

    def breaker_tags(self) -> dict[str, str]:
        """No breakers in front of the fakes."""
        return {}

    def document(self, value: bytes | None, **kw: Any) -> FakeMessage:
        """A message on this context's documents topic (``_message``'s keywords)."""
        return self._message(self.topics.documents, value, **kw)

    def search_request(self, value: bytes | None, **kw: Any) -> FakeMessage:
        """A message on this context's search-requests topic (``_message``'s keywords)."""
        return self._message(self.topics.search_requests, value, **kw)

    def _message(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        offset: int = 0,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        headers: HeaderList | None = None,
    ) -> FakeMessage:
        return FakeMessage(
            value,
            key=key,
            headers=_with(headers, correlation_id=correlation_id, reply_to=reply_to),
            topic=topic,
            offset=offset,
        )


def _with(
    headers: HeaderList | None, *, correlation_id: str | None, reply_to: str | None
) -> HeaderList:
    out = list(headers or [])
    if correlation_id is not None:
        out.append((Headers.CORRELATION_ID, correlation_id.encode()))
    if reply_to is not None:
        out.append((Headers.REPLY_TO, reply_to.encode()))
    return out


class FlakyCall:
    """An async call that raises ``errors`` in turn (``repeat`` rounds of them), then succeeds.

    ``calls`` counts the attempts; the call after the last error returns ``value``.
    """

    def __init__(self, *errors: BaseException, repeat: int = 1, value: Any = "ok") -> None:
        self.errors = errors
        self.failures = len(errors) * repeat
        self.value = value
        self.calls = 0

    async def __call__(self) -> Any:
        """One attempt."""
        self.calls += 1
        if self.calls <= self.failures:
            raise self.errors[(self.calls - 1) % len(self.errors)]
        return self.value
