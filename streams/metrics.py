"""Prometheus metrics: the instruments every layer records into, and their exposition.

Part of the Kafka toolkit, so the agents, the services and the breakers record through it
without knowing the worker; the composition root (``ragstream.endpoints``) serves
``REGISTRY`` on ``/metrics`` and adds what only it can see (consumer lag). Every name starts
with ``ragstream_``; labels are bounded (outcome, error code, mode, leg, breaker, topic):
never a document id, and a tenant only when ``RAGSTREAM_METRICS_TENANT_LABEL`` is set (one
series per tenant and outcome). With ``RAGSTREAM_METRICS=false`` every helper returns at once.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "BREAKER_STATES",
    "CONTENT_TYPE",
    "REGISTRY",
    "breaker_state",
    "breaker_transition",
    "chunks_written",
    "configure",
    "dead_letter",
    "document",
    "embedding_call",
    "enabled",
    "exposition",
    "hold_retry",
    "holding",
    "ingest_batch",
    "reply_failed",
    "search",
    "search_leg",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}
"""Value of ``ragstream_breaker_state`` per state."""

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

REGISTRY = CollectorRegistry(auto_describe=True)
"""Everything ``/metrics`` serves (ours, plus the process, platform and GC collectors)."""
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_CHUNKS = Counter("ragstream_chunks_written", "Chunks written to both stores.", registry=REGISTRY)
_BATCH_SECONDS = Histogram(
    "ragstream_ingest_batch_seconds",
    "An ingest batch: read to every result on the broker (holds included).",
    buckets=_LATENCY,
    registry=REGISTRY,
)
_BATCH_SIZE = Histogram(
    "ragstream_ingest_batch_documents",
    "Documents-topic messages per ingest batch.",
    buckets=_COUNTS,
    registry=REGISTRY,
)
_DOCUMENT_SECONDS = Histogram(
    "ragstream_ingest_document_seconds",
    "One document: read to its result (the batch it rode in, holds included).",
    buckets=_LATENCY,
    registry=REGISTRY,
)
_EMBED_SECONDS = Histogram(
    "ragstream_embedding_call_seconds",
    "One embedding call (one breaker-guarded call), by purpose: ingest or search.",
    ["purpose", "outcome"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
_EMBED_CHUNKS = Histogram(
    "ragstream_embedding_call_chunks",
    "Texts per embedding call, by purpose.",
    ["purpose"],
    buckets=_COUNTS,
    registry=REGISTRY,
)
_SEARCH_SECONDS = Histogram(
    "ragstream_search_seconds",
    "A search request: read to reply sent, by mode.",
    ["mode"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
_LEG_SECONDS = Histogram(
    "ragstream_search_leg_seconds",
    "One leg of a search: embed (the query), vector, keyword, fuse.",
    ["leg"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
_BREAKER_STATE = Gauge(
    "ragstream_breaker_state",
    "Breaker state: 0 closed, 1 half-open, 2 open.",
    ["breaker"],
    registry=REGISTRY,
)
_BREAKER_TRANSITIONS = Counter(
    "ragstream_breaker_transitions",
    "Breaker state changes.",
    ["breaker", "from_state", "to_state"],
    registry=REGISTRY,
)
_HOLD_RETRIES = Counter(
    "ragstream_hold_retries",
    "Retries of held work (a dependency is down or its breaker open), by what and error code.",
    ["what", "error_code"],
    registry=REGISTRY,
)
_DEAD_LETTERS = Counter(
    "ragstream_dead_letters",
    "Messages put on the dead-letter topic, by original topic and error code.",
    ["topic", "error_code"],
    registry=REGISTRY,
)
_REPLY_FAILURES = Counter(
    "ragstream_reply_failures",
    "Replies (reply-to topics) that could not be sent, by agent.",
    ["agent"],
    registry=REGISTRY,
)


class _State:
    """What ``configure`` sets: on/off and the two counters whose labels depend on it."""

    def __init__(self) -> None:
        self.enabled = True
        self.tenant_label = False
        self.documents: Counter = self._documents()
        self.searches: Counter = self._searches()

    def _documents(self) -> Counter:
        labels = ["outcome", "error_code"] + (["tenant"] if self.tenant_label else [])
        return Counter(
            "ragstream_documents",
            "Document messages by outcome: indexed, unchanged, deleted, rejected (error code).",
            labels,
            registry=None,
        )

    def _searches(self) -> Counter:
        labels = ["mode", "status", "error_code"] + (["tenant"] if self.tenant_label else [])
        return Counter(
            "ragstream_searches",
            "Search requests answered, by mode and status (ok, degraded, error with its code).",
            labels,
            registry=None,
        )

    def relabel(self, tenant_label: bool) -> None:
        for counter in (self.documents, self.searches):
            REGISTRY.unregister(counter)
        self.tenant_label = tenant_label
        self.documents, self.searches = self._documents(), self._searches()
        self.register()

    def register(self) -> None:
        REGISTRY.register(self.documents)
        REGISTRY.register(self.searches)


_state = _State()
_state.register()


class _Holds:
    """Work held by ``hold_until_done`` right now: a gauge of how long, and a running total."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, tuple[str, float]] = {}
        self._done: dict[str, float] = {}
        self._tokens = itertools.count()

    def begin(self, what: str) -> int:
        with self._lock:
            token = next(self._tokens)
            self._active[token] = (what, time.monotonic())
            return token

    def end(self, token: int) -> None:
        with self._lock:
            what, since = self._active.pop(token)
            self._done[what] = self._done.get(what, 0.0) + time.monotonic() - since

    def collect(self) -> Iterator[Any]:
        now = time.monotonic()
        current = GaugeMetricFamily(
            "ragstream_holding_seconds",
            "How long the oldest held work (e.g. an ingest batch waiting for an open breaker) "
            "has been held, by what; 0 when nothing is held.",
            labels=["what"],
        )
        total = CounterMetricFamily(
            "ragstream_held_seconds",
            "Seconds spent holding work for a dependency, by what (finished holds).",
            labels=["what"],
        )
        with self._lock:
            oldest: dict[str, float] = dict.fromkeys(self._done, 0.0)
            for what, since in self._active.values():
                oldest[what] = max(oldest.get(what, 0.0), now - since)
            done = dict(self._done)
        for what in sorted(oldest):
            current.add_metric([what], oldest[what])
        for what in sorted(done):
            total.add_metric([what], done[what])
        yield current
        yield total

    def describe(self) -> Iterator[Any]:
        return iter(())


_holds = _Holds()
REGISTRY.register(_holds)


def configure(*, enabled: bool, tenant_label: bool = False) -> None:
    """Turn recording on or off, and the tenant label of the two counters (worker start)."""
    _state.enabled = enabled
    if tenant_label != _state.tenant_label:
        _state.relabel(tenant_label)


def enabled() -> bool:
    """Whether metrics are recorded (``RAGSTREAM_METRICS``)."""
    return _state.enabled


def exposition() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)


def _tenant(labels: dict[str, str], tenant: str | None) -> dict[str, str]:
    if _state.tenant_label:
        labels["tenant"] = tenant or ""
    return labels


def document(outcome: str, *, tenant: str | None = None, error_code: str = "") -> None:
    """One document message's outcome: indexed, unchanged, deleted or rejected (with code)."""
    if _state.enabled:
        labels = _tenant({"outcome": outcome, "error_code": error_code}, tenant)
        _state.documents.labels(**labels).inc()


def chunks_written(n: int) -> None:
    """``n`` chunks written to both stores."""
    if _state.enabled and n:
        _CHUNKS.inc(n)


def ingest_batch(seconds: float, *, documents: int) -> None:
    """An ingest batch of ``documents`` messages took ``seconds``; so did each document."""
    if not _state.enabled:
        return
    _BATCH_SECONDS.observe(seconds)
    _BATCH_SIZE.observe(documents)
    for _ in range(documents):
        _DOCUMENT_SECONDS.observe(seconds)


@contextmanager
def embedding_call(purpose: str, chunks: int) -> Iterator[None]:
    """Time one embedding call of ``chunks`` texts (``purpose``: ingest or search)."""
    if not _state.enabled:
        yield
        return
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        _EMBED_SECONDS.labels(purpose, outcome).observe(time.perf_counter() - started)
        _EMBED_CHUNKS.labels(purpose).observe(chunks)


def search(
    *, mode: str, status: str, seconds: float, error_code: str = "", tenant: str | None = None
) -> None:
    """One search answered (or failed) after ``seconds``."""
    if not _state.enabled:
        return
    labels = _tenant({"mode": mode, "status": status, "error_code": error_code}, tenant)
    _state.searches.labels(**labels).inc()
    _SEARCH_SECONDS.labels(mode).observe(seconds)


@contextmanager
def search_leg(leg: str) -> Iterator[None]:
    """Time one leg of a search: embed, vector, keyword or fuse."""
    if not _state.enabled:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        _LEG_SECONDS.labels(leg).observe(time.perf_counter() - started)


def breaker_state(breaker: str, state: str) -> None:
    """Set a breaker's state gauge (``closed``, ``half-open``, ``open``)."""
    if _state.enabled and state in BREAKER_STATES:
        _BREAKER_STATE.labels(breaker).set(BREAKER_STATES[state])


def breaker_transition(breaker: str, old: str, new: str) -> None:
    """A breaker changed state."""
    if _state.enabled:
        _BREAKER_TRANSITIONS.labels(breaker, old, new).inc()
        breaker_state(breaker, new)


@contextmanager
def holding(what: str) -> Iterator[None]:
    """Mark work as held for a dependency (``ragstream_holding_seconds``) until the block ends."""
    if not _state.enabled:
        yield
        return
    token = _holds.begin(what)
    try:
        yield
    finally:
        _holds.end(token)


def hold_retry(what: str, error_code: str) -> None:
    """Held work is retried once more."""
    if _state.enabled:
        _HOLD_RETRIES.labels(what, error_code).inc()


def dead_letter(topic: str, error_code: str) -> None:
    """A message from ``topic`` was dead-lettered with ``error_code``."""
    if _state.enabled:
        _DEAD_LETTERS.labels(topic, error_code).inc()


def reply_failed(agent: str) -> None:
    """A reply could not be sent."""
    if _state.enabled:
        _REPLY_FAILURES.labels(agent).inc()
