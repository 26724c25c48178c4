"""The store destination: drains its bus buffer into the engine in big inserts.

Batches are coalesced up to ``batch_rows`` or ``batch_seconds`` (the engine
wants few large inserts) and written from one thread. A failed insert is
retried with backoff while the buffer behind it fills; the destination's
overflow policy then decides between backpressure, drops and spilling to disk,
so a storage outage is visible and bounded rather than silent. Spooled
batches are released only once stored; log entries of a replay or a retry
are written with ``replay`` so that none is stored twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pyarrow as pa
from prometheus_client import Counter, Histogram

from vigil.bus.destination import Delivery
from vigil.bus.queue import Queue
from vigil.model import LOGS_SCHEMA
from vigil.sketch import SKETCH_SCHEMA
from vigil.store.interface import Storage, StorageError
from vigil.telemetry import Telemetry

log = logging.getLogger(__name__)

# A pause in the stream this long ends a batch that is already big enough.
IDLE_SECONDS = 0.05


class StoreWriter:
    """Consumes the store queue and writes points to storage."""

    def __init__(
        self,
        queue: Queue,
        storage: Storage,
        telemetry: Telemetry,
        batch_rows: int,
        batch_seconds: float,
    ) -> None:
        self.queue = queue
        self.storage = storage
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        reg = telemetry.registry
        self.points_written = Counter(
            "vigil_store_points_written", "Points stored in the engine.", registry=reg
        )
        self.write_errors = Counter(
            "vigil_store_write_errors", "Failed inserts (retried).", registry=reg
        )
        self.write_seconds = Histogram(
            "vigil_store_write_seconds", "Duration of one insert.", registry=reg,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self.entries_written = Counter(
            "vigil_store_log_entries_written", "Log entries stored in the engine.", registry=reg
        )
        self._closing = False
        self._held: Delivery | None = None

    def close(self) -> None:
        """Ask ``run`` to finish once everything queued is written."""
        self._closing = True

    async def run(self) -> None:
        """Write batches until closed and the queue is empty."""
        while not (self._closing and not len(self.queue) and self._held is None):
            deliveries = await self._collect()
            if deliveries:
                await self._write(deliveries)
                await self.queue.done(deliveries)

    async def _collect(self) -> list[Delivery]:
        """Up to ``batch_rows`` rows of one schema, waiting at most ``batch_seconds``.

        Once a tenth of a batch is in hand, a pause of ``IDLE_SECONDS`` in the
        stream writes it at once: the end of a burst is not held back a whole
        ``batch_seconds``, while a slow trickle is still coalesced.
        """
        first, self._held = self._held, None
        if first is None:
            first = await self.queue.get(timeout=self.batch_seconds)
        if first is None:
            return []
        parts = [first]
        rows = first.batch.num_rows
        deadline = time.monotonic() + self.batch_seconds
        while rows < self.batch_rows:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = min(left, IDLE_SECONDS) if rows >= self.batch_rows // 10 else left
            more = await self.queue.get(timeout=wait)
            if more is None:
                break
            if not more.batch.schema.equals(first.batch.schema):
                self._held = more  # another kind of record: its own insert
                break
            parts.append(more)
            rows += more.batch.num_rows
        return parts

    async def _write(self, deliveries: list[Delivery]) -> None:
        batches = [d.batch for d in deliveries]
        batch = pa.concat_tables(batches) if len(batches) > 1 else batches[0]
        replay = any(d.replay for d in deliveries)
        delay = 0.1
        while True:
            started = time.monotonic()
            try:
                await asyncio.to_thread(self._store, batch, replay)
            except StorageError as e:
                self.write_errors.inc()
                log.warning("store: %s; retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                replay = True  # part of it may be stored
                continue
            self.write_seconds.observe(time.monotonic() - started)
            return

    def _store(self, batch: pa.Table, replay: bool) -> None:
        """Write one batch with the method of its record kind."""
        if batch.schema.equals(LOGS_SCHEMA):
            self.entries_written.inc(self.storage.logs.write(batch, replay))
        elif batch.schema.equals(SKETCH_SCHEMA):
            self.storage.write_sketches(batch)
        else:
            self.storage.write_points(batch)
            self.points_written.inc(batch.num_rows)


class RetentionSweeper:
    """Drops partitions past their retention every ``interval`` seconds."""

    def __init__(self, storage: Storage, interval: float) -> None:
        self.storage = storage
        self.interval = interval

    async def run(self) -> None:
        """Sweep until cancelled; a failed sweep is logged and retried next round."""
        while True:
            try:
                dropped = await asyncio.to_thread(self.storage.sweep_retention, int(time.time()))
                if dropped:
                    log.info("retention: dropped %d partitions", dropped)
            except StorageError as e:
                log.warning("retention sweep failed: %s", e)
            await asyncio.sleep(self.interval)
