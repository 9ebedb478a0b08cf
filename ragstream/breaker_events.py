"""Breaker transitions as events on ``{prefix}.breaker-events`` (key = breaker name).

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
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from faust.exceptions import NotReady

from schemas.breaker import BreakerEvent
from services.resilience import Breaker, Transition
from streams.codec import encode
from streams.messaging import Sender
from streams.observability import capture_message
from streams.scrub import scrub_text

__all__ = ["BreakerEventPublisher", "on_breaker_transition", "to_event"]

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
    ) -> None:
        self.topic = topic
        self.worker = worker
        self._producer = producer
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._on_death = on_death
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[BreakerEvent] = asyncio.Queue()
        self._early: list[BreakerEvent] = []  # from a thread before the loop is known
        self._lock = threading.Lock()
        self.published = 0

    def attach(self, breakers: Iterable[Breaker]) -> None:
        """Subscribe to every breaker's transitions."""
        for breaker in breakers:
            breaker.subscribe(self.on_transition)

    def on_transition(self, transition: Transition) -> None:
        """Listener callback (sync, any thread): log the change and enqueue its event."""
        event = to_event(transition, worker=self.worker)
        (log.warning if transition.new == "open" else log.info)(
            "breaker_transition",
            breaker=event.breaker,
            old_state=event.from_,
            new_state=event.to,
            fail_counter=event.fail_counter,
            error=event.error,
        )
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with self._lock:
            loop = self._loop
            if loop is None and running is None:
                self._early.append(event)
                return
        if loop is None or running is loop:
            self._queue.put_nowait(event)
        else:
            loop.call_soon_threadsafe(self._queue.put_nowait, event)

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

    async def _send(self, event: BreakerEvent) -> None:
        """Send one event, retrying transient broker errors for as long as it takes."""
        delay = self._retry_initial_s
        attempt = 0
        value = encode(event)
        while True:
            try:
                await self._sender().send_and_wait(
                    self.topic, event.breaker.encode(), value, None, None, None
                )
                self.published += 1
                return
            except _TRANSIENT as exc:
                attempt += 1
                log.warning(
                    "breaker_event_send_retry",
                    breaker=event.breaker,
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
            for event in self._early:
                queue.put_nowait(event)
            self._early.clear()
        try:
            while True:
                event = await queue.get()
                try:
                    await self._send(event)
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
