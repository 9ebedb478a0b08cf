"""Outgoing messages of the agents: results, replies and dead letters.

Every send here waits for the broker's acknowledgement, because the agent acks the
incoming message (and so lets its offset be committed) only after these return.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import structlog

from schemas.headers import Headers
from streams import metrics
from streams.codec import HeaderList, public_headers
from streams.errors import RagstreamError

__all__ = [
    "Sender",
    "dead_letter_headers",
    "dead_letter_message",
    "hold_until_done",
    "send",
    "send_dead_letter",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")


class Sender(Protocol):
    """What we need of a producer (Faust's or aiokafka's adapter)."""

    async def send_and_wait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Any: ...


async def send(
    producer: Sender,
    topic: str,
    *,
    key: bytes | None,
    value: bytes,
    headers: HeaderList | None = None,
    partition: int | None = None,
) -> None:
    """Send one message and wait until the broker has it."""
    await producer.send_and_wait(topic, key, value, partition, None, headers or None)


def dead_letter_headers(
    headers: Any, *, error: BaseException, topic: str, partition: int, offset: int
) -> HeaderList:
    """The original headers (credentials stripped) plus why and where it came from."""
    code = error.code if isinstance(error, RagstreamError) else "internal"
    message = str(error)[:1000]
    return [
        *public_headers(headers),
        (Headers.ERROR_CODE, code.encode()),
        (Headers.ERROR_MESSAGE, message.encode()),
        (Headers.ORIGINAL_TOPIC, topic.encode()),
        (Headers.ORIGINAL_PARTITION, str(partition).encode()),
        (Headers.ORIGINAL_OFFSET, str(offset).encode()),
        (Headers.EXCEPTION_TYPE, f"{type(error).__module__}.{type(error).__qualname__}".encode()),
    ]


async def send_dead_letter(
    producer: Sender,
    dead_letter_topic: str,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    error: BaseException,
    topic: str,
    partition: int,
    offset: int,
) -> None:
    """Park a message we can never process, byte for byte, with its reason."""
    dl_headers = dead_letter_headers(
        headers, error=error, topic=topic, partition=partition, offset=offset
    )
    await producer.send_and_wait(dead_letter_topic, key, value, None, None, dl_headers)
    code = dict(dl_headers)[Headers.ERROR_CODE].decode()
    metrics.dead_letter(topic, code)
    log.warning("dead_lettered", error_code=code, error=str(error)[:200])


async def dead_letter_message(
    producer: Sender, dead_letter_topic: str, message: Any, *, error: BaseException
) -> None:
    """``send_dead_letter`` of a consumed message: its key, bytes, headers and position."""
    await send_dead_letter(
        producer,
        dead_letter_topic,
        key=message.key,
        value=message.value,
        headers=message.headers,
        error=error,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )


async def hold_until_done(
    work: Callable[[], Awaitable[T]], *, initial_s: float, max_s: float, what: str
) -> T:
    """Retry ``work`` while it fails with a retriable error: the stream waits, nothing drops.

    From the first retriable failure until ``work`` succeeds (or fails for good) the work
    counts as held (``ragstream_holding_seconds{what=...}``).
    """
    delay = initial_s
    attempt = 0
    with contextlib.ExitStack() as held:
        while True:
            try:
                return await work()
            except RagstreamError as exc:
                if not exc.retriable:
                    raise
                if attempt == 0:
                    held.enter_context(metrics.holding(what))
                attempt += 1
                metrics.hold_retry(what, exc.code)
                wait = max(delay, getattr(exc, "retry_after_s", None) or 0.0)
                log.warning(
                    "dependency_unavailable_holding",
                    what=what,
                    attempt=attempt,
                    retry_in_s=round(wait, 2),
                    error_code=exc.code,
                    error=str(exc)[:200],
                )
                await _wait(wait, getattr(exc, "wake", None))
                delay = min(delay * 2, max_s)


async def _wait(seconds: float, wake: Callable[[], Awaitable[None]] | None) -> None:
    """Sleep ``seconds``, or less when ``wake()`` (an open breaker admitting again) returns."""
    if wake is None:
        await asyncio.sleep(seconds)
        return
    try:
        async with asyncio.timeout(seconds):
            await wake()
    except TimeoutError:
        pass
