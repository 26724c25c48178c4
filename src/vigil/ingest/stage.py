"""The ingest stage: protocol listeners whose parsed batches go to the bus."""

from __future__ import annotations

import asyncio
import collections
import functools
import time

from prometheus_client import Counter

from vigil.bus.fanout import Bus
from vigil.ingest.linebuffer import ChunkWorker
from vigil.ingest.listeners import (
    DatagramCollector,
    LineDatagramProtocol,
    LineStreamProtocol,
    close_servers,
)
from vigil.ingest.plaintext import LineRules, parse_chunk
from vigil.ingest.rejects import RejectLog
from vigil.ingest.statsd import StatsdBatch, parse_statsd
from vigil.ingest.statsd_aggregator import StatsdAggregator
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
        self.statsd = StatsdAggregator(
            flush_interval=settings.statsd_flush_interval,
            percentiles=tuple(
                float(p) for p in settings.statsd_percentiles.split(",") if p.strip()
            ),
            max_keys=settings.statsd_max_keys,
        )
        self.statsd_dropped = Counter(
            "vigil_ingest_statsd_dropped",
            "StatsD samples or datagrams dropped by a bound, by reason.",
            ["reason"],
            registry=telemetry.registry,
        )
        self._statsd_reported: collections.Counter[str] = collections.Counter()
        self._datagrams = DatagramCollector(max_datagrams=200_000)
        self.ports: dict[str, int] = {}
        self._connections: set[LineStreamProtocol] = set()
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
                self.plaintext,
                s.max_line_bytes,
                functools.partial(self.rejects.record, "graphite"),
                self._connections,
            ),
            self.bind,
            s.graphite_port,
        )
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        self.ports["graphite"] = port
        udp, _ = await loop.create_datagram_endpoint(
            lambda: LineDatagramProtocol(
                self.plaintext, functools.partial(self.rejects.record, "graphite")
            ),
            local_addr=(self.bind, port),
        )
        self._transports.append(udp)
        self.ports["graphite_udp"] = port
        self._tasks.append(asyncio.create_task(self.plaintext.run()))
        statsd, _ = await loop.create_datagram_endpoint(
            lambda: self._datagrams, local_addr=(self.bind, s.statsd_port)
        )
        self._transports.append(statsd)
        self.ports["statsd"] = statsd.get_extra_info("sockname")[1]
        self._tasks.append(asyncio.create_task(self._run_statsd()))

    async def _parse_statsd(self) -> None:
        """Parse the datagrams received so far into the aggregator."""
        datagrams = self._datagrams.take()
        if datagrams:
            batch: StatsdBatch = await asyncio.to_thread(
                parse_statsd, datagrams, self.settings.max_line_bytes
            )
            self.rejects.record("statsd", batch.rejects)
            self.statsd.add(batch)
            self.received.labels("statsd").inc(
                sum(t.num_rows for t in (batch.counters, batch.gauges, batch.timers, batch.sets))
            )

    async def _flush_statsd(self) -> None:
        await self._parse_statsd()
        points, sketches = self.statsd.flush(int(time.time()))
        await self.bus.publish(points)
        await self.bus.publish(sketches)
        if self._datagrams.dropped:
            self.statsd.dropped["receive buffer full"] += self._datagrams.dropped
            self._datagrams.dropped = 0
        for reason, count in self.statsd.dropped.items():
            self.statsd_dropped.labels(reason).inc(count - self._statsd_reported[reason])
            self._statsd_reported[reason] = count

    async def _run_statsd(self) -> None:
        """Parse datagrams often (bounded memory), flush aggregates every interval."""
        interval = self.settings.statsd_flush_interval
        next_flush = time.monotonic() + interval
        while True:
            await asyncio.sleep(min(0.2, max(0.0, next_flush - time.monotonic())))
            await self._parse_statsd()
            if time.monotonic() >= next_flush:
                next_flush += interval
                await self._flush_statsd()

    async def stop(self, drain_seconds: float = 2.0) -> None:
        """Stop accepting, let open senders finish (up to ``drain_seconds``), publish the rest."""
        await close_servers(self._servers, lambda: bool(self._connections), drain_seconds)
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        for transport in self._transports:
            transport.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.plaintext.flush()
        await self._flush_statsd()
