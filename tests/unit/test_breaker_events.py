"""The breaker-event publisher: sync listeners in, ordered events out, retries, loud death."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from structlog.testing import capture_logs

from ragstream.breaker_events import BreakerEventPublisher
from services.resilience import Breaker, get_breaker_status
from streams.errors import StoreUnavailableError
from tests.fakes import FakeProducer


def _breaker(name: str = "elasticsearch", fail_max: int = 2, reset_s: float = 0.05) -> Breaker:
    return Breaker(
        name,
        fail_max=fail_max,
        reset_timeout_s=reset_s,
        call_timeout_s=1,
        unavailable=StoreUnavailableError,
    )


async def _fail(breaker: Breaker, message: str = "boom") -> None:
    async def down() -> None:
        raise StoreUnavailableError(message)

    with pytest.raises(StoreUnavailableError):
        await breaker.call(down)


async def _ok(breaker: Breaker) -> None:
    async def up() -> None:
        return None

    await breaker.call(up)


async def _until(predicate: Any, timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` with a deadline (the breaker's reset timer is wall-clock)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling a sync predicate, bounded
            await asyncio.sleep(0.01)


async def test_every_transition_is_published_in_order_with_key_and_scrubbed_error() -> None:
    """closed->open->half-open->closed arrive in order as v2 (key breaker@worker) then v1."""
    producer = FakeProducer()
    publisher = BreakerEventPublisher(
        "p.breaker-events", worker="host:1", producer=lambda: producer
    )
    breaker = _breaker()
    publisher.attach([breaker])
    task = asyncio.create_task(publisher.run())
    try:
        with capture_logs() as logs:
            await _fail(breaker, "http://elastic:hunter2@es:9200 failed, Bearer abcdefghijkl")
            await _fail(breaker)
            await _until(lambda: breaker.status().allows_calls)
            await _ok(breaker)
        assert await publisher.drain(timeout_s=5)
    finally:
        task.cancel()
    v2 = [(s.key, json.loads(s.value or b"null")) for s in producer.sent[0::2]]
    assert {key for key, _ in v2} == {b"elasticsearch@host:1"}
    assert {e["schema"] for _, e in v2} == {"ragstream.breaker-event.v2"}
    assert [(e["from"], e["to"], e["reason"]) for _, e in v2] == [
        ("closed", "open", "local"),
        ("open", "half-open", "local"),
        ("half-open", "closed", "local"),
    ]
    assert not any(e["heartbeat"] for _, e in v2) and "hunter2" not in str(v2)
    events = producer.values()[1::2]
    assert [(e["from"], e["to"]) for e in events] == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    assert {s.topic for s in producer.sent} == {"p.breaker-events"}
    assert {s.key for s in producer.sent[1::2]} == {b"elasticsearch"}
    first = events[0]
    assert first["schema"] == "ragstream.breaker-event.v1" and first["worker"] == "host:1"
    assert first["fail_counter"] == 2 and (first["at"].endswith("Z") or "+00:00" in first["at"])
    assert "hunter2" not in first["error"] and "abcdefghijkl" not in first["error"]
    assert first["error"].startswith("StoreUnavailableError")
    transitions = [e for e in logs if e["event"] == "breaker_transition"]
    assert (transitions[0]["old_state"], transitions[0]["new_state"]) == ("closed", "open")
    assert transitions[0]["log_level"] == "warning"


async def test_send_failures_are_retried_until_the_broker_takes_the_event() -> None:
    """A broker that refuses three times still gets the event, once."""
    producer = FakeProducer(fail=3, error=KafkaConnectionError("broker down"))
    publisher = BreakerEventPublisher(
        "t", worker="w", producer=lambda: producer, retry_initial_s=0.01, legacy_v1=False
    )
    breaker = _breaker(fail_max=1)
    publisher.attach([breaker])
    task = asyncio.create_task(publisher.run())
    try:
        await _fail(breaker)
        assert await publisher.drain(timeout_s=5)
    finally:
        task.cancel()
    assert producer.calls == 4 and len(producer.sent) == 1 and publisher.pending() == 0


async def test_events_before_the_task_starts_and_from_other_threads_are_kept() -> None:
    """Transitions fired before ``run`` or on a worker thread are published too."""
    producer = FakeProducer()
    publisher = BreakerEventPublisher("t", worker="w", producer=lambda: producer)
    early = _breaker("vectordb", fail_max=1)
    publisher.attach([early])
    await _fail(early)  # no loop task yet
    assert publisher.pending() == 2  # v2 and v1
    task = asyncio.create_task(publisher.run())
    try:
        await _until(lambda: len(producer.sent) == 2)
        threaded = _breaker("openai", fail_max=1)
        publisher.attach([threaded])
        thread = threading.Thread(target=lambda: threaded.cb.open())
        thread.start()
        thread.join()
        await _until(lambda: len(producer.sent) == 4)
    finally:
        task.cancel()
    assert [s.key for s in producer.sent] == [b"vectordb@w", b"vectordb", b"openai@w", b"openai"]


async def test_the_publishers_death_is_loud() -> None:
    """A non-transient error kills the task: logged at error, reported, and re-raised."""
    producer = FakeProducer(fail=1, error=ValueError("bug"))
    deaths: list[BaseException] = []
    publisher = BreakerEventPublisher(
        "t", worker="w", producer=lambda: producer, on_death=deaths.append
    )
    breaker = _breaker(fail_max=1)
    publisher.attach([breaker])
    with capture_logs() as logs:
        task = asyncio.create_task(publisher.run())
        await _fail(breaker)
        with pytest.raises(ValueError, match="bug"):
            await asyncio.wait_for(task, 5)
    assert [type(e) for e in deaths] == [ValueError]
    assert any(
        e["event"] == "breaker_event_publisher_died" and e["log_level"] == "error" for e in logs
    )


async def test_get_breaker_status_reports_each_breaker() -> None:
    """State, fail counter, last failure and whether calls are allowed, per breaker."""
    # A reset timeout no loaded machine outlasts between the failure and the status read.
    es, vec = _breaker("elasticsearch", fail_max=1, reset_s=60), _breaker("vectordb")
    await _fail(es, "down")
    await _fail(vec, "flaky")
    status = get_breaker_status({"elasticsearch": es, "vectordb": vec})
    assert status["elasticsearch"].state == "open" and not status["elasticsearch"].allows_calls
    assert status["elasticsearch"].last_failure == "StoreUnavailableError: down"
    assert status["vectordb"].state == "closed" and status["vectordb"].fail_counter == 1
    assert status["vectordb"].allows_calls and status["vectordb"].last_failure_at is not None
