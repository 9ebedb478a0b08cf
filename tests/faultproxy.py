"""A small fault-injecting TCP proxy (asyncio), in the style of Toxiproxy, for the tests.

``FaultProxy(upstream_host, upstream_port)`` listens on a free loopback port and forwards
each connection to the upstream. Faults apply at once to open and new connections, and
``heal()`` removes them all:

- ``latency_s``: each chunk from the upstream is delayed (order kept);
- ``bandwidth_bps``: bytes per second from the upstream, at most;
- ``reset``: every connection (open or new) is closed with a TCP RST;
- ``blackhole``: connections are accepted and data is swallowed, nothing is answered; a
  connection that lost data this way is reset on ``heal()`` (its stream is broken);
- ``close_after_bytes``: a connection is closed once that many bytes came from the
  upstream through it (Toxiproxy's ``limit_data``).

Counters (``connections``, ``bytes_down``, ``faulted``) tell a test that traffic went through.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["FaultProxy", "Faults"]

_CHUNK = 65536


@dataclass(frozen=True)
class Faults:
    """The faults in force (all off by default)."""

    latency_s: float = 0.0
    bandwidth_bps: int | None = None
    reset: bool = False
    blackhole: bool = False
    close_after_bytes: int | None = None

    def active(self) -> list[str]:
        """Names of the faults that are on."""
        return [f.name for f in fields(self) if getattr(self, f.name) not in (0.0, None, False)]


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    transport.abort()


class _Connection:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter | None) -> None:
        self.client = client
        self.upstream = upstream
        self.down = 0  # bytes sent to the client
        self.lost = False  # data swallowed by a blackhole
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        _abort(self.client)
        if self.upstream is not None:
            _abort(self.upstream)
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """One listening port, forwarding to one upstream, with switchable faults."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults = Faults()
        self.port = port
        self.connections = 0
        self.bytes_down = 0
        self.faulted: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._open: set[_Connection] = set()

    @property
    def address(self) -> str:
        """``127.0.0.1:port`` to give the client."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        """Listen (on ``port``, or a free one)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._open):
            conn.abort()
        self._open.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def set(self, **faults: Any) -> None:
        """Switch faults on (``set(latency_s=0.5)``); the others stay as they are."""
        self.faults = replace(self.faults, **faults)
        for name in Faults(**faults).active():
            self.faulted[name] = self.faulted.get(name, 0) + 1
        if self.faults.reset:
            for conn in list(self._open):
                conn.abort()
            self._open.clear()

    def heal(self) -> None:
        """Every fault off; connections that lost data to a blackhole are reset."""
        self.faults = Faults()
        for conn in [c for c in self._open if c.lost]:
            conn.abort()
            self._open.discard(conn)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.faults.reset:
            _abort(writer)
            return
        if self.faults.blackhole:  # swallow, never answer; reset once healed
            conn = _Connection(writer, None)
            conn.lost = True
            self._open.add(conn)
            with contextlib.suppress(ConnectionError, OSError):
                while await reader.read(_CHUNK):
                    pass
            self._open.discard(conn)
            conn.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(writer)  # upstream down: the client sees a reset, as with a dead host
            return
        conn = _Connection(writer, up_writer)
        self._open.add(conn)
        conn.tasks = [
            asyncio.create_task(self._pump(conn, reader, up_writer, downstream=False)),
            asyncio.create_task(self._pump(conn, up_reader, writer, downstream=True)),
        ]
        try:
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        finally:
            self._open.discard(conn)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pump(
        self,
        conn: _Connection,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        *,
        downstream: bool,
    ) -> None:
        try:
            while True:
                data = await src.read(_CHUNK)
                if not data:
                    break
                faults = self.faults
                if faults.blackhole:
                    conn.lost = True
                    continue
                if downstream:
                    data = await self._shape(conn, data, faults)
                    if data is None:
                        return
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if conn.lost or self.faults.reset:
                conn.abort()
            else:
                with contextlib.suppress(Exception):
                    dst.write_eof() if dst.can_write_eof() else dst.close()
            # The other direction ends too: one side closing ends the connection.
            for task in conn.tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def _shape(self, conn: _Connection, data: bytes, faults: Faults) -> bytes | None:
        """Latency, bandwidth and the byte limit on data going to the client."""
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        if faults.close_after_bytes is not None:
            room = faults.close_after_bytes - conn.down
            if room <= 0:
                conn.abort()
                return None
            if len(data) > room:
                conn.client.write(data[:room])
                conn.down += room
                self.bytes_down += room
                with contextlib.suppress(Exception):
                    await conn.client.drain()
                conn.abort()
                return None
        if faults.bandwidth_bps:
            # In slices of a tenth of a second's worth, so a limit also paces big chunks.
            step = max(faults.bandwidth_bps // 10, 1)
            for i in range(0, len(data), step):
                piece = data[i : i + step]
                # Wait first, then send: no piece leaves before its share of time has passed.
                await asyncio.sleep(len(piece) / faults.bandwidth_bps)
                conn.client.write(piece)
                await conn.client.drain()
            conn.down += len(data)
            self.bytes_down += len(data)
            return b""
        conn.down += len(data)
        self.bytes_down += len(data)
        return data
