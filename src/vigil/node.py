"""A running Vigil node: the stages of its roles, wired to one bus and one store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from vigil.alert.rules import RuleFileError
from vigil.alert.stage import AlertStage
from vigil.bus.destination import Destination, Overflow
from vigil.bus.fanout import Bus
from vigil.bus.jetstream import JetStream
from vigil.bus.metrics import register_bus_metrics
from vigil.bus.queue import Queue
from vigil.bus.spool import Spool
from vigil.cube.backfill import Backfill
from vigil.cube.rulebook import RuleBook
from vigil.cube.stage import CubeStage
from vigil.ingest.logstage import LogIngest
from vigil.ingest.stage import IngestStage
from vigil.model import LOGS_SCHEMA
from vigil.query.tail import TailHub
from vigil.roles import stages_of
from vigil.settings import Settings, SettingsError
from vigil.ship.forward import Forwarder, parse_address
from vigil.store.backends import open_storage
from vigil.store.writer import RetentionSweeper, StoreWriter
from vigil.telemetry import Telemetry
from vigil.web.app import create_app
from vigil.web.dashboard_files import DashboardFiles

log = logging.getLogger("vigil")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the node decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signals to the node."""
        yield


class Node:
    """Starts and stops the stages of one node; ``ports`` holds the bound ports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stages = stages_of(settings.node.roles)
        self.store_overflow = _overflow("store_overflow", settings.bus.store_overflow)
        self.tail_overflow = _overflow("tail_overflow", settings.bus.tail_overflow)
        if self.tail_overflow is Overflow.SPILL:
            raise SettingsError(
                "tail_overflow = 'spill': a live tail does not replay; drop instead"
            )
        self.forward_overflow = _overflow("forward_overflow", settings.bus.forward_overflow)
        self.alert_overflow = _overflow("alert_overflow", settings.bus.alert_overflow)
        if self.alert_overflow is Overflow.SPILL:
            raise SettingsError(
                "alert_overflow = 'spill': heartbeats are not replayed; drop instead"
            )
        self.cube_overflow = _overflow("cube_overflow", settings.bus.cube_overflow)
        try:
            self.forward_to = (
                parse_address(settings.bus.forward_graphite, "forward_graphite"),
                parse_address(settings.bus.forward_eventlog, "forward_eventlog"),
            )
        except ValueError as e:
            raise SettingsError(str(e)) from None
        self.data_dir = Path(settings.node.data_dir)
        self.telemetry = Telemetry(settings.node.node)
        self.bus = Bus()
        self.jetstream: JetStream | None = None
        self.ports: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ingest: IngestStage | None = None
        self.logs: LogIngest | None = None
        self.tail: TailHub | None = None
        self._writer: StoreWriter | None = None
        self._http: uvicorn.Server | None = None
        self.alerts: AlertStage | None = None

    async def start(self) -> None:
        """Open storage, start every stage, then write ``ports.json``."""
        s = self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if s.bus.bus_nats:
            self.jetstream = await JetStream.connect(
                s.bus.bus_nats, replicas=s.bus.bus_nats_replicas
            )
        self.storage = await asyncio.to_thread(open_storage, s, self.data_dir)
        store = self.bus.add(
            await self._queue(
                "store", s.bus.store_queue_bytes, self.store_overflow, s.bus.store_spool_bytes
            )
        )
        self._writer = StoreWriter(
            store, self.storage, self.telemetry, s.store.batch_rows, s.store.batch_seconds
        )
        self._writer_task = asyncio.create_task(self._writer.run())
        self._spawn(RetentionSweeper(self.storage, s.store.retention_interval).run())
        self._spawn(self._write_selfmetrics())
        logs_only = [LOGS_SCHEMA]
        tail = self.bus.add(
            await self._queue("tail", s.bus.tail_queue_bytes, self.tail_overflow), logs_only
        )
        cube = self.bus.add(
            await self._queue(
                "cube", s.bus.cube_queue_bytes, self.cube_overflow, s.bus.cube_spool_bytes
            ),
            logs_only,
        )
        rules_file = Path(s.store.extract_rules_file) if s.store.extract_rules_file else None
        self.rules = RuleBook(rules_file, self.data_dir / "rules")
        for problem in self.rules.errors:
            log.warning("extraction rule %s: %s", problem["rule"], problem["error"])
        self.backfill = Backfill(
            self.rules, self.storage.logs.read_lines, self.storage.write_points
        )
        self._spawn(CubeStage(cube, self.storage, self.rules, self.bus, self.telemetry).run())
        if any(self.forward_to):
            forward = self.bus.add(
                await self._queue(
                    "forward",
                    s.bus.forward_queue_bytes,
                    self.forward_overflow,
                    s.bus.forward_spool_bytes,
                )
            )
            self._spawn(Forwarder(forward, *self.forward_to, self.telemetry).run())
        self.tail = TailHub(tail, s.bus.tail_subscriber_entries)
        self._spawn(self.tail.run())
        if "alert" in self.stages:
            heartbeats = await self._queue("alert", s.bus.alert_queue_bytes, self.alert_overflow)
            self.alerts = AlertStage(
                s.alert, s.query, self.storage, self.bus, self.telemetry, self.data_dir,
                self.bus.add(heartbeats, logs_only),
            )  # fmt: skip
            self._spawn(self.alerts.run())
        register_bus_metrics(self.bus, self.telemetry)
        if "ingest" in self.stages:
            self._ingest = IngestStage(s.ingest, s.node.bind, self.bus, self.telemetry)
            await self._ingest.start()
            self.ports.update(self._ingest.ports)
            self.logs = LogIngest(
                s.ingest, s.node.bind, self.bus, self.telemetry, self._ingest.rejects
            )
            await self.logs.start()
            self.ports.update(self.logs.ports)
        if "query" in self.stages:
            await self._start_http()
        self._write_ports()
        log.info("vigil node %s listening: %s", self.telemetry.node, self.ports)

    async def _queue(
        self, name: str, capacity: int, overflow: Overflow, spool_bytes: int = 0
    ) -> Queue:
        """A destination's queue: a JetStream stream with ``bus_nats`` set, else in-process."""
        if self.jetstream is not None:
            return await self.jetstream.destination(name, capacity, overflow, spool_bytes)
        return await self._destination(name, capacity, overflow, spool_bytes)

    async def _destination(
        self, name: str, capacity: int, overflow: Overflow, spool_bytes: int
    ) -> Destination:
        """A destination, with its spool under ``data_dir/spool/<name>`` if it spills."""
        spool = None
        if overflow is Overflow.SPILL:
            spool = await asyncio.to_thread(Spool, self.data_dir / "spool" / name, spool_bytes)
        return Destination(name, capacity, overflow, spool)

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _start_http(self) -> None:
        s = self.settings
        app = create_app(
            self.storage,
            self.telemetry,
            s.query,
            node=self,
            log_ingest=self.logs,
            tail=self.tail,
            rules=(self.rules, self.backfill),
            alerts=self.alerts,
            max_body_bytes=s.ingest.log_max_body_bytes,
            dashboards=DashboardFiles(
                Path(s.node.dashboards_dir)
                if s.node.dashboards_dir
                else self.data_dir / "dashboards"
            ),
        )
        config = uvicorn.Config(
            app, host=s.node.bind, port=s.node.http_port, log_level="warning", lifespan="off"
        )
        self._http = _EmbeddedServer(config)
        self._http_task = asyncio.create_task(self._http.serve())
        self._tasks.append(self._http_task)
        while not self._http.started:
            await asyncio.sleep(0.01)
            for task in self._tasks:
                if task.done() and task.exception():
                    raise RuntimeError(f"HTTP server failed: {task.exception()}")
        self.ports["http"] = self._http.servers[0].sockets[0].getsockname()[1]

    def _write_ports(self) -> None:
        path = self.data_dir / "ports.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.ports, indent=1) + "\n")
        os.replace(tmp, path)

    async def _write_selfmetrics(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node.selfmetrics_interval)
            await self.bus.publish(self.telemetry.as_points(int(time.time())))

    def reload_rules(self) -> None:
        """SIGHUP: read the alert rules and the extraction rules file again.

        A bad alert rules file is logged and the old alert rules stay; extraction
        rule problems are listed per rule, as at start.
        """
        if self.alerts is not None:
            with contextlib.suppress(RuleFileError):
                self.alerts.reload()
        self.rules.reload()
        for problem in self.rules.errors:
            log.warning("extraction rule %s: %s", problem["rule"], problem["error"])

    def status(self) -> dict[str, Any]:
        """What ``vigil status`` shows: ports, stages, queues and drops."""
        return {
            "node": self.telemetry.node,
            "stages": list(self.stages),
            "ports": self.ports,
            "data_dir": str(self.data_dir.resolve()),
            "destinations": {name: d.status() for name, d in self.bus.destinations.items()},
        }

    async def stop(self) -> None:
        """Stop listening, store what was received, close storage."""
        if self._ingest is not None:
            await self._ingest.stop()
        if self.logs is not None:
            await self.logs.stop()
        if self._http is not None:
            self._http.should_exit = True  # closes its listening socket and connections
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._http_task), 5)
        if self._writer is not None:
            self._writer.close()
            await self._writer_task
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        (self.data_dir / "ports.json").unlink(missing_ok=True)
        if self.jetstream is not None:
            await self.jetstream.close()
        for destination in self.bus.destinations.values():
            if destination.spool is not None:
                destination.spool.close()
        await asyncio.to_thread(self.storage.close)


def _overflow(name: str, value: str) -> Overflow:
    try:
        return Overflow(value)
    except ValueError:
        choices = ", ".join(o.value for o in Overflow)
        raise SettingsError(f"{name} = {value!r}: use one of {choices}") from None
