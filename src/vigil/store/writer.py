"""The store destination: drains its bus queue into the engine in big inserts.

Batches are coalesced up to ``batch_rows`` or ``batch_seconds`` (the engine
wants few large inserts) and written from one thread. A failed insert is
retried with backoff while the queue behind it fills; the queue's overflow
policy then decides between backpressure and drops, so a storage outage is
visible and bounded rather than silent.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pyarrow as pa
from prometheus_client import Counter, Gauge, Histogram

from vigil.bus.queue import BatchQueue
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
        queue: BatchQueue,
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
        self.queue_bytes = Gauge(
            "vigil_bus_queue_bytes", "Bytes waiting in a destination queue.", ["destination"],
            registry=reg,
        )  # fmt: skip
        self.queue_bytes.labels(queue.name).set_function(lambda: queue.depth_bytes)
        self.dropped = Gauge(
            "vigil_bus_dropped_points", "Points dropped by a full destination queue.",
            ["destination", "reason"], registry=reg,
        )  # fmt: skip
        self._closing = False
        self._held: pa.Table | None = None

    def close(self) -> None:
        """Ask ``run`` to finish once everything queued is written."""
        self._closing = True

    async def run(self) -> None:
        """Write batches until closed and the queue is empty."""
        while not (self._closing and not len(self.queue) and self._held is None):
            batch = await self._collect()
            if batch is not None:
                await self._write(batch)
            for reason, rows in self.queue.dropped_rows.items():
                self.dropped.labels(self.queue.name, reason).set(rows)

    async def _collect(self) -> pa.Table | None:
        """Up to ``batch_rows`` rows of one schema, waiting at most ``batch_seconds``.

        Once a tenth of a batch is in hand, a pause of ``IDLE_SECONDS`` in the
        stream writes it at once: the end of a burst is not held back a whole
        ``batch_seconds``, while a slow trickle is still coalesced.
        """
        first, self._held = self._held, None
        if first is None:
            first = await self.queue.get(timeout=self.batch_seconds)
        if first is None:
            return None
        parts = [first]
        rows = first.num_rows
        deadline = time.monotonic() + self.batch_seconds
        while rows < self.batch_rows:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = min(left, IDLE_SECONDS) if rows >= self.batch_rows // 10 else left
            more = await self.queue.get(timeout=wait)
            if more is None:
                break
            if not more.schema.equals(first.schema):
                self._held = more  # another kind of record: its own insert
                break
            parts.append(more)
            rows += more.num_rows
        return pa.concat_tables(parts) if len(parts) > 1 else first

    async def _write(self, batch: pa.Table) -> None:
        delay = 0.1
        while True:
            started = time.monotonic()
            write = (
                self.storage.write_sketches
                if batch.schema.equals(SKETCH_SCHEMA)
                else self.storage.write_points
            )
            try:
                await asyncio.to_thread(write, batch)
            except StorageError as e:
                self.write_errors.inc()
                log.warning("store: %s; retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.write_seconds.observe(time.monotonic() - started)
            if write == self.storage.write_points:
                self.points_written.inc(batch.num_rows)
            return


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
