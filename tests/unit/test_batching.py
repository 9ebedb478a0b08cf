"""``streams.batching.batches``: cut by size and by time, nothing lost, order kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from streams.batching import batches, prepared_ahead


async def _from_queue(queue: asyncio.Queue[int | None]) -> AsyncIterator[int]:
    """Items from a queue until ``None``."""
    while (item := await queue.get()) is not None:
        yield item


async def _items(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def test_cut_by_size_keeps_order_and_loses_nothing() -> None:
    """Items already waiting come in full batches, in order, and the rest at the end."""
    got = [b async for b in batches(_items(10), max_items=4, within_s=10)]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_cut_by_time_after_the_first_item() -> None:
    """A batch is cut ``within_s`` after its first item; a later item starts the next batch."""
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    async with aclosing(batches(_from_queue(queue), max_items=100, within_s=0.05)) as cut:
        for i in (1, 2):
            queue.put_nowait(i)
        assert await anext(cut) == [1, 2]
        queue.put_nowait(3)
        assert await anext(cut) == [3]


async def test_an_item_arriving_after_the_cut_is_not_lost() -> None:
    """The pending fetch outlives the timeout: an item it then gets goes into the next batch."""
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    async with aclosing(batches(_from_queue(queue), max_items=5, within_s=0.01)) as cut:
        queue.put_nowait(1)
        assert await anext(cut) == [1]  # cut while a fetch is pending
        for i in (2, 3, 4):
            queue.put_nowait(i)
        queue.put_nowait(None)
        assert [b async for b in cut] == [[2, 3, 4]]


async def test_many_items_with_random_gaps_all_arrive_in_order() -> None:
    """Under a mix of bursts and pauses every item arrives exactly once, in order."""
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def produce() -> None:
        for i in range(200):
            queue.put_nowait(i)
            if i % 17 == 0:
                await asyncio.sleep(0.003)
        queue.put_nowait(None)

    producer = asyncio.create_task(produce())
    got = [b async for b in batches(_from_queue(queue), max_items=8, within_s=0.002)]
    await producer
    assert [i for b in got for i in b] == list(range(200))
    assert all(1 <= len(b) <= 8 for b in got)


async def test_a_source_error_comes_after_the_items_taken() -> None:
    """Items taken before the source fails are yielded, then its error is raised."""

    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise RuntimeError("boom")

    cut = batches(failing(), max_items=10, within_s=10)
    assert await anext(cut) == [1, 2]
    with pytest.raises(RuntimeError, match="boom"):
        await anext(cut)


async def test_closing_cancels_the_pending_fetch() -> None:
    """Closing the batches stops the fetch still waiting on the source."""
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    cancelled = asyncio.Event()

    async def watched() -> AsyncIterator[int]:
        try:
            async for item in _from_queue(queue):
                yield item
        except asyncio.CancelledError:
            cancelled.set()
            raise

    cut = batches(watched(), max_items=5, within_s=0.01)
    queue.put_nowait(1)
    assert await anext(cut) == [1]
    await cut.aclose()
    async with asyncio.timeout(5):
        await cancelled.wait()


async def test_max_items_must_be_positive() -> None:
    """A batch size below one is refused."""
    with pytest.raises(ValueError, match="max_items"):
        await anext(batches(_items(1), max_items=0, within_s=1))


async def test_prepared_ahead_keeps_order_and_prepares_one_step_ahead() -> None:
    """Item k + 1 is prepared while the consumer still works on item k; never two ahead."""
    prepared: list[int] = []
    ready = [asyncio.Event() for _ in range(4)]

    async def prepare(i: int) -> str:
        prepared.append(i)
        ready[i].set()
        return f"p{i}"

    got: list[tuple[int, str]] = []
    async with aclosing(prepared_ahead(_items(4), prepare)) as ahead:
        async for item, result in ahead:
            got.append((item, result))
            if item + 1 < 4:  # the consumer works on item k until k + 1 has been prepared
                await asyncio.wait_for(ready[item + 1].wait(), 5)
            for _ in range(20):  # give a second look-ahead every chance to run (no clock)
                await asyncio.sleep(0)
            assert prepared == list(range(min(item + 2, 4)))  # k + 1 is ready, k + 2 is not
    assert got == [(0, "p0"), (1, "p1"), (2, "p2"), (3, "p3")]


async def test_prepared_ahead_close_cancels_the_item_ahead() -> None:
    """Closing mid-way cancels the preparation in flight; its item is never handed on."""
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def prepare(i: int) -> int:
        if i == 1:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return i

    ahead = prepared_ahead(_items(5), prepare)
    assert await anext(ahead) == (0, 0)
    await asyncio.wait_for(started.wait(), 1)
    await ahead.aclose()
    assert cancelled.is_set()


async def test_prepared_ahead_raises_after_the_items_before_the_error() -> None:
    """A failing preparation surfaces after every earlier item was handed on."""

    async def prepare(i: int) -> int:
        if i == 2:
            raise ValueError("bad item")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item"):
        async for item, _ in prepared_ahead(_items(5), prepare):
            got.append(item)
    assert got == [0, 1]
