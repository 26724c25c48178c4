"""Batching of newline-framed input from many connections into big parse chunks.

Every TCP connection keeps its own partial last line; complete lines from all
connections (and UDP datagrams) go into one pending buffer that a single
worker cuts into chunks of ``chunk_bytes`` (or whatever arrived within
``chunk_seconds``) and parses off the event loop. Parsing big chunks is what
makes the vectorised parser pay off. The pending buffer is bounded: past
``4 * chunk_bytes`` readers are paused until the worker catches up, which
pushes back on the senders through TCP.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable

from vigil.model import ParseResult, Reject

Parser = Callable[[bytes, int], ParseResult]
Sink = Callable[[ParseResult], Awaitable[None]]


class LineFramer:
    """Cuts one stream into complete lines, rejecting lines longer than the limit."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._partial = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> tuple[bytes, list[Reject]]:
        """Complete lines of ``data`` (with what came before), and over-long line rejects."""
        rejects: list[Reject] = []
        cut = data.rfind(b"\n")
        if cut < 0:
            if not self._discarding:
                self._partial += data
                if len(self._partial) > self.max_line_bytes:
                    rejects.append(self._too_long(bytes(self._partial)))
                    self._partial.clear()
                    self._discarding = True
            return b"", rejects
        head, tail = data[: cut + 1], data[cut + 1 :]
        if self._discarding:
            head = head[head.find(b"\n") + 1 :]
            self._discarding = False
        lines = bytes(self._partial) + head if self._partial else head
        self._partial = bytearray(tail)
        if len(self._partial) > self.max_line_bytes:
            rejects.append(self._too_long(bytes(self._partial)))
            self._partial.clear()
            self._discarding = True
        return lines, rejects

    def close(self) -> bytes:
        """The unterminated last line at end of stream, as a complete line."""
        rest = b"" if self._discarding or not self._partial else bytes(self._partial) + b"\n"
        self._partial.clear()
        return rest

    def _too_long(self, line: bytes) -> Reject:
        return Reject.of(f"line longer than {self.max_line_bytes} bytes", line)


class ChunkWorker:
    """Collects complete lines from every source and parses them in big chunks."""

    def __init__(
        self,
        parser: Parser,
        sink: Sink,
        chunk_bytes: int,
        chunk_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.parser = parser
        self.sink = sink
        self.chunk_bytes = chunk_bytes
        self.chunk_seconds = chunk_seconds
        self.clock = clock
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._ready = asyncio.Event()
        self._paused: set[asyncio.Transport] = set()

    @property
    def full(self) -> bool:
        """Whether readers should pause until the worker catches up."""
        return self._pending_bytes >= 4 * self.chunk_bytes

    @property
    def overloaded(self) -> bool:
        """Whether sources that cannot be paused (UDP) must drop what they receive."""
        return self._pending_bytes >= 8 * self.chunk_bytes

    def add(self, lines: bytes, transport: asyncio.Transport | None = None) -> None:
        """Queue complete lines; pause ``transport`` while the buffer is full."""
        if not lines:
            return
        self._pending.append(lines)
        self._pending_bytes += len(lines)
        if self._pending_bytes >= self.chunk_bytes:
            self._ready.set()
        if self.full and transport is not None and transport not in self._paused:
            transport.pause_reading()
            self._paused.add(transport)

    async def run(self) -> None:
        """Parse and hand on chunks until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self.chunk_seconds)
            self._ready.clear()
            await self.flush()

    async def flush(self) -> None:
        """Parse everything pending now."""
        while self._pending:
            chunk = self._take()
            result = await asyncio.to_thread(self.parser, chunk, int(self.clock()))
            await self.sink(result)
            if not self.full:
                for transport in self._paused:
                    if not transport.is_closing():
                        transport.resume_reading()
                self._paused.clear()

    def _take(self) -> bytes:
        """Up to about ``chunk_bytes`` of pending lines as one chunk."""
        taken: list[bytes] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0]) <= self.chunk_bytes):
            part = self._pending.popleft()
            taken.append(part)
            size += len(part)
        self._pending_bytes -= size
        return b"".join(taken)
