"""The Prometheus instruments (``streams.metrics``) and the worker's HTTP endpoint."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ragstream.endpoints import ConsumerLag, Endpoints
from services.resilience import Breaker
from streams import metrics
from streams.errors import StoreUnavailableError
from streams.messaging import hold_until_done
from streams.settings import OperationsSettings


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def _defaults() -> Iterator[None]:
    """Every test starts and ends with metrics on and no tenant label."""
    metrics.configure(enabled=True, tenant_label=False)
    yield
    metrics.configure(enabled=True, tenant_label=False)


def test_document_outcomes_are_counted_by_outcome_and_code() -> None:
    """Each outcome is its own series; a rejection carries its error code, never a tenant."""
    indexed = _value("ragstream_documents_total", outcome="indexed", error_code="")
    bad = _value("ragstream_documents_total", outcome="rejected", error_code="malformed_json")
    metrics.document("indexed", tenant="acme")
    metrics.document("rejected", tenant="acme", error_code="malformed_json")
    assert _value("ragstream_documents_total", outcome="indexed", error_code="") == indexed + 1
    assert (
        _value("ragstream_documents_total", outcome="rejected", error_code="malformed_json")
        == bad + 1
    )
    assert 'tenant="acme"' not in metrics.exposition().decode()


def test_tenant_label_only_when_enabled() -> None:
    """``RAGSTREAM_METRICS_TENANT_LABEL`` adds the tenant to the document and search counters."""
    metrics.configure(enabled=True, tenant_label=True)
    metrics.document("indexed", tenant="acme")
    metrics.search(mode="hybrid", status="ok", seconds=0.01, tenant="acme")
    labels = {"outcome": "indexed", "error_code": "", "tenant": "acme"}
    assert _value("ragstream_documents_total", **labels) == 1
    text = metrics.exposition().decode()
    assert 'ragstream_searches_total{error_code="",mode="hybrid",status="ok",tenant="acme"}' in text
    metrics.configure(enabled=True, tenant_label=False)
    assert 'tenant="acme"' not in metrics.exposition().decode()


def test_disabled_records_nothing() -> None:
    """With metrics off, the helpers change no sample."""
    metrics.configure(enabled=False)
    before = _value("ragstream_chunks_written_total")
    letters = _value("ragstream_dead_letters_total", topic="t.documents", error_code="too_large")
    metrics.chunks_written(5)
    metrics.dead_letter("t.documents", "too_large")
    with metrics.search_leg("fuse"):
        pass
    assert _value("ragstream_chunks_written_total") == before
    assert (
        _value("ragstream_dead_letters_total", topic="t.documents", error_code="too_large")
        == letters
    )
    assert not metrics.enabled()


def test_histograms_observe_latency_and_sizes() -> None:
    """An ingest batch observes itself once and each of its documents; legs and calls are timed."""
    batches = _value("ragstream_ingest_batch_seconds_count")
    docs = _value("ragstream_ingest_document_seconds_count")
    metrics.ingest_batch(0.2, documents=3)
    assert _value("ragstream_ingest_batch_seconds_count") == batches + 1
    assert _value("ragstream_ingest_document_seconds_count") == docs + 3
    calls = _value("ragstream_embedding_call_seconds_count", purpose="ingest", outcome="error")
    with pytest.raises(ValueError), metrics.embedding_call("ingest", 8):
        raise ValueError("model down")
    assert (
        _value("ragstream_embedding_call_seconds_count", purpose="ingest", outcome="error")
        == calls + 1
    )
    fuse = _value("ragstream_search_leg_seconds_sum", leg="fuse")
    with metrics.search_leg("fuse"):
        time.sleep(0.01)  # the work being timed
    assert _value("ragstream_search_leg_seconds_sum", leg="fuse") >= fuse + 0.01


async def test_breaker_state_gauge_and_transitions() -> None:
    """A breaker's gauge is 0 when created, 2 once open; the transition is counted."""
    breaker = Breaker("unit-gauge", fail_max=1, reset_timeout_s=60, call_timeout_s=1)
    assert _value("ragstream_breaker_state", breaker="unit-gauge") == 0

    async def failing() -> None:
        raise StoreUnavailableError("down")

    with pytest.raises(StoreUnavailableError):
        await breaker.call(failing)
    assert _value("ragstream_breaker_state", breaker="unit-gauge") == 2
    labels = {"breaker": "unit-gauge", "from_state": "closed", "to_state": "open"}
    assert _value("ragstream_breaker_transitions_total", **labels) == 1


async def test_hold_time_is_visible_while_held_and_totalled_after() -> None:
    """``hold_until_done`` shows its hold in ``ragstream_holding_seconds`` until it succeeds."""
    seen: list[float] = []
    attempts = 0

    async def work() -> str:
        nonlocal attempts
        attempts += 1
        seen.append(_value("ragstream_holding_seconds", what="unit-hold"))
        if attempts < 3:
            raise StoreUnavailableError("still down")
        return "done"

    before = _value("ragstream_held_seconds_total", what="unit-hold")
    assert await hold_until_done(work, initial_s=0.05, max_s=0.05, what="unit-hold") == "done"
    assert seen[0] == 0 and seen[2] >= 0.09  # the hold began at the first failure
    assert _value("ragstream_holding_seconds", what="unit-hold") == 0
    assert _value("ragstream_held_seconds_total", what="unit-hold") >= before + 0.09
    assert _value("ragstream_hold_retries_total", what="unit-hold", error_code="store_unavailable")


@dataclass(frozen=True)
class _TP:
    topic: str
    partition: int


class _Consumer:
    """What ``ConsumerLag`` reads of Faust's consumer (assignment, high-water marks, offsets)."""

    def __init__(self) -> None:
        self.tps = [_TP("p.documents", 0), _TP("p.documents", 1), _TP("p.search-requests", 0)]
        self.highwaters: dict[Any, int | None] = {
            self.tps[0]: 10,
            self.tps[1]: 4,
            self.tps[2]: None,
        }
        self._committed_offset: dict[Any, int | None] = {self.tps[0]: 7}

    def assignment(self) -> set[Any]:
        return set(self.tps)

    def highwater(self, tp: Any) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: Any) -> int:
        return 1


async def test_consumer_lag_is_highwater_minus_committed() -> None:
    """Committed offset when known, else the position; partitions never fetched are skipped."""
    lag = ConsumerLag()
    await lag.refresh(_Consumer())
    families = {f.name: f for f in lag.collect()}
    samples = {
        tuple(s.labels.values()): s.value for s in families["ragstream_consumer_lag"].samples
    }
    assert samples == {("p.documents", "0"): 3, ("p.documents", "1"): 3}
    assert families["ragstream_consumer_assigned_partitions"].samples[0].value == 2


@pytest.fixture
def endpoints() -> Iterator[Endpoints]:
    """Endpoints on a free loopback port with a 0.3 s stall limit."""
    served = Endpoints(OperationsSettings(http_port=0, live_stall_s=0.3)).start()
    yield served
    served.stop()


def test_live_fails_when_the_loop_stalls(endpoints: Endpoints) -> None:
    """A loop blocked longer than ``live_stall_s`` turns ``/health/live`` into a 503."""
    loop = asyncio.new_event_loop()
    beating = loop.create_task(endpoints.heartbeat(lambda: None))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{endpoints.port}"
    try:
        assert httpx.get(f"{base}/health/live").status_code == 200
        loop.call_soon_threadsafe(time.sleep, 2.0)  # a blocking call stalls the loop
        deadline = time.monotonic() + 5
        while (live := httpx.get(f"{base}/health/live")).status_code != 503:
            assert time.monotonic() < deadline, live.text
            time.sleep(0.05)  # poll interval, bounded by the deadline
        assert live.json()["live"] is False and live.json()["loop_heartbeat_age_s"] > 0.3
        deadline = time.monotonic() + 5
        while httpx.get(f"{base}/health/live").status_code != 200:  # unblocked: live again
            assert time.monotonic() < deadline
            time.sleep(0.05)  # poll interval, bounded by the deadline
    finally:
        loop.call_soon_threadsafe(beating.cancel)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_ready_needs_runtime_and_assignment_not_closed_breakers(endpoints: Endpoints) -> None:
    """503 until started and assigned; an open breaker is reported and still ready."""
    state = {"started": False}
    endpoints.readiness.runtime_started = lambda: state["started"]
    endpoints.readiness.breakers = lambda: {"elasticsearch": "open"}
    url = f"http://127.0.0.1:{endpoints.port}/health/ready"
    assert httpx.get(url).status_code == 503
    state["started"] = True
    assert httpx.get(url).status_code == 503  # no partitions assigned yet
    endpoints.readiness.assigned = True
    endpoints.readiness.rebalancing = lambda: True
    assert httpx.get(url).status_code == 503
    endpoints.readiness.rebalancing = lambda: False
    ready = httpx.get(url)
    assert ready.status_code == 200
    assert ready.json()["breakers"] == {"elasticsearch": "open"}


def test_metrics_page_and_its_switch(endpoints: Endpoints) -> None:
    """``/metrics`` is the Prometheus text format; with metrics off it is a 404."""
    url = f"http://127.0.0.1:{endpoints.port}/metrics"
    page = httpx.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    assert "# TYPE ragstream_documents_total counter" in page.text
    assert "ragstream_consumer_assigned_partitions" in page.text
    metrics.configure(enabled=False)
    assert httpx.get(url).status_code == 404


def test_a_taken_port_is_a_clear_error(endpoints: Endpoints) -> None:
    """Binding a port in use fails at start with the setting's name."""
    from streams.errors import ConfigError

    with pytest.raises(ConfigError, match="RAGSTREAM_HTTP_PORT"):
        Endpoints(OperationsSettings(http_port=endpoints.port)).start()
