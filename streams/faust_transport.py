"""Faust's aiokafka transport with a configurable fetch wait.

Faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. Brokers that hold
every fetch for the full wait (the embedded Tansu broker does) then add up to 1.5 s to
every request-reply round trip. This transport keeps everything else of Faust's driver
and applies ``KAFKA_FETCH_MAX_WAIT_MS``. Selected with the ``ragstream://`` broker URL.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as _driver

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


class Transport(_driver.Transport):
    """Faust's aiokafka transport, with our consumer."""

    Consumer = _Consumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
