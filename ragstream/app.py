"""The Faust app: topics, the two agents, and the worker entry point.

``build_app(settings)`` wires a ``Runtime`` (stores, embedder, services) into a Faust
app whose agents are thin loops over ``agents.ingest`` and ``agents.search``.
``run_worker(settings)`` creates the topics and runs it until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import faust
import structlog

from agents.ingest import ReadBatch, embed_ahead, index_documents, read_documents
from agents.search import handle_search
from ragstream import endpoints
from ragstream.runtime import Runtime
from schemas.headers import Headers
from streams import faust_transport, metrics, observability
from streams.batching import batches, prepared_ahead
from streams.codec import header
from streams.connection import faust_credentials
from streams.messaging import hold_until_done
from streams.settings import Settings
from streams.topics import ensure_topics

__all__ = ["build_app", "run_worker"]

log = structlog.get_logger(__name__)


def _raw_topic(app: faust.App, name: str) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )


def _offset_ranges(messages: Sequence[Any]) -> str:
    """``partition:first-last`` per partition of a batch, e.g. ``0:10-14,3:7-7``."""
    ranges: dict[int, tuple[int, int]] = {}
    for m in messages:
        low, high = ranges.get(m.partition, (m.offset, m.offset))
        ranges[m.partition] = (min(low, m.offset), max(high, m.offset))
    return ",".join(f"{p}:{low}-{high}" for p, (low, high) in sorted(ranges.items()))


def _batch_log_context(messages: Sequence[Any]) -> Any:
    """Where a batch came from, on every log line written while it is read or indexed."""
    first = messages[0]
    return structlog.contextvars.bound_contextvars(
        topic=first.topic,
        partition=first.partition,
        offset=first.offset,
        offsets=_offset_ranges(messages),
        batch=len(messages),
    )


def _faust_dir(settings: Settings) -> Path:
    """``{data dir}/faust/{group}``, created (Faust makes only its last level)."""
    path = settings.data_dir / "faust" / settings.kafka.consumer_group
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_app(settings: Settings, runtime: Runtime | None = None) -> faust.App:
    """A Faust app with the ingest and search agents, sharing one runtime."""
    kafka = settings.kafka
    faust_transport.configure_fetch_wait(kafka.fetch_max_wait_ms)
    brokers = ";".join(
        f"{faust_transport.SCHEME}://{server.strip()}"
        for server in kafka.bootstrap_servers.split(",")
    )
    app = faust.App(
        kafka.consumer_group,
        broker=brokers,
        broker_credentials=faust_credentials(kafka),
        store="memory://",
        # Faust's own files (none with memory:// tables, but it makes the directory): under the
        # data dir, not ``{group}-data`` in whatever directory the worker was started from.
        datadir=str(_faust_dir(settings)),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=kafka.session_timeout_s,
        broker_rebalance_timeout=kafka.rebalance_timeout_s,
        broker_heartbeat_interval=max(kafka.session_timeout_s / 4, 1.0),
        broker_request_timeout=max(kafka.session_timeout_s * 3, 40.0),
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_linger_ms=0,
        stream_wait_empty=False,
    )
    rt = runtime or Runtime(settings)
    app.ragstream_runtime = rt  # type: ignore[attr-defined]
    rt.breaker_events.use_producer(lambda: app.producer)
    rt.breaker_events.use_partitions(lambda: _assigned(app))
    rt.breaker_events.on_death(
        lambda exc: observability.capture_exception(exc, tags={"component": "breaker-events"})
    )

    async def ready() -> None:
        # A store that is down at start holds the agents; it does not crash them.
        await hold_until_done(
            rt.start,
            initial_s=settings.ingest.retry_initial_s,
            max_s=settings.ingest.retry_max_s,
            what="startup",
        )

    documents = _raw_topic(app, rt.topics.documents)
    requests = _raw_topic(app, rt.topics.search_requests)

    # Acks are manual. Faust's own iteration acks the in-flight event when the stream is
    # torn down (a SIGTERM while a message is held for an outage would commit it unread);
    # here an event is acked only after its work, or its dead letter, is on the broker.
    # Batches are cut here, on the no-ack stream (not with ``take_events``, which acks in a
    # ``finally``): each batch is processed, its results sent, then its events acked in order.
    @app.agent(documents, name="ingest", concurrency=1)
    async def ingest(stream: Any) -> None:
        await ready()
        manual = stream.noack()
        cut = batches(
            manual.events().__aiter__(),
            max_items=settings.ingest.batch_max,
            within_s=settings.ingest.batch_within_ms / 1000,
        )

        async def read(events: list[Any]) -> ReadBatch:
            # One step ahead: batch k + 1 is read and its chunks embedded while batch k is
            # written, so the model never waits for the stores. Indexing stays in order.
            messages = [event.message for event in events]
            with _batch_log_context(messages):
                batch = await read_documents(rt, messages)
                await embed_ahead(rt, batch)
            return batch

        async with aclosing(cut), aclosing(prepared_ahead(cut, read)) as ahead:
            async for events, batch in ahead:
                messages = [event.message for event in events]
                first = messages[0]
                with (
                    _batch_log_context(messages),
                    observability.message_transaction(
                        "ingest", first, tags={"batch_size": len(messages)}
                    ),
                ):
                    await index_documents(rt, app.producer, batch)
                for event in events:
                    await manual.ack(event)

    @app.agent(requests, name="search", concurrency=settings.search.concurrency)
    async def search(stream: Any) -> None:
        await ready()
        manual = stream.noack()
        async for event in manual.events():
            msg = event.message
            with (
                structlog.contextvars.bound_contextvars(
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    correlation_id=header(msg.headers, Headers.CORRELATION_ID),
                ),
                observability.message_transaction("search", msg),
            ):
                await handle_search(rt, app.producer, msg)
            await manual.ack(event)

    @app.task
    async def _warm_up() -> None:
        await ready()

    @app.task
    async def _publish_breaker_events() -> None:
        # Not behind ready(): a store down at startup is exactly what must be published.
        # If this raises, Faust crashes the worker: the publisher's death is loud.
        observability.enable_asyncio()
        await rt.breaker_events.run()

    @app.task
    async def _breaker_heartbeat() -> None:
        await rt.breaker_events.run_heartbeat()

    if rt.breaker_follower is not None:
        follower = rt.breaker_follower

        @app.task
        async def _follow_breakers() -> None:
            # BREAKER_FLEET=follow: a plain consumer from the end; if it dies, the worker does.
            await follower.run()

    return app


def _assigned(app: faust.App) -> list[str]:
    """The worker's assigned partitions as ``topic:partition`` (none before it joined)."""
    consumer = app._consumer
    if consumer is None:
        return []
    return [f"{tp.topic}:{tp.partition}" for tp in consumer.assignment()]


def run_worker(settings: Settings) -> None:
    """Check the connection, create the topics, then run the worker until a signal stops it."""
    observability.init_sentry(settings.sentry)
    ops = settings.operations
    metrics.configure(enabled=ops.metrics, tenant_label=ops.metrics_tenant_label)
    asyncio.run(ensure_topics(settings.kafka))  # a bad Kafka setting raises here: one line
    app = build_app(settings)
    runtime: Runtime = app.ragstream_runtime  # type: ignore[attr-defined]
    # Probes and /metrics, served on their own thread from before the consumer starts.
    http = endpoints.for_worker(app, runtime, ops)
    if ops.http_port:
        http.start()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _close(app: Any, **kwargs: Any) -> None:
        runtime.breaker_events.retire()  # tombstones: this worker leaves the breaker board
        await runtime.breaker_events.drain(timeout_s=5.0)
        await runtime.aclose()
        http.stop()

    worker = faust.Worker(
        app, loglevel=settings.log_level.lower(), quiet=True, override_logging=False
    )
    worker.execute_from_commandline()
