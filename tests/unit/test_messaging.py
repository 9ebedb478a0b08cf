"""``hold_until_done``, the "nothing is lost" loop, and the dead-letter headers, on their own."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from schemas.headers import Headers
from streams.errors import (
    BreakerOpenError,
    SchemaValidationError,
    StoreRejectedError,
    StoreUnavailableError,
)
from streams.messaging import dead_letter_headers, hold_until_done
from tests.fakes import FlakyCall


async def test_a_retriable_failure_is_retried_until_the_work_completes() -> None:
    """N retriable failures, then success: the work ran N + 1 times and its value comes back."""
    work = FlakyCall(StoreUnavailableError("es down"), repeat=5, value="written")
    with capture_logs() as logs:
        got = await hold_until_done(work, initial_s=0.001, max_s=0.004, what="ingest")
    assert got == "written" and work.calls == 6
    holds = [e for e in logs if e["event"] == "dependency_unavailable_holding"]
    assert [e["attempt"] for e in holds] == [1, 2, 3, 4, 5]
    assert {e["what"] for e in holds} == {"ingest"}
    assert {e["error_code"] for e in holds} == {"store_unavailable"}


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses ``hold_until_done`` asks for (each then only yields to the loop)."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        asked.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("streams.messaging.asyncio.sleep", recording_sleep)
    return asked


async def test_the_pause_doubles_up_to_the_maximum(pauses: list[float]) -> None:
    """Pauses between attempts grow exponentially from ``initial_s`` and stop at ``max_s``."""
    work = FlakyCall(StoreUnavailableError("down"), repeat=5)
    await hold_until_done(work, initial_s=0.001, max_s=0.004, what="x")
    assert pauses == [0.001, 0.002, 0.004, 0.004, 0.004]


async def test_an_open_breaker_s_retry_after_is_honoured(pauses: list[float]) -> None:
    """A ``BreakerOpenError`` asking for a longer pause than the backoff gets that pause."""
    work = FlakyCall(BreakerOpenError("vectordb", retry_after_s=0.05), repeat=2)
    assert await hold_until_done(work, initial_s=0.001, max_s=0.004, what="x") == "ok"
    assert pauses == [0.05, 0.05]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(StoreRejectedError("mapping conflict"), id="rejected"),
        pytest.param(SchemaValidationError("bad field"), id="invalid"),
        pytest.param(ValueError("a bug"), id="not-ours"),
    ],
)
async def test_a_non_retriable_error_propagates_at_once(error: Exception) -> None:
    """An error that retrying cannot fix is raised after the first attempt, unchanged."""
    work = FlakyCall(error)
    with pytest.raises(type(error)) as info:
        await hold_until_done(work, initial_s=0.001, max_s=0.004, what="x")
    assert info.value is error and work.calls == 1


async def test_a_hold_can_be_cancelled() -> None:
    """Shutting down mid-hold cancels the loop (the batch stays unacked for the next owner)."""
    holding = asyncio.Event()
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            holding.set()
        raise StoreUnavailableError("down")

    task = asyncio.ensure_future(hold_until_done(work, initial_s=0.001, max_s=0.002, what="x"))
    await asyncio.wait_for(holding.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_dead_letter_headers_strip_credentials_and_say_why() -> None:
    """Dead-letter headers keep the original ones minus credentials, plus code and origin."""
    headers = dead_letter_headers(
        [("trace", b"1"), (Headers.AUTHORIZATION, b"Bearer x"), (Headers.API_KEY, b"k")],
        error=SchemaValidationError("no id"),
        topic="docs",
        partition=1,
        offset=42,
    )
    found = dict(headers)
    assert Headers.AUTHORIZATION not in found and Headers.API_KEY not in found
    assert found["trace"] == b"1"
    assert found[Headers.ERROR_CODE] == b"invalid_schema"
    assert found[Headers.ERROR_MESSAGE] == b"no id"
    assert (found[Headers.ORIGINAL_TOPIC], found[Headers.ORIGINAL_PARTITION]) == (b"docs", b"1")
    assert found[Headers.ORIGINAL_OFFSET] == b"42"
    assert found[Headers.EXCEPTION_TYPE] == b"streams.errors.SchemaValidationError"
