"""retry_with_backoff: transient errors retried with backoff, Retry-After honoured, nothing else."""

from __future__ import annotations

import random

import pytest

from services.resilience import Breaker, Guarded
from services.retry import Retrying, backoff_delays, retry_with_backoff
from streams.errors import (
    BreakerOpenError,
    EmbeddingRejectedError,
    EmbeddingUnavailableError,
    StoreUnavailableError,
)
from tests.fakes import FlakyCall


class Sleeps:
    """A fake ``sleep`` recording the waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def test_transient_errors_are_retried_with_exponential_backoff() -> None:
    """Two 503s then success: two waits of 1 s and 2 s (no jitter)."""
    func, sleep = (
        FlakyCall(EmbeddingUnavailableError("503"), StoreUnavailableError("reset")),
        Sleeps(),
    )
    assert await retry_with_backoff(func, jitter=False, sleep=sleep) == "ok"
    assert func.calls == 3 and sleep.waits == [1.0, 2.0]


async def test_gives_up_after_max_retries_with_the_last_error() -> None:
    """``max_retries`` retries, then the error propagates."""
    func, sleep = FlakyCall(*[EmbeddingUnavailableError(f"503 #{i}") for i in range(5)]), Sleeps()
    with pytest.raises(EmbeddingUnavailableError, match="#3"):
        await retry_with_backoff(
            func, max_retries=3, initial_delay_s=0.5, exponential_base=3, jitter=False, sleep=sleep
        )
    assert func.calls == 4 and sleep.waits == [0.5, 1.5, 4.5]


async def test_retry_after_of_a_429_is_the_least_wait() -> None:
    """A 429 asking for 7 s waits 7 s even though the backoff says 1 s."""
    func, sleep = FlakyCall(EmbeddingUnavailableError("429", retry_after_s=7.0)), Sleeps()
    assert await retry_with_backoff(func, jitter=False, sleep=sleep) == "ok"
    assert sleep.waits == [7.0]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(BreakerOpenError("openai", retry_after_s=30), id="breaker-open"),
        pytest.param(EmbeddingRejectedError("400 bad input"), id="business-error"),
        pytest.param(ValueError("bug"), id="not-ours"),
    ],
)
async def test_open_breakers_business_errors_and_bugs_are_never_retried(error: Exception) -> None:
    """One call, no wait, the same error."""
    func, sleep = FlakyCall(error), Sleeps()
    with pytest.raises(type(error)):
        await retry_with_backoff(func, sleep=sleep)
    assert func.calls == 1 and sleep.waits == []


def test_jitter_stays_between_half_and_all_of_the_delay() -> None:
    """Jittered waits lie in [50 %, 100 %] of the exponential delay."""
    delays = backoff_delays(
        4, initial_delay_s=1.0, exponential_base=2.0, jitter=True, rng=random.Random(7)
    )
    for i, delay in enumerate(delays):
        assert 0.5 * 2**i <= delay <= 2**i


async def test_retries_stop_as_soon_as_the_breaker_opens() -> None:
    """Through a breaker with fail_max 2, the third attempt is refused, not sent."""
    breaker = Breaker(
        "openai",
        fail_max=2,
        reset_timeout_s=60,
        call_timeout_s=1,
        unavailable=EmbeddingUnavailableError,
    )

    class Embedder:
        calls = 0

        async def embed(self, texts: list[str]) -> list[list[float]]:
            Embedder.calls += 1
            raise EmbeddingUnavailableError("502")

    sleep = Sleeps()
    proxy = Retrying(
        Guarded(Embedder(), breaker), methods=("embed",), max_retries=5, jitter=False, sleep=sleep
    )
    with pytest.raises(BreakerOpenError):
        await proxy.embed(["x"])
    assert Embedder.calls == 2 and len(sleep.waits) == 2 and breaker.state == "open"
