"""The forward destination: relay points to a Graphite and log entries to another Vigil.

Points go out as Graphite plaintext over TCP (carbon, or another Vigil's
Graphite port); log entries as the event-log protocol, each batch released
from the destination only once the receiver has acknowledged all of it, so
with the ``spill`` policy (the default) nothing acknowledged here is lost on
the way. A receiver that is down is retried with capped backoff while the
destination's buffer and spool absorb the backlog; timer sketches stay local
(their percentiles are forwarded as points).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import Counter

from vigil.bus.queue import Queue
from vigil.model import LOGS_SCHEMA, POINTS_SCHEMA, entries_of
from vigil.telemetry import Telemetry

log = logging.getLogger(__name__)
_MAX_BACKOFF = 30.0
_ACK_TIMEOUT = 60.0


def parse_address(text: str, option: str) -> tuple[str, int] | None:
    """``host:port`` as a pair, None for an empty option; ValueError names the option."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{option} = {text!r}: expected HOST:PORT")
    return host, int(port)


def plaintext(batch: pa.Table) -> bytes:
    """Points as Graphite plaintext lines, ``path value timestamp\\n`` each."""
    line = pc.binary_join_element_wise(
        batch.column("path"),
        batch.column("value").cast(pa.string()),
        batch.column("ts").cast(pa.string()),
        " ",
    )
    return ("\n".join(line.to_pylist()) + "\n").encode()


def jsonlines(batch: pa.Table) -> bytes:
    """Log entries as event-log JSON lines (their ``uid`` is the receiver's to assign)."""
    out = []
    for entry in entries_of(batch):
        del entry["uid"]
        out.append(orjson.dumps(entry))
    return b"\n".join(out) + b"\n"


class Forwarder:
    """Consumes the ``forward`` destination until cancelled."""

    def __init__(
        self,
        destination: Queue,
        graphite: tuple[str, int] | None,
        eventlog: tuple[str, int] | None,
        telemetry: Telemetry,
    ) -> None:
        self.destination = destination
        self.graphite = graphite
        self.eventlog = eventlog
        self.sent = Counter(
            "vigil_forward_sent_rows", "Rows forwarded, by kind.", ["kind"],
            registry=telemetry.registry,
        )  # fmt: skip
        self.failures = Counter(
            "vigil_forward_failures", "Failed forwarding attempts (retried), by kind.", ["kind"],
            registry=telemetry.registry,
        )  # fmt: skip
        self.refused = Counter(
            "vigil_forward_refused_rows", "Log entries the receiving Vigil rejected.",
            registry=telemetry.registry,
        )  # fmt: skip
        self._graphite_conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def run(self) -> None:
        """Forward every batch in order, retrying a receiver until it takes it."""
        try:
            while True:
                delivery = await self.destination.get()
                if delivery is None:
                    continue
                batch = delivery.batch
                if batch.schema.equals(POINTS_SCHEMA) and self.graphite is not None:
                    await self._retrying("points", self._send_points, batch)
                elif batch.schema.equals(LOGS_SCHEMA) and self.eventlog is not None:
                    await self._retrying("logs", self._send_entries, batch)
                await self.destination.done([delivery])
        finally:
            await self._close_graphite()

    async def _retrying(
        self, kind: str, send: Callable[[pa.Table], Awaitable[None]], batch: pa.Table
    ) -> None:
        delay = 0.1
        while True:
            try:
                await send(batch)
                self.sent.labels(kind).inc(batch.num_rows)
                return
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as e:
                self.failures.labels(kind).inc()
                log.warning("forward %s: %s; retrying in %.1fs", kind, e, delay)
                await self._close_graphite()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)

    async def _send_points(self, batch: pa.Table) -> None:
        assert self.graphite is not None
        if self._graphite_conn is None:
            self._graphite_conn = await asyncio.open_connection(*self.graphite)
        _, writer = self._graphite_conn
        writer.write(plaintext(batch))
        await writer.drain()

    async def _close_graphite(self) -> None:
        if self._graphite_conn is not None:
            _, writer = self._graphite_conn
            self._graphite_conn = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _send_entries(self, batch: pa.Table) -> None:
        """One batch over a fresh connection, returning once every line is acknowledged."""
        assert self.eventlog is not None
        reader, writer = await asyncio.open_connection(*self.eventlog)
        try:
            writer.write(jsonlines(batch))
            await writer.drain()
            acked = 0
            while acked < batch.num_rows:
                line = await asyncio.wait_for(reader.readline(), _ACK_TIMEOUT)
                if not line:
                    raise ConnectionError("receiver closed before acknowledging every entry")
                reply = orjson.loads(line)
                if "error" in reply and "line" not in reply:
                    raise ConnectionError(f"receiver refused: {reply['error']}")
                if "line" in reply:
                    self.refused.inc()
                    log.warning("forward: receiver rejected an entry: %s", reply["error"])
                acked = reply.get("ack", acked)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
