"""The cube destination: error groups and extraction rules applied to every log batch.

The counters of the cube itself are kept by the store as entries are stored
(``cube.aggregate`` sums each stored batch, the engine merges the sums:
``store.cubestore``), so the cube counts exactly what was stored; what else
needs Python is done here, off the ingest path,
through the bus's ``cube`` destination: error entries are fingerprinted into
occurrences of error groups (``cube.fingerprint``), and ``line`` entries go
through the extraction rules (``cube.rules``), whose points are published
back to the bus like any other points. A failing batch is logged and counted,
never retried forever: the entries themselves are safe in the log store.
"""

from __future__ import annotations

import asyncio
import logging

import pyarrow as pa
from prometheus_client import Counter

from vigil.bus.fanout import Bus
from vigil.bus.queue import Queue
from vigil.cube.fingerprint import errors_of
from vigil.cube.rulebook import RuleBook
from vigil.model import LOGS_SCHEMA
from vigil.store.interface import Storage, StorageError
from vigil.telemetry import Telemetry

log = logging.getLogger(__name__)


class CubeStage:
    """Consumes the ``cube`` destination until cancelled."""

    def __init__(
        self,
        destination: Queue,
        storage: Storage,
        rules: RuleBook,
        bus: Bus,
        telemetry: Telemetry,
    ) -> None:
        self.destination = destination
        self.storage = storage
        self.rules = rules
        self.bus = bus
        reg = telemetry.registry
        self.errors_seen = Counter(
            "vigil_cube_error_occurrences", "Error entries fingerprinted.", registry=reg
        )
        self.points = Counter(
            "vigil_cube_rule_points", "Points made by extraction rules.", registry=reg
        )
        self.failures = Counter(
            "vigil_cube_failures", "Batches the cube stage could not handle.", registry=reg
        )

    async def run(self) -> None:
        """Handle every log batch in order; other batches are just released."""
        while True:
            delivery = await self.destination.get()
            if delivery is None:
                continue
            if delivery.batch.schema.equals(LOGS_SCHEMA):
                await self.handle(delivery.batch)
            await self.destination.done([delivery])

    async def handle(self, batch: pa.Table) -> None:
        """Fingerprint the errors of ``batch`` and publish the points its rules make."""
        try:
            occurrences = await asyncio.to_thread(errors_of, batch)
            if occurrences.num_rows:
                await asyncio.to_thread(self.storage.errors.write, occurrences)
                self.errors_seen.inc(occurrences.num_rows)
            points, _ = await asyncio.to_thread(self.rules.apply, batch)
        except (StorageError, ValueError, pa.ArrowException) as e:
            self.failures.inc()
            log.warning("cube: a batch of %d entries failed: %s", batch.num_rows, e)
            return
        if points.num_rows:
            self.points.inc(points.num_rows)
            await self.bus.publish(points)
