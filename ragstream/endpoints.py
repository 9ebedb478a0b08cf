"""The worker's HTTP endpoint: ``/health/live``, ``/health/ready`` and ``/metrics``.

Part of the composition root. The server runs on its own thread (stdlib
``ThreadingHTTPServer``), not on the worker's event loop, so a stalled loop gets a clean
``503`` instead of a hung connection, and a scrape never takes time from the agents:

- ``/health/live``: 200 while the loop's heartbeat task (run on the loop, every second) has
  stamped within ``RAGSTREAM_LIVE_STALL_S``; 503 when the loop stopped answering.
- ``/health/ready``: 200 once the runtime has started and the consumer has its partitions
  (a rebalance makes it 503 until it is done). Breaker states are in the body but never
  make the worker unready: every replica would go unready together during an outage.
- ``/metrics``: ``streams.metrics.REGISTRY`` in the Prometheus text format, with the
  consumer lag per topic-partition (high-water mark minus the committed offset, both from
  the consumer's own state, refreshed by the heartbeat; no end-offset request to the broker).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client.core import GaugeMetricFamily

from streams import metrics
from streams.errors import ConfigError
from streams.settings import OperationsSettings

__all__ = ["ConsumerLag", "Endpoints", "Readiness", "for_worker"]

log = structlog.get_logger(__name__)
_HEARTBEAT_S = 1.0


@dataclass
class Readiness:
    """What ``/health/ready`` reports; the worker updates it from its loop."""

    runtime_started: Callable[[], bool] = lambda: False
    breakers: Callable[[], Mapping[str, str]] = dict
    rebalancing: Callable[[], bool] = lambda: False
    assigned: bool = False
    """Set once the consumer group gave this worker its assignment (possibly empty)."""
    partitions: list[str] = field(default_factory=list)

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body)."""
        started = bool(self.runtime_started())
        rebalancing = bool(self.rebalancing())
        ready = started and self.assigned and not rebalancing
        return ready, {
            "ready": ready,
            "runtime_started": started,
            "partitions_assigned": self.assigned,
            "rebalancing": rebalancing,
            "partitions": sorted(self.partitions),
            # Reported, never a reason to be unready (see the module docstring).
            "breakers": dict(self.breakers()),
        }


class ConsumerLag:
    """A collector of ``ragstream_consumer_lag``, refreshed from the consumer on its loop."""

    def __init__(self) -> None:
        self._lag: dict[tuple[str, int], int] = {}

    async def refresh(self, consumer: Any) -> None:
        """Lag per assigned partition: high-water mark minus committed offset (or position)."""
        lag: dict[tuple[str, int], int] = {}
        committed_by_tp: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue  # no fetch answered yet
            committed = committed_by_tp.get(tp)
            if committed is None:  # nothing committed by this member: where it reads from
                try:
                    committed = await asyncio.wait_for(consumer.position(tp), 2.0)
                except Exception as exc:  # mid-rebalance: this partition waits for the next beat
                    log.debug("consumer_position_unknown", tp=str(tp), error=repr(exc)[:200])
                    continue
            if committed is not None:
                lag[(tp.topic, tp.partition)] = max(int(highwater) - int(committed), 0)
        self._lag = lag

    def clear(self) -> None:
        """No partitions (revoked, stopping)."""
        self._lag = {}

    def collect(self) -> Iterator[Any]:
        """The gauges, as of the last refresh."""
        family = GaugeMetricFamily(
            "ragstream_consumer_lag",
            "Messages not yet committed per assigned topic-partition (high-water mark minus "
            "committed offset, from the consumer's own fetch state).",
            labels=["topic", "partition"],
        )
        assigned = GaugeMetricFamily(
            "ragstream_consumer_assigned_partitions",
            "Topic-partitions assigned to this worker.",
        )
        lag = self._lag
        for (topic, partition), value in sorted(lag.items()):
            family.add_metric([topic, str(partition)], value)
        assigned.add_metric([], len(lag))
        yield family
        yield assigned

    def describe(self) -> Iterator[Any]:
        """Nothing up front (collected at scrape time)."""
        return iter(())


class Endpoints:
    """The HTTP server thread plus the loop-side heartbeat that feeds it."""

    def __init__(self, settings: OperationsSettings, readiness: Readiness | None = None) -> None:
        self.settings = settings
        self.readiness = readiness or Readiness()
        self.lag = ConsumerLag()
        self._beat = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (``RAGSTREAM_HTTP_PORT``, or the one picked for port 0 in tests)."""
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self, *, port: int | None = None) -> Endpoints:
        """Bind and serve on a daemon thread; a port in use is a ``ConfigError`` (loud)."""
        host, port = self.settings.http_host, self.settings.http_port if port is None else port
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            raise ConfigError(
                f"RAGSTREAM_HTTP_HOST/RAGSTREAM_HTTP_PORT {host}:{port}: {exc.strerror or exc}"
            ) from exc
        metrics.REGISTRY.register(self.lag)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ragstream-http", daemon=True
        )
        self._thread.start()
        log.info("http_endpoint_started", host=host, port=self.port, metrics=metrics.enabled())
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        metrics.REGISTRY.unregister(self.lag)

    def beat(self) -> None:
        """Stamp the heartbeat (called on the worker's loop)."""
        self._beat = time.monotonic()

    async def heartbeat(self, consumer: Callable[[], Any | None]) -> None:
        """Run on the worker's loop: stamp every second (at most) and refresh the consumer lag."""
        while True:
            self.beat()
            current = consumer()
            if current is not None:
                try:
                    assignment = current.assignment()
                    self.readiness.partitions = [f"{tp.topic}:{tp.partition}" for tp in assignment]
                    if metrics.enabled():
                        await self.lag.refresh(current)
                except Exception as exc:  # a consumer mid-rebalance: the next beat tries again
                    log.debug("consumer_state_skipped", error=repr(exc)[:200])
            # The beat's period (not a wait for something): well inside the stall limit.
            await asyncio.sleep(min(_HEARTBEAT_S, self.settings.live_stall_s / 4))

    def live(self) -> tuple[bool, dict[str, Any]]:
        """(live, body): the loop stamped its heartbeat recently enough."""
        age = time.monotonic() - self._beat
        ok = age <= self.settings.live_stall_s
        return ok, {"live": ok, "loop_heartbeat_age_s": round(age, 3)}


def for_worker(app: Any, runtime: Any, settings: OperationsSettings) -> Endpoints:
    """Endpoints fed by a Faust app and its runtime (call ``start()`` to serve)."""
    readiness = Readiness(
        runtime_started=lambda: runtime.started,
        breakers=lambda: {name: b.state for name, b in runtime.breakers.items()},
        rebalancing=lambda: bool(app.rebalancing),
    )
    endpoints = Endpoints(settings, readiness)

    @app.on_partitions_assigned.connect
    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        readiness.assigned = True

    @app.task
    async def _heartbeat() -> None:
        await endpoints.heartbeat(lambda: app.consumer if readiness.assigned else None)

    return endpoints


def _handler(endpoints: Endpoints) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ragstream"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health/live":
                self._json(*endpoints.live())
            elif path == "/health/ready":
                self._json(*endpoints.readiness.report())
            elif path == "/metrics" and metrics.enabled():
                self._send(200, metrics.exposition(), metrics.CONTENT_TYPE)
            elif path == "/metrics":
                self._send(404, b"metrics are off (RAGSTREAM_METRICS=false)\n", "text/plain")
            else:
                self._send(404, b"not found: /health/live, /health/ready, /metrics\n", "text/plain")

        def _json(self, ok: bool, body: dict[str, Any]) -> None:
            self._send(200 if ok else 503, json.dumps(body).encode() + b"\n", "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes and scrapes every few seconds: no access log

    return Handler
