"""The log half of ingest: event-log TCP with acks, syslog UDP/TCP, and JSON-lines bodies.

Every path ends in ``LogIngest.publish``: entries are stamped with their
``uid`` and handed to the bus, durably for the protocols that acknowledge
(``docs/formats/eventlog.md``), so an ack is only sent once the bus has the
entries on disk. One event-log connection is handled in order: a chunk is
parsed, published and acknowledged before the next one is read, so entries
from one source keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable

import numpy as np
import orjson
import pyarrow as pa
from prometheus_client import Counter

from vigil.bus.destination import BusFull
from vigil.bus.fanout import Bus
from vigil.ingest.eventlog import REPAIRED_UTF8, LineReject, ParsedEntries, parse_chunk
from vigil.ingest.listeners import close_servers
from vigil.ingest.logrules import LogRules
from vigil.ingest.rejects import RejectLog
from vigil.ingest.syslog import parse_syslog
from vigil.ingest.syslog_framing import SyslogFramer
from vigil.model import LOGS_SCHEMA
from vigil.settings import IngestSettings
from vigil.telemetry import Telemetry

_UID = LOGS_SCHEMA.get_field_index("uid")
# Most bytes of syslog messages waiting to be parsed; UDP beyond it is dropped, TCP waits.
SYSLOG_PENDING_BYTES = 32 << 20


class UidClock:
    """Hands out entry uids: unique, increasing, starting from the microsecond clock.

    Starting from the clock keeps uids increasing across restarts as long as
    the rate stays under a million entries per second.
    """

    def __init__(self) -> None:
        self._next = time.time_ns() // 1000

    def stamp(self, batch: pa.Table) -> pa.Table:
        """``batch`` with fresh uids, in row order."""
        first = max(self._next, time.time_ns() // 1000)
        self._next = first + batch.num_rows
        uids = pa.array(np.arange(first, self._next, dtype=np.uint64))
        return batch.set_column(_UID, LOGS_SCHEMA.field("uid"), uids)


class LogIngest:
    """The log listeners of one node and the path from parsed entries to the bus."""

    def __init__(
        self,
        settings: IngestSettings,
        bind: str,
        bus: Bus,
        telemetry: Telemetry,
        rejects: RejectLog,
    ) -> None:
        self.settings = settings
        self.bind = bind
        self.bus = bus
        self.rules = LogRules(
            settings.log_max_entry_bytes, settings.log_future_seconds, settings.log_past_seconds
        )
        self.rejects = rejects
        self.received = Counter(
            "vigil_ingest_log_entries",
            "Log entries accepted by a listener, by protocol.",
            ["protocol"],
            registry=telemetry.registry,
        )
        self.repaired = Counter(
            "vigil_ingest_log_repaired",
            "Log entries accepted after a repair, by protocol and rule.",
            ["protocol", "rule"],
            registry=telemetry.registry,
        )
        self.dropped = Counter(
            "vigil_ingest_log_dropped",
            "Log input dropped before parsing, by protocol and reason.",
            ["protocol", "reason"],
            registry=telemetry.registry,
        )
        self.uids = UidClock()
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._syslog: list[bytes] = []
        self._syslog_bytes = 0
        self._syslog_room = asyncio.Event()
        self._syslog_room.set()
        self._syslog_ready = asyncio.Event()

    async def publish(self, protocol: str, parsed: ParsedEntries, durable: bool) -> None:
        """Count rejects and repairs, stamp uids, publish; ``BusFull`` if not accepted."""
        self.rejects.record(protocol, [r.as_reject() for r in parsed.rejects])
        if parsed.repaired:
            self.repaired.labels(protocol, REPAIRED_UTF8).inc(parsed.repaired)
        if parsed.entries.num_rows:
            await self.bus.publish(self.uids.stamp(parsed.entries), durable=durable)
            self.received.labels(protocol).inc(parsed.entries.num_rows)

    async def accept_jsonlines(self, body: bytes) -> ParsedEntries:
        """A JSON-lines body (``POST /api/logs``), parsed and durably published.

        Raises ``BusFull`` when the bus cannot take the entries now.
        """
        parsed = await asyncio.to_thread(parse_chunk, body, 1, int(time.time() * 1000), self.rules)
        await self.publish("http", parsed, durable=True)
        return parsed

    async def start(self) -> None:
        """Open the event-log and syslog listeners; chosen ports land in ``self.ports``."""
        s = self.settings
        server = await asyncio.start_server(
            functools.partial(self._connection, self._eventlog_stream),
            self.bind,
            s.eventlog_port,
            limit=s.chunk_bytes,
        )
        self._servers.append(server)
        self.ports["eventlog"] = server.sockets[0].getsockname()[1]
        server = await asyncio.start_server(
            functools.partial(self._connection, self._syslog_stream),
            self.bind,
            s.syslog_port,
            limit=s.chunk_bytes,
        )
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        self.ports["syslog"] = port
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(
            functools.partial(_SyslogDatagrams, self), local_addr=(self.bind, port)
        )
        self._transports.append(udp)
        self.ports["syslog_udp"] = port
        self._tasks.append(asyncio.create_task(self._run_syslog()))

    async def _connection(
        self,
        handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Run ``handle`` for one TCP sender, tracked so that ``stop`` can let it finish."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _eventlog_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One event-log sender: read whole lines, parse, publish durably, ack."""
        framer = _JsonLineFramer(self.rules.max_entry_bytes)
        while True:
            data = await reader.read(self.settings.chunk_bytes)
            chunk, first_line, too_long = framer.feed(data) if data else framer.close()
            parsed = ParsedEntries(LOGS_SCHEMA.empty_table(), too_long)
            if chunk:
                now_ms = int(time.time() * 1000)
                parsed = await asyncio.to_thread(parse_chunk, chunk, first_line, now_ms, self.rules)
                parsed = ParsedEntries(parsed.entries, too_long + parsed.rejects, parsed.repaired)
            try:
                await self.publish("eventlog", parsed, durable=True)
            except BusFull as e:
                writer.write(orjson.dumps({"error": str(e)}) + b"\n")
                return
            replies = [orjson.dumps({"line": r.line, "error": r.error}) for r in parsed.rejects]
            if framer.lines_done:
                replies.append(orjson.dumps({"ack": framer.lines_done}))
            if replies:
                writer.write(b"\n".join(replies) + b"\n")
                await writer.drain()
            if not data:
                return

    async def _syslog_stream(self, reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        """One syslog TCP sender (RFC 6587 framing); waits while the parser is behind."""
        framer = SyslogFramer(self.rules.max_entry_bytes)
        while True:
            data = await reader.read(self.settings.chunk_bytes)
            messages = framer.feed(data) if data else framer.flush()
            if messages:
                await self._syslog_room.wait()
                self._queue_syslog(messages)
            if not data:
                return

    def _queue_syslog(self, messages: list[bytes]) -> None:
        self._syslog.extend(messages)
        self._syslog_bytes += sum(map(len, messages))
        self._syslog_ready.set()
        if self._syslog_bytes >= SYSLOG_PENDING_BYTES:
            self._syslog_room.clear()

    def syslog_datagram(self, data: bytes) -> None:
        """One UDP datagram: one message, dropped (and counted) while the parser is behind."""
        if not self._syslog_room.is_set():
            self.dropped.labels("syslog", "parser behind, datagram dropped").inc()
            return
        self._queue_syslog([data])

    async def _run_syslog(self) -> None:
        """Parse pending syslog messages in batches and publish them."""
        while True:
            await self._syslog_ready.wait()
            await asyncio.sleep(0.02)  # let a burst gather into one batch
            await self._flush_syslog()

    async def _flush_syslog(self) -> None:
        messages, self._syslog = self._syslog, []
        self._syslog_bytes = 0
        self._syslog_ready.clear()
        self._syslog_room.set()
        if not messages:
            return
        entries, rejects = await asyncio.to_thread(
            parse_syslog, messages, int(time.time() * 1000), self.rules
        )
        self.rejects.record("syslog", rejects)
        if entries.num_rows:
            await self.bus.publish(self.uids.stamp(entries))
            self.received.labels("syslog").inc(entries.num_rows)

    async def stop(self, drain_seconds: float = 2.0) -> None:
        """Stop accepting, let open senders finish (up to ``drain_seconds``), publish the rest."""
        await close_servers(self._servers, lambda: bool(self._connections), drain_seconds)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for transport in self._transports:
            transport.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush_syslog()


class _SyslogDatagrams(asyncio.DatagramProtocol):
    """Syslog over UDP: each datagram is one message (RFC 5426)."""

    def __init__(self, ingest: LogIngest) -> None:
        self.ingest = ingest

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        self.ingest.syslog_datagram(data)


class _JsonLineFramer:
    """Cuts a stream into whole JSON lines, numbering them; over-long lines are skipped.

    ``feed`` returns the whole lines received so far (one chunk), the number
    of the chunk's first line, and the lines rejected for length (their
    bytes are discarded as they arrive, so memory stays bounded).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.lines_done = 0  # lines handed out or rejected so far
        self._buffer = b""
        self._skipping = False

    def feed(self, data: bytes) -> tuple[bytes, int, list[LineReject]]:
        """Whole lines of ``buffer + data``; keeps the unterminated rest."""
        too_long: list[LineReject] = []
        first_line = self.lines_done + 1
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return b"", first_line, []
            data = data[end + 1 :]
            self._skipping = False
            first_line = self.lines_done + 1
        buffer = self._buffer + data if self._buffer else data
        cut = buffer.rfind(b"\n") + 1
        chunk, self._buffer = buffer[:cut], buffer[cut:]
        self.lines_done += chunk.count(b"\n")
        if len(self._buffer) > self.max_bytes:
            # This line will be too long whatever follows: reject it now, skip the rest.
            self.lines_done += 1
            sample = self._buffer[:200].decode("utf-8", "replace")
            too_long.append(
                LineReject(self.lines_done, f"entry longer than {self.max_bytes} bytes", sample)
            )
            self._buffer = b""
            self._skipping = True
        return chunk, first_line, too_long

    def close(self) -> tuple[bytes, int, list[LineReject]]:
        """The last line, if the stream ended without a newline."""
        rest, self._buffer = self._buffer, b""
        first_line = self.lines_done + 1
        if rest.strip() and not self._skipping:
            self.lines_done += 1
            return rest, first_line, []
        return b"", first_line, []
