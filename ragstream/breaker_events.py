"""Breaker transitions as events on ``{prefix}.breaker-events``.

Each transition is sent as ``ragstream.breaker-event.v2`` keyed ``breaker@worker`` (so
compaction keeps one row per worker), then, for one release, as the v1 event keyed by
breaker name. ``heartbeat`` restates every breaker's state as v2 every
``BREAKER_HEARTBEAT_S``, and ``retire`` (a clean shutdown) sends a tombstone per v2 key: a
reader drops a worker that left, or went silent for three heartbeats.

Sits between the breakers (``services.resilience``) and Kafka. pybreaker's listeners are
synchronous and may fire on any thread, so ``on_transition`` only logs and enqueues; one
background task (``run``) drains the queue in order and sends each event with retries, so
no event is lost while the broker is reachable. If that task dies of anything but
cancellation, its death is loud: logged at error, reported to Sentry, and re-raised
(under Faust, an ``app.task`` that raises crashes the worker).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from faust.exceptions import NotReady

from schemas.breaker import BreakerEvent, BreakerEventV2, fleet_key
from services.resilience import Breaker, Transition
from streams.codec import encode
from streams.messaging import Sender
from streams.observability import capture_message
from streams.scrub import scrub_text

__all__ = ["BreakerEventPublisher", "on_breaker_transition", "to_event", "to_event_v2"]

log = structlog.get_logger(__name__)

# Broker trouble (or a producer still starting): retry. Anything else is a bug: die loudly.
_TRANSIENT = (KafkaError, OSError, TimeoutError, NotReady)


def to_event(transition: Transition, *, worker: str) -> BreakerEvent:
    """The wire event of one transition (``error`` scrubbed)."""
    return BreakerEvent.model_validate(
        {
            "breaker": transition.breaker,
            "from": transition.old,
            "to": transition.new,
            "at": transition.at,
            "fail_counter": transition.fail_counter,
            "worker": worker,
            "error": scrub_text(transition.error) if transition.error else None,
        }
    )


def to_event_v2(
    transition: Transition,
    *,
    worker: str,
    partitions: Iterable[str] = (),
    heartbeat_s: float | None = None,
    heartbeat: bool = False,
) -> BreakerEventV2:
    """The v2 wire event of one transition (or heartbeat), ``error`` scrubbed."""
    return BreakerEventV2.model_validate(
        {
            "breaker": transition.breaker,
            "from": transition.old,
            "to": transition.new,
            "at": transition.at,
            "fail_counter": transition.fail_counter,
            "worker": worker,
            "error": scrub_text(transition.error) if transition.error else None,
            "reason": transition.reason,
            "partitions": sorted(partitions),
            "heartbeat": heartbeat,
            "heartbeat_s": heartbeat_s,
        }
    )


# What the queue carries: (key, value); a None value is a tombstone.
_Record = tuple[bytes, bytes | None]


def on_breaker_transition(transition: Transition) -> None:
    """Breaker listener: an opening is a Sentry message at warning level."""
    if transition.new != "open":
        return
    capture_message(
        f"circuit breaker {transition.breaker!r} opened",
        level="warning",
        tags={"breaker": transition.breaker, "breaker.from": transition.old},
        context={
            "breaker": {
                "fail_counter": transition.fail_counter,
                "error": transition.error,
                "at": transition.at.isoformat(),
            }
        },
    )


class BreakerEventPublisher:
    """Queue of breaker events and the one task that publishes them."""

    def __init__(
        self,
        topic: str,
        *,
        worker: str,
        producer: Callable[[], Sender] | None = None,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
        on_death: Callable[[BaseException], object] | None = None,
        heartbeat_s: float | None = None,
        legacy_v1: bool = True,
    ) -> None:
        self.topic = topic
        self.worker = worker
        self.heartbeat_s = heartbeat_s
        self.legacy_v1 = legacy_v1
        self._breakers: list[Breaker] = []
        self._partitions: Callable[[], Iterable[str]] = lambda: ()
        self._retired = False
        self._producer = producer
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._on_death = on_death
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Record] = asyncio.Queue()
        self._early: list[_Record] = []  # from a thread before the loop is known
        self._lock = threading.Lock()
        self.published = 0

    def attach(self, breakers: Iterable[Breaker]) -> None:
        """Subscribe to every breaker's transitions."""
        for breaker in breakers:
            self._breakers.append(breaker)
            breaker.subscribe(self.on_transition)

    def use_partitions(self, partitions: Callable[[], Iterable[str]]) -> None:
        """Where the worker's assigned partitions (``topic:partition``) are read from."""
        self._partitions = partitions

    def _current_partitions(self) -> list[str]:
        try:
            return sorted(self._partitions())
        except Exception as exc:  # a consumer not started yet: no partitions to report
            log.debug("breaker_events_no_partitions", error=repr(exc)[:200])
            return []

    def on_transition(self, transition: Transition) -> None:
        """Listener callback (sync, any thread): log the change and enqueue its events."""
        event = to_event(transition, worker=self.worker)
        (log.warning if transition.new == "open" else log.info)(
            "breaker_transition",
            breaker=event.breaker,
            old_state=event.from_,
            new_state=event.to,
            fail_counter=event.fail_counter,
            error=event.error,
            reason=transition.reason,
        )
        v2 = to_event_v2(
            transition,
            worker=self.worker,
            partitions=self._current_partitions(),
            heartbeat_s=self.heartbeat_s,
        )
        records: list[_Record] = [(fleet_key(v2.breaker, self.worker).encode(), encode(v2))]
        if self.legacy_v1:
            records.append((event.breaker.encode(), encode(event)))
        self._enqueue(records)

    def heartbeat(self) -> int:
        """Enqueue a v2 heartbeat (the current state) per breaker; returns how many."""
        records: list[_Record] = []
        partitions = self._current_partitions()
        for breaker in self._breakers:
            status = breaker.status()
            now = Transition(
                breaker.name,
                status.state,
                status.state,
                datetime.now(UTC),
                status.fail_counter,
                status.last_failure,
            )
            event = to_event_v2(
                now,
                worker=self.worker,
                partitions=partitions,
                heartbeat_s=self.heartbeat_s,
                heartbeat=True,
            )
            records.append((fleet_key(breaker.name, self.worker).encode(), encode(event)))
        self._enqueue(records)
        return len(records)

    async def run_heartbeat(self) -> None:
        """Send a heartbeat at once, then every ``heartbeat_s`` (a background task)."""
        if not self.heartbeat_s:
            return
        while True:
            self.heartbeat()
            await asyncio.sleep(self.heartbeat_s)

    def retire(self) -> None:
        """A clean shutdown: enqueue a tombstone per v2 key; later transitions are not sent."""
        self._enqueue([(fleet_key(b.name, self.worker).encode(), None) for b in self._breakers])
        self._retired = True

    def _enqueue(self, records: list[_Record]) -> None:
        if self._retired:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with self._lock:
            loop = self._loop
            if loop is None and running is None:
                self._early.extend(records)
                return
        for record in records:
            if loop is None or running is loop:
                self._queue.put_nowait(record)
            else:
                loop.call_soon_threadsafe(self._queue.put_nowait, record)

    def use_producer(self, producer: Callable[[], Sender]) -> None:
        """Where to send: a getter, so a producer started later (Faust's) is fine."""
        self._producer = producer

    def on_death(self, callback: Callable[[BaseException], object]) -> None:
        """Also call ``callback`` (e.g. Sentry) when the publisher task dies."""
        self._on_death = callback

    def _sender(self) -> Sender:
        producer = self._producer
        if producer is None:
            raise RuntimeError("BreakerEventPublisher has no producer")
        return producer()

    async def _send(self, record: _Record) -> None:
        """Send one record, retrying transient broker errors for as long as it takes."""
        delay = self._retry_initial_s
        attempt = 0
        key, value = record
        while True:
            try:
                await self._sender().send_and_wait(self.topic, key, value, None, None, None)
                self.published += 1
                return
            except _TRANSIENT as exc:
                attempt += 1
                log.warning(
                    "breaker_event_send_retry",
                    key=key.decode(errors="replace"),
                    attempt=attempt,
                    retry_in_s=round(delay, 2),
                    error=repr(exc)[:200],
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)

    async def run(self) -> None:
        """Drain the queue forever (the background task); raises if it dies."""
        queue = self._queue
        with self._lock:
            self._loop = asyncio.get_running_loop()
            for record in self._early:
                queue.put_nowait(record)
            self._early.clear()
        try:
            while True:
                record = await queue.get()
                try:
                    await self._send(record)
                finally:
                    queue.task_done()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.error(
                "breaker_event_publisher_died",
                topic=self.topic,
                error=repr(exc)[:500],
                pending=queue.qsize(),
                exc_info=exc,
            )
            if self._on_death is not None:
                self._on_death(exc)
            raise

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued event is sent; False when ``timeout_s`` ran out first."""
        queue = self._queue
        try:
            async with asyncio.timeout(timeout_s):
                await queue.join()
        except TimeoutError:
            log.error("breaker_events_not_drained", pending=queue.qsize())
            return False
        return True

    def pending(self) -> int:
        """Events not yet on the broker (queued or waiting for the loop)."""
        return len(self._early) + self._queue.qsize()

    def status(self) -> dict[str, Any]:
        """Counters for diagnostics."""
        return {"topic": self.topic, "published": self.published, "pending": self.pending()}
