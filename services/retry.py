"""Retries with exponential backoff for transient errors inside a closed breaker.

Sits just outside a ``Guarded`` call: each attempt goes through the breaker (and counts
there), so a breaker that opens mid-way stops the retries at once (``BreakerOpenError`` is
never retried: the agent holds the message instead). Business errors (non-retriable
``RagstreamError``) are never retried; ``retry_after_s`` on the error (a 429's
``Retry-After``) is honoured as the least wait.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import structlog

from streams.errors import BreakerOpenError, RagstreamError

__all__ = ["Retrying", "backoff_delays", "is_transient", "retry_with_backoff"]

log = structlog.get_logger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Worth another try now: a retriable error of ours that is not an open breaker."""
    return (
        isinstance(exc, RagstreamError) and exc.retriable and not isinstance(exc, BreakerOpenError)
    )


def backoff_delays(
    max_retries: int,
    *,
    initial_delay_s: float,
    exponential_base: float,
    jitter: bool,
    rng: random.Random | None = None,
) -> list[float]:
    """The waits before retry 1..n: ``initial * base**i``, jittered to 50-100 % if asked."""
    rand = rng or random
    delays = []
    for i in range(max_retries):
        delay = initial_delay_s * exponential_base**i
        delays.append(delay * rand.uniform(0.5, 1.0) if jitter else delay)
    return delays


async def retry_with_backoff(
    func: Callable[[], Awaitable[T]],
    max_retries: int = 3,
    initial_delay_s: float = 1.0,
    exponential_base: float = 2.0,
    jitter: bool = True,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    what: str = "call",
) -> T:
    """``await func()``, retrying transient errors up to ``max_retries`` times."""
    delays = backoff_delays(
        max_retries,
        initial_delay_s=initial_delay_s,
        exponential_base=exponential_base,
        jitter=jitter,
    )
    attempt = 0
    while True:
        try:
            return await func()
        except Exception as exc:
            if not is_transient(exc) or attempt >= max_retries:
                raise
            wait = max(delays[attempt], getattr(exc, "retry_after_s", None) or 0.0)
            attempt += 1
            log.info(
                "retrying",
                what=what,
                attempt=attempt,
                of=max_retries,
                retry_in_s=round(wait, 3),
                error_type=type(exc).__name__,
            )
            await sleep(wait)


class Retrying:
    """A proxy whose named coroutine methods run through ``retry_with_backoff``."""

    def __init__(self, inner: Any, *, methods: Iterable[str], **options: Any) -> None:
        self._inner = inner
        self._methods = frozenset(methods)
        self._options = options

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self._methods:
            return attr

        async def retried(*args: Any, **kwargs: Any) -> Any:
            return await retry_with_backoff(
                lambda: attr(*args, **kwargs), what=name, **self._options
            )

        retried.__name__ = name
        return retried
