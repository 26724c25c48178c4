"""The ingest stage: protocol listeners whose parsed batches go to the bus."""

from __future__ import annotations

import asyncio
import functools

from prometheus_client import Counter

from vigil.bus.fanout import Bus
from vigil.ingest.linebuffer import ChunkWorker
from vigil.ingest.listeners import LineDatagramProtocol, LineStreamProtocol
from vigil.ingest.plaintext import LineRules, parse_chunk
from vigil.ingest.rejects import RejectLog
from vigil.model import ParseResult
from vigil.settings import IngestSettings
from vigil.telemetry import Telemetry


class IngestStage:
    """Graphite plaintext (TCP and UDP) and StatsD (UDP) listeners feeding the bus."""

    def __init__(self, settings: IngestSettings, bind: str, bus: Bus, telemetry: Telemetry) -> None:
        self.settings = settings
        self.bind = bind
        self.bus = bus
        self.rejects = RejectLog(telemetry, settings.reject_log_per_minute)
        self.received = Counter(
            "vigil_ingest_points",
            "Points accepted by a listener, by protocol.",
            ["protocol"],
            registry=telemetry.registry,
        )
        rules = LineRules(settings.max_line_bytes, settings.future_seconds)
        self.plaintext = ChunkWorker(
            functools.partial(parse_chunk, rules=rules),
            functools.partial(self._accept, "graphite"),
            settings.chunk_bytes,
            settings.chunk_seconds,
        )
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def _accept(self, protocol: str, result: ParseResult) -> None:
        self.rejects.record(protocol, result.rejects)
        self.received.labels(protocol).inc(result.points.num_rows)
        await self.bus.publish(result.points)

    async def start(self) -> None:
        """Open every listener; the chosen ports are in ``self.ports``."""
        loop = asyncio.get_running_loop()
        s = self.settings
        server = await loop.create_server(
            lambda: LineStreamProtocol(
                self.plaintext, s.max_line_bytes, functools.partial(self.rejects.record, "graphite")
            ),
            self.bind,
            s.graphite_port,
        )
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        self.ports["graphite"] = port
        udp, _ = await loop.create_datagram_endpoint(
            lambda: LineDatagramProtocol(self.plaintext), local_addr=(self.bind, port)
        )
        self._transports.append(udp)
        self.ports["graphite_udp"] = port
        self._tasks.append(asyncio.create_task(self.plaintext.run()))

    async def stop(self) -> None:
        """Close listeners, then parse and publish what was already received."""
        for server in self._servers:
            server.close()
        for transport in self._transports:
            transport.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.plaintext.flush()
