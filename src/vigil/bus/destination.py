"""One destination's bounded buffer, with its overflow policy and optional spool.

Each destination (store, tail, forward, ...) has its own buffer so that a
slow or dead destination never stalls the others. Capacity is in bytes; when
a put would exceed it the policy decides: ``block`` waits (backpressure
reaches the publishers), ``drop_head`` drops the oldest batches, ``drop_tail``
the new one, and ``spill`` writes it to the destination's on-disk spool
(``bus.spool``), from which it is read back in order. Every drop is counted
with its reason.

Durable puts (entries a client will be acknowledged for) go to the spool of a
``spill`` destination even when memory has room, fsynced before the put
returns; the consumer releases them after handling, and whatever was not
released is delivered again after a restart (``Delivery.replay``). Other
policies keep durable puts in memory only: say ``spill`` where loss matters.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
import time
from typing import TYPE_CHECKING

import pyarrow as pa

from vigil.bus.spool import Record, Spool, SpoolCorrupt, SpoolError, SpoolFull

if TYPE_CHECKING:  # the protocol imports this module's types
    from vigil.bus.queue import Queue

log = logging.getLogger(__name__)

# After an I/O error closed the spool, how long until it is opened again (a
# full or failing disk is not retried on every batch).
REOPEN_SECONDS = 5.0


class Overflow(enum.Enum):
    """What a full destination does with one more batch."""

    BLOCK = "block"
    DROP_HEAD = "drop_head"
    DROP_TAIL = "drop_tail"
    SPILL = "spill"


class BusFull(RuntimeError):
    """A durable put that no buffer can take now; the sender should retry later."""


@dataclasses.dataclass
class Delivery:
    """A batch handed to a consumer; ``record`` is its spool record, if spooled."""

    batch: pa.Table
    record: Record | None = None
    replay: bool = False


@dataclasses.dataclass
class _Item:
    batch: pa.Table | None  # None: on disk only, read back when its turn comes
    record: Record | None
    replay: bool = False

    @property
    def memory_bytes(self) -> int:
        return self.batch.nbytes if self.batch is not None else 0


class Destination:
    """Bounded FIFO of Arrow batches for one consumer, sized by their bytes.

    A batch larger than the whole capacity is still accepted into an empty
    buffer, so that no batch size can wedge ``block``.
    """

    def __init__(
        self, name: str, capacity_bytes: int, overflow: Overflow, spool: Spool | None = None
    ) -> None:
        if (overflow is Overflow.SPILL) != (spool is not None):
            raise ValueError(f"destination {name}: a spool goes with overflow = spill, only")
        self.name = name
        self.capacity_bytes = capacity_bytes
        self.overflow = overflow
        self.spool = spool
        self.memory_bytes = 0
        self._disk_only = 0  # items whose batch waits on disk: newer batches queue behind them
        self.dropped_batches: collections.Counter[str] = collections.Counter()
        self.dropped_rows: collections.Counter[str] = collections.Counter()
        self.delivered_rows = 0
        self._items: collections.deque[_Item] = collections.deque()
        self._changed = asyncio.Condition()
        pending = spool.pending() if spool is not None else []
        self._items.extend(_Item(None, record, replay=True) for record in pending)
        self._disk_only = len(pending)
        self.replay_total = len(pending)
        self.replay_done = 0
        self._reopen_at = 0.0  # monotonic: no new try to open a failed spool before
        self._reopening = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def spool_bytes(self) -> int:
        """Bytes in the spool not yet released by the consumer."""
        return self.spool.pending_bytes if self.spool is not None else 0

    def _fits(self, size: int) -> bool:
        return not self.memory_bytes or self.memory_bytes + size <= self.capacity_bytes

    def _drop(self, rows: int, reason: str) -> None:
        self.dropped_batches[reason] += 1
        self.dropped_rows[reason] += rows

    async def put(self, batch: pa.Table, durable: bool = False) -> None:
        """Take ``batch`` according to the policy; ``durable`` puts reach the spool first.

        Raises ``BusFull`` for a durable put that the spool cannot hold.
        """
        if self.spool is not None:
            await self._put_spilling(batch, durable)
            return
        size = batch.nbytes
        async with self._changed:
            if not self._fits(size):
                if self.overflow is Overflow.DROP_TAIL:
                    self._drop(batch.num_rows, "queue full, newest dropped")
                    return
                if self.overflow is Overflow.DROP_HEAD:
                    while not self._fits(size):
                        old = self._items.popleft()
                        self.memory_bytes -= old.memory_bytes
                        assert old.batch is not None
                        self._drop(old.batch.num_rows, "queue full, oldest dropped")
                else:
                    await self._changed.wait_for(lambda: self._fits(size))
            self._append(_Item(batch, None))

    async def _put_spilling(self, batch: pa.Table, durable: bool) -> None:
        assert self.spool is not None
        if not durable and not self._disk_only and self._fits(batch.nbytes):
            async with self._changed:
                self._append(_Item(batch, None))
            return
        try:
            spool = await self._open_spool()
            (record,) = await asyncio.to_thread(spool.append, [batch])
        except (SpoolFull, SpoolError) as e:
            if durable:
                raise BusFull(f"destination {self.name}: {e}") from None
            full = isinstance(e, SpoolFull)
            self._drop(
                batch.num_rows, "spool full, newest dropped" if full else "spool failed, dropped"
            )
            if not full:
                log.error("destination %s: %s", self.name, e)
            return
        async with self._changed:
            keep = batch if self._fits(batch.nbytes) else None
            self._append(_Item(keep, record))

    def _append(self, item: _Item) -> None:
        self._items.append(item)
        self.memory_bytes += item.memory_bytes
        self._disk_only += item.batch is None
        self._changed.notify_all()

    async def get(self, timeout: float | None = None) -> Delivery | None:
        """The oldest batch, waiting up to ``timeout`` seconds (None: forever).

        A batch the spool cannot read now (an I/O error) stays first and is
        tried again once the spool opens again; one whose bytes do not
        verify is dropped and counted.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            item = await self._next(left)
            if item is None:
                return None
            try:
                batch = item.batch if item.batch is not None else await self._read(item)
            except SpoolCorrupt as e:
                log.error("destination %s: %s", self.name, e)
                assert item.record is not None  # only spooled batches are read
                self._drop(item.record.rows, "spool record corrupt, dropped")
                continue
            except SpoolError as e:
                log.error("destination %s: %s; tried again in %.0f s", self.name, e, REOPEN_SECONDS)
                await self._close_spool()
                async with self._changed:
                    self._items.appendleft(item)
                    self._disk_only += 1
                if deadline is not None and loop.time() + REOPEN_SECONDS >= deadline:
                    await asyncio.sleep(max(0.0, deadline - loop.time()))
                    return None
                await asyncio.sleep(REOPEN_SECONDS)
                continue
            self.delivered_rows += batch.num_rows
            return Delivery(batch, item.record, item.replay)

    async def _next(self, timeout: float | None) -> _Item | None:
        async with self._changed:
            if not self._items:
                try:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(self._items)), timeout
                    )
                except TimeoutError:
                    return None
            item = self._items.popleft()
            self.memory_bytes -= item.memory_bytes
            self._disk_only -= item.batch is None
            self._changed.notify_all()
            return item

    async def _read(self, item: _Item) -> pa.Table:
        assert item.record is not None
        spool = await self._open_spool()
        return await asyncio.to_thread(spool.read, item.record)

    async def done(self, deliveries: list[Delivery]) -> None:
        """The consumer has handled ``deliveries`` (in order): release their spool records.

        If the spool cannot record that, they stay unreleased until a later
        release passes them (or are delivered again after a restart).
        """
        records = [d.record for d in deliveries if d.record is not None]
        self.replay_done += sum(d.replay for d in deliveries)
        if not records or self.spool is None:
            return
        try:
            spool = await self._open_spool()
            await asyncio.to_thread(spool.release, records[-1])
        except SpoolError as e:
            log.error("destination %s: %s", self.name, e)
            await self._close_spool()

    async def _open_spool(self) -> Spool:
        """The spool, opened again if an I/O error closed it (at most every few seconds).

        Opening recovers from the files, as at a start: records whose bytes
        were cut are gone (their puts failed and were counted or refused),
        and the records of this buffer keep their offsets.
        """
        async with self._reopening:  # a put and a get may both find it closed
            spool = self.spool
            assert spool is not None
            if not spool.closed:
                return spool
            if time.monotonic() < self._reopen_at:
                raise SpoolError(f"spool {spool.directory} is closed after an error")
            self._reopen_at = time.monotonic() + REOPEN_SECONDS
            spool = await asyncio.to_thread(
                Spool, spool.directory, spool.cap_bytes, spool.segment_bytes
            )
            log.warning("destination %s: spool %s opened again", self.name, spool.directory)
            self.spool = spool
            return spool

    async def _close_spool(self) -> None:
        """Close the spool after an I/O error, so that the next use opens it again."""
        if self.spool is not None and not self.spool.closed:
            await asyncio.to_thread(self.spool.close)
            self._reopen_at = 0.0

    def status(self) -> dict[str, object]:
        """Depth, spool, drops and replay progress, as ``vigil status`` shows them."""
        return counters(self)


def counters(q: Queue) -> dict[str, object]:
    """The figures every destination backend reports in ``vigil status``."""
    return {
        "overflow": q.overflow.value,
        "capacity_bytes": q.capacity_bytes,
        "memory_bytes": q.memory_bytes,
        "batches": len(q),
        "spool_bytes": q.spool_bytes,
        "delivered_rows": q.delivered_rows,
        "dropped_rows": dict(q.dropped_rows),
        "dropped_batches": dict(q.dropped_batches),
        "replay": {"total": q.replay_total, "done": q.replay_done},
    }
