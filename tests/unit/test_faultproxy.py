"""The fault-injecting proxy: each fault does what it says, against an echo server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.faultproxy import FaultProxy, Faults


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    """A proxy in front of an echo server, both on loopback."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with FaultProxy("127.0.0.1", port) as p:
        yield p
    server.close()


async def _connect(p: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", p.port)


async def _roundtrip(p: FaultProxy, payload: bytes) -> bytes:
    reader, writer = await _connect(p)
    writer.write(payload)
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    writer.close()
    return got


async def test_without_faults_bytes_pass_both_ways(proxy: FaultProxy) -> None:
    """An echo through the proxy comes back whole, and is counted."""
    payload = bytes(range(256)) * 1000
    assert await _roundtrip(proxy, payload) == payload
    assert proxy.connections == 1 and proxy.bytes_down == len(payload)
    assert Faults().active() == []


async def test_latency_delays_every_answer(proxy: FaultProxy) -> None:
    """With 0.3 s latency an echo cannot come back sooner than that."""
    proxy.set(latency_s=0.3)
    started = time.monotonic()
    assert await _roundtrip(proxy, b"ping") == b"ping"
    assert time.monotonic() - started >= 0.3
    assert proxy.faulted == {"latency_s": 1}


async def test_bandwidth_limits_bytes_per_second(proxy: FaultProxy) -> None:
    """100 kB at 200 kB/s takes at least half a second."""
    proxy.set(bandwidth_bps=200_000)
    payload = b"x" * 100_000
    started = time.monotonic()
    assert await _roundtrip(proxy, payload) == payload
    assert time.monotonic() - started >= 0.45


async def test_reset_kills_open_and_new_connections(proxy: FaultProxy) -> None:
    """An open connection and every new one end in a reset (or EOF) until healed."""
    reader, writer = await _connect(proxy)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    proxy.set(reset=True)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        writer.write(b"b")
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(1), 5)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _roundtrip(proxy, b"c")
    proxy.heal()
    assert await _roundtrip(proxy, b"d") == b"d"


async def test_blackhole_accepts_and_never_answers_then_resets_on_heal(proxy: FaultProxy) -> None:
    """Data goes in, nothing comes out; healing resets that broken stream, new ones work."""
    proxy.set(blackhole=True)
    reader, writer = await _connect(proxy)  # accepted
    writer.write(b"hello")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.5)
    proxy.heal()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 5)
    assert await _roundtrip(proxy, b"again") == b"again"


async def test_blackhole_swallows_traffic_on_an_open_connection(proxy: FaultProxy) -> None:
    """A connection opened before the blackhole stops getting answers too."""
    reader, writer = await _connect(proxy)
    writer.write(b"1")
    assert await reader.readexactly(1) == b"1"
    proxy.set(blackhole=True)
    writer.write(b"2")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.5)


async def test_close_after_bytes_cuts_the_connection_mid_answer(proxy: FaultProxy) -> None:
    """With a 10-byte limit, an echo of 100 bytes returns exactly 10, then the end."""
    proxy.set(close_after_bytes=10)
    reader, writer = await _connect(proxy)
    writer.write(b"y" * 100)
    await writer.drain()
    got = b""
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        while True:
            chunk = await asyncio.wait_for(reader.read(100), 5)
            if not chunk:
                raise asyncio.IncompleteReadError(got, 100)
            got += chunk
    assert got == b"y" * 10


async def test_an_upstream_that_is_down_looks_like_a_reset(proxy: FaultProxy) -> None:
    """Nothing listening upstream: the client's connection is reset, not hung."""
    async with FaultProxy("127.0.0.1", proxy.port) as chained:
        await proxy.stop()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await _roundtrip(chained, b"z")
