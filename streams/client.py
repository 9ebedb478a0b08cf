"""The Python request-reply client: search and ingest over topics.

One producer and one reply consumer per client, shared by every request in flight.
Each client instance owns a private single-partition reply topic, read by manual
assignment from its beginning (no consumer group to join, no reliance on
``seek_to_end``), and the client is ready only once that consumer has its position:
a request is never sent before its reply could be read. Where clients may not create
topics, ``reply_topic=`` names a pre-created one instead: it is read from its end (every
partition) and never deleted. TLS and SASL come from the same ``KafkaSettings``
(``streams.connection``), checked with one connection before anything else.

    async with SearchClient(settings.kafka, token=jwt) as client:  # or api_key="rsk_..."
        result = await client.search("how do I rotate keys?", tenant="acme", top_k=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Self

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from schemas.document import DocumentDelete, DocumentUpsert
from schemas.headers import Headers
from schemas.ingest import IngestResult
from schemas.search import SearchRequest, SearchResult
from streams.codec import encode, header
from streams.connection import aiokafka_kwargs, check_connection, describe_kafka_error
from streams.errors import DependencyError, RemoteError, RequestTimeoutError
from streams.settings import KafkaSettings
from streams.topics import Topics, create_topic, ensure_topics

__all__ = ["IngestClient", "ReplyChannel", "SearchClient"]

log = structlog.get_logger(__name__)


class ReplyChannel:
    """A producer plus a private reply topic, matching replies to requests by correlation id."""

    def __init__(self, kafka: KafkaSettings, *, reply_topic: str | None = None) -> None:
        self._kafka = kafka
        self.reply_topic = reply_topic or kafka.topic(f"replies.{uuid.uuid4().hex[:16]}")
        self._owns_topic = reply_topic is None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self, *, check: bool = True) -> None:
        """Create the reply topic, start both clients, and wait until replies can be read.

        ``check``: first open one connection with a deadline (``check_connection``), so a
        misconfiguration is one clear error within seconds (skip it if just done).
        """
        if check:
            await check_connection(self._kafka)
        kwargs = aiokafka_kwargs(self._kafka)
        try:
            if self._owns_topic:
                await create_topic(self._kafka, self.reply_topic)
            self._producer = AIOKafkaProducer(**kwargs, acks="all", linger_ms=0)
            await self._producer.start()
            self._consumer = AIOKafkaConsumer(
                **kwargs,
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=self._kafka.fetch_max_wait_ms,
            )
            await self._consumer.start()
            if self._owns_topic:
                tps = [TopicPartition(self.reply_topic, 0)]
                self._consumer.assign(tps)
                await self._consumer.seek_to_beginning(*tps)
            else:  # shared and long-lived: only replies from now on, on every partition
                tps = await self._shared_partitions()
                self._consumer.assign(tps)
                await self._consumer.seek_to_end(*tps)
            for tp in tps:
                await self._consumer.position(tp)  # readiness: the offset is resolved
        except KafkaError as exc:
            await self.aclose()
            raise DependencyError(describe_kafka_error(exc, self._kafka)) from exc
        self._reader = asyncio.create_task(self._read_replies(), name="ragstream-replies")

    async def _shared_partitions(self) -> list[TopicPartition]:
        """The partitions of a pre-created reply topic; a missing topic is a clear error."""
        assert self._consumer is not None
        try:
            partitions = await self._consumer._client._wait_on_metadata(self.reply_topic)
        except UnknownTopicOrPartitionError:
            partitions = None
        if not partitions:
            raise DependencyError(
                f"reply topic {self.reply_topic!r} does not exist or is not readable "
                "(create it, grant this client Read on it, or drop reply_topic=)"
            )
        return [TopicPartition(self.reply_topic, p) for p in sorted(partitions)]

    async def _read_replies(self) -> None:
        assert self._consumer is not None
        try:
            async for record in self._consumer:
                cid = header(record.headers, Headers.CORRELATION_ID)
                future = self._pending.pop(cid, None) if cid else None
                if future is not None and not future.done():
                    future.set_result(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("reply_reader_died", error=repr(exc))
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DependencyError(f"reply consumer died: {exc!r}"))
            self._pending.clear()

    def expect(self, correlation_id: str) -> asyncio.Future[Any]:
        """Register interest in a reply before its request is sent."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        return future

    def forget(self, correlation_id: str) -> None:
        """Stop waiting for a reply (timeout or cancellation)."""
        self._pending.pop(correlation_id, None)

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        correlation_id: str,
        extra_headers: Iterable[tuple[str, bytes]] = (),
    ) -> None:
        """Send a request whose replies come to this channel's topic."""
        if self._producer is None or self._closed:
            raise RuntimeError("the client is not started (use 'async with')")
        headers = [
            (Headers.REPLY_TO, self.reply_topic.encode()),
            (Headers.CORRELATION_ID, correlation_id.encode()),
            *extra_headers,
        ]
        try:
            await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        except KafkaError as exc:
            raise DependencyError(f"cannot send to {topic}: {exc!r}") from exc

    async def request(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        timeout_s: float,
        extra_headers: Iterable[tuple[str, bytes]] = (),
    ) -> Any:
        """Send one request and wait for its reply record."""
        correlation_id = uuid.uuid4().hex
        future = self.expect(correlation_id)
        try:
            await self.send(
                topic,
                key=key,
                value=value,
                correlation_id=correlation_id,
                extra_headers=extra_headers,
            )
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"no reply to {correlation_id} on {self.reply_topic} within {timeout_s}s (is "
                f"a worker running and consuming {topic}?)",
                correlation_id=correlation_id,
            ) from exc
        finally:
            self.forget(correlation_id)

    async def aclose(self) -> None:
        """Stop the reader and both clients, delete the reply topic; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if self._owns_topic and self._producer is not None:
            await self._delete_reply_topic()

    async def _delete_reply_topic(self) -> None:
        admin = AIOKafkaAdminClient(**aiokafka_kwargs(self._kafka))
        with contextlib.suppress(Exception):
            await admin.start()
            await admin.delete_topics([self.reply_topic])
        with contextlib.suppress(Exception):
            await admin.close()


class _Client:
    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        token: str | None = None,
        api_key: str | None = None,
        reply_topic: str | None = None,
    ) -> None:
        """``reply_topic``: a pre-created topic for replies (clients that may not create
        topics); by default each client creates a private one and deletes it on close."""
        if token and api_key:
            raise ValueError("pass either token= or api_key=, not both")
        self._kafka = kafka
        self.topics = Topics.from_settings(kafka)
        self._channel = ReplyChannel(kafka, reply_topic=reply_topic)
        self._auth = [(Headers.AUTHORIZATION, f"Bearer {token}".encode())] if token else []
        if api_key:
            self._auth = [(Headers.API_KEY, api_key.encode())]

    async def __aenter__(self) -> Self:
        await self._channel.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the producer, the reply consumer and the reply topic."""
        await self._channel.aclose()


class SearchClient(_Client):
    """Search over topics; many requests may be in flight at once."""

    async def search(
        self,
        query: str,
        *,
        tenant: str,
        top_k: int = 5,
        mode: str = "hybrid",
        filters: Mapping[str, Any] | None = None,
        timeout_s: float = 10.0,
    ) -> SearchResult:
        """Send a query and return the worker's result; raises ``RemoteError`` on ``error``."""
        request = SearchRequest(
            query=query,
            tenant=tenant,
            top_k=top_k,
            mode=mode,  # type: ignore[arg-type]
            filters=dict(filters or {}),
        )
        record = await self._channel.request(
            self.topics.search_requests,
            key=None,
            value=encode(request),
            timeout_s=timeout_s,
            extra_headers=self._auth,
        )
        result = SearchResult.model_validate_json(record.value)
        if result.status == "error" and result.error is not None:
            raise RemoteError(result.error.message, code=result.error.code)
        return result


class IngestClient(_Client):
    """Produce documents; optionally wait for each one's ingest result."""

    async def __aenter__(self) -> Self:
        await ensure_topics(self._kafka)  # checks the connection first
        await self._channel.start(check=False)
        return self

    async def submit(self, doc: DocumentUpsert | DocumentDelete) -> asyncio.Future[IngestResult]:
        """Send a document; the returned future resolves to its ``IngestResult``."""
        correlation_id = uuid.uuid4().hex
        raw = self._channel.expect(correlation_id)
        try:
            await self._channel.send(
                self.topics.documents,
                key=doc.id.encode(),
                value=encode(doc),
                correlation_id=correlation_id,
                extra_headers=self._auth,
            )
        except BaseException:
            self._channel.forget(correlation_id)
            raise
        result: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        # A caller that stops waiting (timeout, cancel) must not leave the id registered.
        result.add_done_callback(lambda _: self._channel.forget(correlation_id))

        def _done(f: asyncio.Future[Any]) -> None:
            if result.done():
                return
            if f.cancelled():
                result.cancel()
            elif f.exception() is not None:
                result.set_exception(f.exception())  # type: ignore[arg-type]
            else:
                result.set_result(IngestResult.model_validate_json(f.result().value))

        raw.add_done_callback(_done)
        return result

    async def ingest(
        self, doc: DocumentUpsert | DocumentDelete, *, timeout_s: float = 60.0
    ) -> IngestResult:
        """Send one document and wait for its result."""
        future = await self.submit(doc)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"no ingest result for {doc.id!r} within {timeout_s}s"
            ) from exc
