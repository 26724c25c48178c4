"""A running Vigil node: the stages of its roles, wired to one bus and one store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from vigil.alert.rules import RuleFileError
from vigil.alert.stage import AlertStage
from vigil.bus.destination import Destination, Overflow
from vigil.bus.fanout import Bus
from vigil.bus.handover import hand_over
from vigil.bus.jetstream import JetStream
from vigil.bus.layout import DestinationSpec, destination_specs
from vigil.bus.lease import Lease, LeaseHeld
from vigil.bus.metrics import register_bus_metrics
from vigil.bus.natslogin import NatsLogin
from vigil.bus.queue import Queue
from vigil.bus.spool import Spool
from vigil.cube.backfill import Backfill
from vigil.cube.rulebook import RuleBook
from vigil.cube.stage import CubeStage
from vigil.ingest.logstage import LogIngest
from vigil.ingest.stage import IngestStage
from vigil.query.tail import TailHub
from vigil.roles import CONSUMES, READS_STORAGE, check_placement, stages_of
from vigil.settings import Settings, SettingsError
from vigil.ship.forward import Forwarder, parse_address
from vigil.store.backends import open_storage
from vigil.store.sqlstore import SqlStore
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
        check_placement(
            self.stages, bool(settings.bus.bus_nats), shared_storage=bool(settings.store.clickhouse)
        )
        self.destination_specs = destination_specs(settings.bus)
        names = [spec.name for spec in self.destination_specs]
        self.consumed = [CONSUMES[s] for s in self.stages if CONSUMES.get(s) in names]
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
        self.storage: SqlStore | None = None
        self.ports: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._ingest: IngestStage | None = None
        self.logs: LogIngest | None = None
        self.tail: TailHub | None = None
        self.rules: RuleBook | None = None
        self.backfill: Backfill | None = None
        self._writer: StoreWriter | None = None
        self._http: uvicorn.Server | None = None
        self.alerts: AlertStage | None = None
        self._lease: Lease | None = None

    async def start(self) -> None:
        """Open storage if a stage reads it, start every stage, then write ``ports.json``."""
        s = self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if s.bus.bus_nats:
            self.jetstream = await JetStream.connect(
                s.bus.bus_nats,
                node=self.telemetry.node,
                replicas=s.bus.bus_nats_replicas,
                login=NatsLogin.from_settings(s.bus),
            )
            if "alert" in self.stages:  # two would notify everything twice
                # The alert state lives in the data_dir: a restart on it takes its lease back.
                holder = f"{self.telemetry.node} ({socket.gethostname()}:{self.data_dir.resolve()})"
                try:
                    self._lease = await Lease.take(self.jetstream, "alert", holder)
                except LeaseHeld:
                    await self.jetstream.close()
                    raise
        if READS_STORAGE.intersection(self.stages):
            self.storage = await asyncio.to_thread(open_storage, s, self.data_dir)
        queues: dict[str, Queue] = {}
        for spec in self.destination_specs:
            queue = await self._queue(spec, consume=spec.name in self.consumed)
            self.bus.add(queue, spec.only)
            queues[spec.name] = queue
        if self.jetstream is not None:  # before new input: what was spooled goes first
            await hand_over(self.data_dir / "spool", queues)
        if self.storage is not None:
            self._start_consumers(self.storage, queues)
        self._spawn(self._write_selfmetrics())
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
        await self._start_http()
        self._write_ports()
        log.info(
            "vigil node %s (%s) listening: %s",
            self.telemetry.node,
            ",".join(self.stages),
            self.ports,
        )

    def _start_consumers(self, storage: SqlStore, queues: dict[str, Queue]) -> None:
        """Start the stages that read a destination, each on its queue."""
        s = self.settings
        if "store" in self.stages:
            self._writer = StoreWriter(
                queues["store"], storage, self.telemetry, s.store.batch_rows, s.store.batch_seconds
            )
            self._writer_task = asyncio.create_task(self._writer.run())
            self._spawn(RetentionSweeper(storage, s.store.retention_interval).run())
        if "forward" in self.consumed:
            self._spawn(Forwarder(queues["forward"], *self.forward_to, self.telemetry).run())
        if "cube" in self.stages:
            rules_file = Path(s.store.extract_rules_file) if s.store.extract_rules_file else None
            self.rules = RuleBook(rules_file, self.data_dir / "rules")
            for problem in self.rules.errors:
                log.warning("extraction rule %s: %s", problem["rule"], problem["error"])
            self.backfill = Backfill(self.rules, storage.logs.read_lines, storage.write_points)
            self._spawn(
                CubeStage(queues["cube"], storage, self.rules, self.bus, self.telemetry).run()
            )
        if "query" in self.stages:
            self.tail = TailHub(queues["tail"], s.bus.tail_subscriber_entries)
            self._spawn(self.tail.run())
        if "alert" in self.stages:
            lease = self._lease
            self.alerts = AlertStage(
                s.alert, s.query, storage, self.bus, self.telemetry, self.data_dir, queues["alert"],
                active=lambda: lease is None or lease.held,
            )  # fmt: skip
            self._spawn(self.alerts.run())

    async def _queue(self, spec: DestinationSpec, consume: bool) -> Queue:
        """A destination's queue: a JetStream stream with ``bus_nats`` set, else in-process.

        In-process, every destination is consumed here (``check_placement``).
        """
        if self.jetstream is not None:
            return await self.jetstream.destination(
                spec.name, spec.capacity_bytes, spec.overflow, spec.spool_bytes,
                consume=consume, shared=spec.shared,
            )  # fmt: skip
        spool = None
        if spec.overflow is Overflow.SPILL:
            spool = await asyncio.to_thread(
                Spool, self.data_dir / "spool" / spec.name, spec.spool_bytes
            )
        return Destination(spec.name, spec.capacity_bytes, spec.overflow, spool)

    def _spawn(self, coro: Any) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _start_http(self) -> None:
        """The HTTP port, with the routes of this process's stages (``web.app.create_app``)."""
        s = self.settings
        web = "web" in self.stages
        dashboards_dir = (
            Path(s.node.dashboards_dir) if s.node.dashboards_dir else self.data_dir / "dashboards"
        )
        app = create_app(
            self.storage,
            self.telemetry,
            s.query,
            node=self,
            log_ingest=self.logs,
            tail=self.tail,
            rules=(self.rules, self.backfill) if self.rules and self.backfill else None,
            alerts=self.alerts,
            max_body_bytes=s.ingest.log_max_body_bytes,
            dashboards=DashboardFiles(dashboards_dir) if web else None,
            queries="query" in self.stages,
            ui=web,
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
        if self.rules is not None:
            self.rules.reload()
            for problem in self.rules.errors:
                log.warning("extraction rule %s: %s", problem["rule"], problem["error"])

    def status(self) -> dict[str, Any]:
        """What ``vigil status`` shows: this process's stages, ports, queues and drops.

        ``destinations`` lists every destination this process publishes to;
        ``consumes`` the ones it reads; ``alert_lease`` whether this alert
        process evaluates (``held``) or stands by.
        """
        status = {
            "node": self.telemetry.node,
            "roles": self.settings.node.roles,
            "stages": list(self.stages),
            "ports": self.ports,
            "data_dir": str(self.data_dir.resolve()),
            "bus": "nats" if self.jetstream is not None else "in-process",
            "consumes": self.consumed,
            "destinations": {name: d.status() for name, d in self.bus.destinations.items()},
        }
        if self._lease is not None:
            status["alert_lease"] = {"holder": self._lease.holder, "held": self._lease.held}
        return status

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
        if self._lease is not None:
            await self._lease.release()
        if self.jetstream is not None:
            await self.jetstream.close()
        for destination in self.bus.destinations.values():
            if destination.spool is not None:
                destination.spool.close()
        if self.storage is not None:
            await asyncio.to_thread(self.storage.close)
