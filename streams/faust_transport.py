"""Faust's aiokafka transport with a configurable fetch wait and safe offset commits.

Faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. Brokers that hold
every fetch for the full wait (the embedded Tansu broker does) then add up to 1.5 s to
every request-reply round trip. This transport keeps everything else of Faust's driver
and applies ``KAFKA_FETCH_MAX_WAIT_MS``. Selected with the ``ragstream://`` broker URL.

It also never commits past a message still being processed. Faust's ``_new_offset``
commits the run of acked offsets that starts one past the committed offset, so with an
agent's ``concurrency`` > 1 (the search agent's) a request acked before the one under the
committed offset moves the commit over it (faust-streaming/faust#606): a worker killed
before finishing that request loses it, and the worker that takes the partition over
starts after it. Here the offset to commit is capped at the lowest offset of the
partition's messages that an agent has taken and not yet acked.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as _driver
from faust.types.tuples import ack_lock

__all__ = ["SCHEME", "Transport", "configure_fetch_wait"]

SCHEME = "ragstream"
_fetch_max_wait_ms = 10


def configure_fetch_wait(ms: int) -> None:
    """Set the fetch wait used by worker consumers created from now on."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = ms


class _ConsumerThread(_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read by consumer.start()
        return consumer


class _Consumer(_driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: Any) -> int | None:
        """Faust's offset to commit for ``tp``, but never past a message still in flight.

        In flight: taken by an agent (Faust tracks it from then on) and not acked. Acked
        offsets past the lowest of those wait in ``_acked`` until it is acked too.
        """
        with ack_lock:  # what Faust's own ack holds while it updates this bookkeeping
            in_flight = [
                m.offset for m in list(self._unacked_messages) if m.tp == tp and not m.acked
            ]
            if not in_flight:
                return super()._new_offset(tp)
            floor = min(in_flight)
            acked: list[int] = self._acked[tp]
            held = [offset for offset in acked if offset >= floor]
            acked[:] = [offset for offset in acked if offset < floor]
            try:
                offset = super()._new_offset(tp)
            finally:
                acked.extend(held)
                acked.sort()
            return None if offset is None else min(offset, floor)


class Transport(_driver.Transport):
    """Faust's aiokafka transport, with our consumer."""

    Consumer = _Consumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
