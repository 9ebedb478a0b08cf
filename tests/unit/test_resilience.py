"""The asyncio breaker guard: each property the resilience design promises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.resilience import Breaker, Guarded, Transition
from streams.errors import (
    BreakerOpenError,
    SchemaValidationError,
    StoreRejectedError,
    StoreUnavailableError,
)


def _breaker(**kw: object) -> tuple[Breaker, list[Transition]]:
    seen: list[Transition] = []
    params: dict = {
        "fail_max": 3,
        "reset_timeout_s": 30.0,
        "call_timeout_s": 1.0,
        "unavailable": StoreUnavailableError,
    } | kw
    breaker = Breaker("elasticsearch", **params, on_transition=[seen.append])
    return breaker, seen


async def _fail() -> None:
    raise StoreUnavailableError("connection refused")


async def _ok() -> str:
    return "ok"


def _elapse(breaker: Breaker) -> None:
    """Move the open breaker's clock past its reset timeout (instead of sleeping)."""
    breaker.cb._state_storage.opened_at = datetime.now(UTC) - timedelta(seconds=3600)


async def _trip(breaker: Breaker) -> None:
    for _ in range(breaker.cb.fail_max):
        with pytest.raises(StoreUnavailableError):
            await breaker.call(_fail)


async def test_failures_count_and_trip_the_breaker() -> None:
    """fail_max retriable failures open it; then calls are refused without running."""
    breaker, seen = _breaker()
    await _trip(breaker)
    assert breaker.state == "open"
    assert [(t.old, t.new) for t in seen] == [("closed", "open")]
    assert seen[0].fail_counter == 3 and "connection refused" in (seen[0].error or "")
    ran = False

    async def probe() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(BreakerOpenError) as info:
        await breaker.call(probe)
    assert not ran and info.value.retry_after_s and info.value.retry_after_s > 25


async def test_success_resets_the_counter() -> None:
    """Failures must be consecutive to trip it."""
    breaker, _ = _breaker()
    for _ in range(2):
        for _ in range(2):
            with pytest.raises(StoreUnavailableError):
                await breaker.call(_fail)
        assert breaker.cb.fail_counter == 2
        assert await breaker.call(_ok) == "ok"
        assert breaker.cb.fail_counter == 0
    assert breaker.state == "closed"


async def test_timeouts_count_as_failures() -> None:
    """A call that hangs is cut at call_timeout_s and counted."""
    breaker, _ = _breaker(call_timeout_s=0.01, fail_max=1)

    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(StoreUnavailableError, match="no answer within"):
        await breaker.call(hang)
    assert breaker.state == "open"


async def test_business_errors_do_not_trip() -> None:
    """A rejected request (4xx, validation) says nothing about the dependency's health."""
    breaker, _ = _breaker(fail_max=1)
    for error in (StoreRejectedError("bad query"), SchemaValidationError("bad field")):

        async def reject(error: Exception = error) -> None:
            raise error

        with pytest.raises(type(error)):
            await breaker.call(reject)
    assert breaker.state == "closed" and breaker.cb.fail_counter == 0


async def test_cancellation_counts_as_nothing() -> None:
    """A cancelled call neither fails nor succeeds, and frees the half-open trial slot."""
    breaker, _ = _breaker(fail_max=2)
    with pytest.raises(StoreUnavailableError):
        await breaker.call(_fail)
    task = asyncio.create_task(breaker.call(lambda: asyncio.Event().wait()))
    await asyncio.sleep(0)  # let the task start its call
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.cb.fail_counter == 1 and breaker.state == "closed"


async def test_half_open_admits_exactly_one_trial() -> None:
    """After the reset timeout one trial goes through; concurrent calls are refused meanwhile."""
    breaker, seen = _breaker()
    await _trip(breaker)
    _elapse(breaker)
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "recovered"

    trial = asyncio.create_task(breaker.call(slow_ok))
    await asyncio.sleep(0)
    assert breaker.state == "half-open"
    with pytest.raises(BreakerOpenError):
        await breaker.call(_ok)
    gate.set()
    assert await trial == "recovered"
    assert breaker.state == "closed"
    assert [(t.old, t.new) for t in seen] == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]


async def test_failed_trial_reopens() -> None:
    """A failing trial call opens the breaker again for another reset timeout."""
    breaker, seen = _breaker()
    await _trip(breaker)
    _elapse(breaker)
    with pytest.raises(StoreUnavailableError):
        await breaker.call(_fail)
    assert breaker.state == "open" and seen[-1].new == "open"
    with pytest.raises(BreakerOpenError):
        await breaker.call(_ok)


async def test_status_reports_state_and_last_failure() -> None:
    """Status says whether calls are allowed and what failed last."""
    breaker, _ = _breaker()
    assert breaker.status().allows_calls
    await _trip(breaker)
    status = breaker.status()
    assert (status.state, status.fail_counter, status.allows_calls) == ("open", 3, False)
    assert status.last_failure and status.last_failure.startswith("StoreUnavailableError")
    _elapse(breaker)
    assert breaker.status().allows_calls


async def test_guarded_proxy_routes_coroutines_through_the_breaker() -> None:
    """Every coroutine method of the wrapped object is guarded; attributes pass through."""

    class Store:
        name = "fake"
        calls = 0

        async def search(self, q: str) -> str:
            Store.calls += 1
            raise StoreUnavailableError("down")

        async def aclose(self) -> None:
            return None

    breaker, _ = _breaker(fail_max=1)
    store = Guarded(Store(), breaker)
    assert store.name == "fake"
    with pytest.raises(StoreUnavailableError):
        await store.search("x")
    with pytest.raises(BreakerOpenError):
        await store.search("x")
    assert Store.calls == 1
    await store.aclose()  # unguarded: closing works while open


async def test_last_failure_is_scrubbed() -> None:
    """A failure message carrying a credential never reaches status (or events) in the clear."""
    breaker, seen = _breaker(fail_max=1)

    async def leak() -> None:
        token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
        raise StoreUnavailableError(f"auth failed for Bearer {token}")

    with pytest.raises(StoreUnavailableError):
        await breaker.call(leak)
    assert "eyJ" not in (breaker.status().last_failure or "")
    assert "eyJ" not in (seen[-1].error or "")
