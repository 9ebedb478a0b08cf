"""``BREAKER_FLEET=follow``: this worker's breakers follow their peers' events.

A plain aiokafka consumer (no group: every worker reads every event) on
``{prefix}.breaker-events``, from the end. For each v2 transition of another worker, made
by its own calls (``reason: local``; an event a peer made by following is not followed
again, so nothing echoes around the fleet):

- ``-> open``: the local breaker of that name opens at once (``Breaker.follow_open``),
  trusted until the peer's event time + one reset timeout, never for an already stale one;
- ``half-open -> closed`` (a peer's trial succeeded): an open local breaker moves to
  half-open (``Breaker.follow_closed``), so its next call is the trial.

Heartbeats, tombstones, v1 events and our own events are skipped. The state machine and its
safeguards (own success closes, disproved peers are not followed) live in
``services.resilience.Breaker``; this module only reads Kafka and calls it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import TypeAdapter, ValidationError

from schemas.breaker import AnyBreakerEvent, BreakerEventV2
from services.resilience import Breaker
from streams.connection import aiokafka_kwargs
from streams.settings import KafkaSettings

__all__ = ["BreakerFollower"]

log = structlog.get_logger(__name__)
_EVENTS: TypeAdapter[Any] = TypeAdapter(AnyBreakerEvent)


class BreakerFollower:
    """Applies peers' breaker events to this worker's breakers."""

    def __init__(
        self,
        topic: str,
        *,
        worker: str,
        breakers: Mapping[str, Breaker],
        kafka: KafkaSettings | None = None,
        consumer: Callable[[], AIOKafkaConsumer] | None = None,
        fetch_max_wait_ms: int = 50,
    ) -> None:
        self.topic = topic
        self.worker = worker
        self.breakers = breakers
        self._kafka = kafka
        self._consumer = consumer
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self.followed = 0

    def handle(self, event: BreakerEventV2) -> str | None:
        """Apply one event; returns what was done (``open``/``half-open``) or None."""
        if event.worker == self.worker or event.heartbeat or event.reason != "local":
            return None
        breaker = self.breakers.get(event.breaker)
        if breaker is None or event.from_ == event.to:
            return None
        done: str | None = None
        if event.to == "open" and breaker.follow_open(event.worker, event.at):
            done = "open"
        elif (
            event.to == "closed"
            and event.from_ == "half-open"
            and breaker.follow_closed(event.worker)
        ):
            done = "half-open"
        if done is not None:
            self.followed += 1
            log.info(
                "breaker_followed_peer",
                breaker=event.breaker,
                peer=event.worker,
                peer_state=event.to,
                state=done,
            )
        return done

    def handle_value(self, value: bytes | None) -> str | None:
        """Decode one record value and apply it (tombstones, v1 and junk are skipped)."""
        if value is None:
            return None
        try:
            event = _EVENTS.validate_json(value)
        except ValidationError as exc:
            log.warning("breaker_event_unreadable", error=str(exc)[:200])
            return None
        return self.handle(event) if isinstance(event, BreakerEventV2) else None

    def _new_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is not None:
            return self._consumer()
        if self._kafka is None:
            raise RuntimeError("BreakerFollower needs kafka settings or a consumer factory")
        return AIOKafkaConsumer(
            **aiokafka_kwargs(self._kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self._fetch_max_wait_ms,
        )

    async def run(self) -> None:
        """Read the topic from its end forever (a background task); loud if it dies."""
        consumer = self._new_consumer()
        await consumer.start()
        try:
            tps = await self._assign(consumer)
            await consumer.seek_to_end(*tps)
            log.info("breaker_follower_started", topic=self.topic, worker=self.worker)
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        self.handle_value(record.value)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.error("breaker_follower_died", topic=self.topic, error=repr(exc)[:500])
            raise
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        delay = 0.2
        while True:
            parts = consumer.partitions_for_topic(self.topic)
            if parts:
                tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
                consumer.assign(tps)
                return tps
            await consumer._client.force_metadata_update()
            await asyncio.sleep(delay)  # the topic is created at startup: wait for it
            delay = min(delay * 2, 5.0)
