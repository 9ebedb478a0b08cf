"""Cut an async stream into batches: up to ``max_items``, or what came ``within_s`` of the first.

Used by the ingest agent on Faust's no-ack event stream (``ragstream/app.py``), together with
``prepared_ahead``, which prepares the next batch while the current one is being processed.
One pending ``__anext__`` task is kept across waits and never cancelled by a timeout, so an item the
source has handed out is always in a batch (Faust's ``take_events`` is not used: it acks in
a ``finally``, so a stop while a batch is held would commit it unprocessed). Only when the
consumer stops iterating is the pending task cancelled; the item it may hold was never
handed on, so it is never acked either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TypeVar

__all__ = ["batches", "prepared_ahead"]

T = TypeVar("T")
R = TypeVar("R")


class _End:
    """The source is exhausted (a task cannot carry ``StopAsyncIteration`` cleanly)."""


_END = _End()


async def _next(source: AsyncIterator[T]) -> T | _End:
    """``anext(source)`` as a coroutine (for ``create_task``), ``_END`` at the end."""
    try:
        return await source.__anext__()
    except StopAsyncIteration:
        return _END


async def batches(
    source: AsyncIterator[T], *, max_items: int, within_s: float
) -> AsyncGenerator[list[T], None]:
    """Lists of consecutive items, in order: cut at ``max_items`` or ``within_s`` after the first.

    A batch is never empty. If the source ends or raises, the items already taken are
    yielded first, then the iteration ends or the error is raised.
    """
    if max_items < 1:
        raise ValueError("max_items must be >= 1")
    loop = asyncio.get_running_loop()
    pending: asyncio.Task[T | _End] | None = None
    try:
        while True:
            if pending is None:
                pending = loop.create_task(_next(source))
            await asyncio.wait({pending})  # a cancellation of ours leaves the task alone
            batch: list[T] = []
            error: BaseException | None = None
            ended = False
            deadline = loop.time() + within_s
            while pending is not None:
                if not pending.done():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    await asyncio.wait({pending}, timeout=remaining)
                    if not pending.done():
                        break  # time cut: the pending item goes into the next batch
                done, pending = pending, None
                error = done.exception()
                if error is not None:
                    break
                item = done.result()
                if isinstance(item, _End):
                    ended = True
                    break
                batch.append(item)
                if len(batch) < max_items:
                    pending = loop.create_task(_next(source))
            if batch:
                yield batch
            if ended:
                return
            if error is not None:
                raise error
    finally:
        if pending is not None and not pending.done():
            pending.cancel()


async def prepared_ahead(
    source: AsyncIterator[T], prepare: Callable[[T], Awaitable[R]]
) -> AsyncGenerator[tuple[T, R], None]:
    """``(item, await prepare(item))`` in order, the next item taken and prepared one step ahead.

    While the consumer works on item *k*, item *k + 1* is taken from ``source`` and prepared
    in a task, so the preparation must not depend on item *k* being done (the ingest agent
    uses it for reads and look-ahead embeddings; the in-order work re-checks everything).
    At most one item is ahead, and it is only ever handed on in order. Closing the generator
    cancels that task (and so ``source``'s pending ``__anext__``): an item it held was never
    handed on. An error of ``source`` or ``prepare`` is raised after the items before it.
    """
    loop = asyncio.get_running_loop()

    async def step() -> tuple[T, R] | _End:
        item = await _next(source)
        if isinstance(item, _End):
            return _END
        return item, await prepare(item)

    task = loop.create_task(step())
    try:
        while not isinstance(ready := await task, _End):
            task = loop.create_task(step())
            yield ready
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
