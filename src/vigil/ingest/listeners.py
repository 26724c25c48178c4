"""Thin asyncio listeners: they frame bytes and hand them on, nothing else.

Parsing happens in the ``ChunkWorker`` (plaintext) or the StatsD stage, so a
listener never blocks the event loop and no input can crash it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import cast

from vigil.ingest.linebuffer import ChunkWorker, LineFramer
from vigil.model import Reject

RejectSink = Callable[[list[Reject]], None]


async def close_servers(
    servers: Sequence[asyncio.AbstractServer], busy: Callable[[], bool], drain_seconds: float
) -> None:
    """Stop accepting, then wait up to ``drain_seconds`` while ``busy()`` (senders finishing)."""
    for server in servers:
        server.close()
    deadline = time.monotonic() + drain_seconds
    while busy() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


class LineStreamProtocol(asyncio.Protocol):
    """A TCP connection of newline-framed lines (Graphite plaintext)."""

    def __init__(
        self,
        worker: ChunkWorker,
        max_line_bytes: int,
        on_rejects: RejectSink,
        open_connections: set[LineStreamProtocol],
    ) -> None:
        self.worker = worker
        self.framer = LineFramer(max_line_bytes)
        self.on_rejects = on_rejects
        self.open_connections = open_connections
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.open_connections.add(self)

    def data_received(self, data: bytes) -> None:
        lines, rejects = self.framer.feed(data)
        if rejects:
            self.on_rejects(rejects)
        self.worker.add(lines, self.transport)

    def eof_received(self) -> bool | None:
        self.worker.add(self.framer.close())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.add(self.framer.close())
        self.open_connections.discard(self)


class LineDatagramProtocol(asyncio.DatagramProtocol):
    """UDP datagrams each holding whole lines (Graphite plaintext over UDP).

    UDP cannot be paused: while the worker is overloaded, datagrams are
    dropped and reported as rejects.
    """

    def __init__(self, worker: ChunkWorker, on_rejects: RejectSink) -> None:
        self.worker = worker
        self.on_rejects = on_rejects

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        if self.worker.overloaded:
            lines = data.count(b"\n") + (not data.endswith(b"\n"))
            self.on_rejects([Reject.of("receive buffer full, datagram dropped", data, lines)])
            return
        self.worker.add(data if data.endswith(b"\n") else data + b"\n")


class DatagramCollector(asyncio.DatagramProtocol):
    """UDP datagrams kept in a bounded list until the owner takes them (StatsD)."""

    def __init__(self, max_datagrams: int) -> None:
        self.max_datagrams = max_datagrams
        self.datagrams: list[bytes] = []
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        if len(self.datagrams) >= self.max_datagrams:
            self.dropped += 1
            return
        self.datagrams.append(data)

    def take(self) -> list[bytes]:
        """Every datagram received since the last take."""
        taken, self.datagrams = self.datagrams, []
        return taken
