"""Fleet-aware breakers: following peers, the follower's filter, heartbeats, tombstones."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ragstream.breaker_events import BreakerEventPublisher
from ragstream.breaker_follow import BreakerFollower
from schemas.breaker import BreakerEvent, BreakerEventV2
from services.resilience import Breaker, Transition
from streams.codec import encode
from streams.errors import BreakerOpenError, StoreUnavailableError
from streams.messaging import hold_until_done


def _breaker(**kw: Any) -> tuple[Breaker, list[Transition]]:
    seen: list[Transition] = []
    params: dict[str, Any] = {
        "fail_max": 3,
        "reset_timeout_s": 30.0,
        "call_timeout_s": 1.0,
        "unavailable": StoreUnavailableError,
    } | kw
    return Breaker("elasticsearch", **params, on_transition=[seen.append]), seen


async def _fail() -> None:
    raise StoreUnavailableError("connection refused")


async def _ok() -> str:
    return "ok"


def _elapse(breaker: Breaker) -> None:
    """Move the open breaker's clock past its reset timeout (instead of sleeping)."""
    opened = breaker.cb._state_storage.opened_at
    assert opened is not None
    breaker.cb._state_storage.opened_at = opened - timedelta(seconds=breaker.cb.reset_timeout + 1)


def _event(to: str, *, old: str = "closed", worker: str = "peer:1", **kw: Any) -> BreakerEventV2:
    fields: dict[str, Any] = {
        "breaker": "elasticsearch",
        "from": old,
        "to": to,
        "at": datetime.now(UTC),
        "fail_counter": 3,
        "worker": worker,
    } | kw
    return BreakerEventV2.model_validate(fields)


async def test_a_peers_open_opens_the_local_breaker_at_once_with_reason_peer() -> None:
    """No local failure needed: the peer's opening refuses our next call, reason ``peer``."""
    breaker, seen = _breaker()
    assert breaker.follow_open("peer:1", datetime.now(UTC))
    with pytest.raises(BreakerOpenError) as refused:
        await breaker.call(_ok)
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s > 25
    assert [(t.old, t.new, t.reason) for t in seen] == [("closed", "open", "peer")]


async def test_a_peers_open_is_trusted_for_at_most_one_reset_timeout() -> None:
    """Dated from the peer's event: an old one opens for what is left, a stale one not at all."""
    breaker, _ = _breaker(reset_timeout_s=10.0)
    stale = datetime.now(UTC) - timedelta(seconds=11)
    assert not breaker.follow_open("peer:1", stale)
    assert breaker.state == "closed"
    assert breaker.follow_open("peer:1", datetime.now(UTC) - timedelta(seconds=8))
    with pytest.raises(BreakerOpenError) as refused:
        await breaker.call(_ok)
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s <= 2.0


async def test_a_peers_successful_trial_makes_our_next_call_the_trial() -> None:
    """Open (our own failures) + a peer's ``closed``: half-open now, one trial, then closed."""
    breaker, seen = _breaker(fail_max=1)
    with pytest.raises(StoreUnavailableError):
        await breaker.call(_fail)
    assert breaker.state == "open"
    assert breaker.follow_closed("peer:1")
    assert breaker.state == "half-open" and seen[-1].reason == "peer"
    assert await breaker.call(_ok) == "ok"
    assert breaker.state == "closed" and seen[-1].reason == "local"
    assert not breaker.follow_closed("peer:1")  # closed already: nothing to do


async def test_our_own_success_closes_a_breaker_a_peer_opened() -> None:
    """A call in flight when the peer's open arrived succeeds: we close, and stop trusting it."""
    breaker, seen = _breaker()
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "ok"

    call = asyncio.create_task(breaker.call(slow_ok))
    await asyncio.sleep(0)  # the call is admitted (closed) before the peer's event
    assert breaker.follow_open("peer:1", datetime.now(UTC))
    gate.set()
    assert await call == "ok"
    assert breaker.state == "closed"
    assert [(t.new, t.reason) for t in seen] == [("open", "peer"), ("closed", "local")]
    assert not breaker.follow_open("peer:1", datetime.now(UTC))  # disproved: not followed
    assert breaker.follow_open("peer:2", datetime.now(UTC))  # another peer still is


async def test_a_disproved_peer_is_trusted_again_once_it_reports_closed() -> None:
    """Flapping: our trial succeeded after its opening; its own ``closed`` restores trust."""
    breaker, _ = _breaker()
    assert breaker.follow_open("peer:1", datetime.now(UTC))
    _elapse(breaker)
    assert await breaker.call(_ok) == "ok"  # the trial: the dependency is fine for us
    assert not breaker.follow_open("peer:1", datetime.now(UTC))
    assert not breaker.follow_closed("peer:1")  # its recovery: trusted again
    assert breaker.follow_open("peer:1", datetime.now(UTC))


async def test_a_real_outage_does_not_make_us_distrust_the_peer() -> None:
    """Peer opened us, our trial failed, its ``closed`` ended the wait: it stays trusted."""
    breaker, _ = _breaker()
    assert breaker.follow_open("peer:1", datetime.now(UTC))
    _elapse(breaker)
    with pytest.raises(StoreUnavailableError):
        await breaker.call(_fail)  # our own trial fails: the opening is ours now
    assert breaker.follow_closed("peer:1")
    assert await breaker.call(_ok) == "ok"
    assert breaker.follow_open("peer:1", datetime.now(UTC))


async def test_the_half_open_state_after_a_peer_still_admits_one_trial_only() -> None:
    """After ``follow_closed``, a second concurrent call is refused while the trial runs."""
    breaker, _ = _breaker(fail_max=1)
    with pytest.raises(StoreUnavailableError):
        await breaker.call(_fail)
    breaker.follow_closed("peer:1")
    gate = asyncio.Event()

    async def trial() -> str:
        await gate.wait()
        return "ok"

    first = asyncio.create_task(breaker.call(trial))
    await asyncio.sleep(0)
    with pytest.raises(BreakerOpenError):
        await breaker.call(_ok)
    gate.set()
    assert await first == "ok" and breaker.state == "closed"


async def test_following_from_another_thread_is_consistent() -> None:
    """Peer events applied from threads race safely: one opening, one transition."""
    breaker, seen = _breaker()
    now = datetime.now(UTC)
    threads = [
        threading.Thread(target=breaker.follow_open, args=(f"peer:{i}", now)) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.state == "open" and [t.new for t in seen] == ["open"]


async def test_a_held_stream_wakes_when_a_peer_ends_the_wait() -> None:
    """``hold_until_done`` waiting out a 30 s reset returns once a peer's ``closed`` lands."""
    breaker, _ = _breaker(fail_max=1)
    with pytest.raises(StoreUnavailableError):
        await breaker.call(_fail)
    held = asyncio.create_task(
        hold_until_done(lambda: breaker.call(_ok), initial_s=0.01, max_s=60, what="test")
    )
    await asyncio.sleep(0.1)  # the hold is now waiting on the open breaker (up to 30 s)
    assert not held.done()
    breaker.follow_closed("peer:1")
    assert await asyncio.wait_for(held, 2) == "ok"


def _follower(breaker: Breaker) -> BreakerFollower:
    return BreakerFollower("t", worker="me:1", breakers={"elasticsearch": breaker})


async def test_the_follower_applies_peer_transitions_only() -> None:
    """Own events, heartbeats, ``reason: peer`` echoes, v1, tombstones and junk change nothing."""
    breaker, seen = _breaker()
    follower = _follower(breaker)
    assert follower.handle(_event("open", worker="me:1")) is None
    assert follower.handle(_event("open", heartbeat=True, old="open")) is None
    assert follower.handle(_event("open", reason="peer")) is None
    assert follower.handle(_event("open", breaker="unknown")) is None
    v1 = BreakerEvent.model_validate(
        {
            "breaker": "elasticsearch",
            "from": "closed",
            "to": "open",
            "at": datetime.now(UTC),
            "fail_counter": 3,
            "worker": "peer:1",
        }
    )
    assert follower.handle_value(encode(v1)) is None
    assert follower.handle_value(None) is None
    assert follower.handle_value(b"{not json") is None
    assert breaker.state == "closed" and not seen
    assert follower.handle_value(encode(_event("open"))) == "open"
    assert follower.handle(_event("closed", old="half-open")) == "half-open"
    assert follower.followed == 2 and breaker.state == "half-open"


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes | None]] = []

    async def send_and_wait(self, topic: str, key: Any, value: Any, *args: Any) -> None:
        self.sent.append((key, value))


async def test_heartbeats_restate_state_and_retire_sends_a_tombstone_per_key() -> None:
    """A heartbeat per breaker with partitions; retire tombstones each v2 key and goes quiet."""
    producer = _Producer()
    publisher = BreakerEventPublisher(
        "t", worker="w:1", producer=lambda: producer, heartbeat_s=30.0
    )
    es, _ = _breaker()
    vec = Breaker("vectordb", fail_max=1, reset_timeout_s=30, call_timeout_s=1)
    publisher.attach([es, vec])
    publisher.use_partitions(lambda: ["p.documents:1", "p.documents:0"])
    task = asyncio.create_task(publisher.run())
    try:
        assert publisher.heartbeat() == 2
        publisher.retire()
        with pytest.raises(StoreUnavailableError):
            await vec.call(_fail)  # after retire: not published
        assert await publisher.drain(timeout_s=5)
    finally:
        task.cancel()
    beats = [json.loads(v) for _, v in producer.sent[:2] if v is not None]
    assert [k for k, _ in producer.sent[:2]] == [b"elasticsearch@w:1", b"vectordb@w:1"]
    assert all(b["heartbeat"] and b["from"] == b["to"] == "closed" for b in beats)
    assert all(b["partitions"] == ["p.documents:0", "p.documents:1"] for b in beats)
    assert beats[0]["heartbeat_s"] == 30.0
    assert producer.sent[2:] == [(b"elasticsearch@w:1", None), (b"vectordb@w:1", None)]
