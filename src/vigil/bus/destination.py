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
from typing import TYPE_CHECKING

import pyarrow as pa

from vigil.bus.spool import Record, Spool, SpoolError, SpoolFull

if TYPE_CHECKING:  # the protocol imports this module's types
    from vigil.bus.queue import Queue

log = logging.getLogger(__name__)


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

    def __len__(self) -> int:
        return len(self._items)

    @property
    def spool_bytes(self) -> int:
        """Bytes in the spool not yet released by the consumer."""
        return self.spool.pending_bytes if self.spool is not None else 0

    def _fits(self, size: int) -> bool:
        return not self.memory_bytes or self.memory_bytes + size <= self.capacity_bytes

    def _drop(self, batch: pa.Table, reason: str) -> None:
        self.dropped_batches[reason] += 1
        self.dropped_rows[reason] += batch.num_rows

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
                    self._drop(batch, "queue full, newest dropped")
                    return
                if self.overflow is Overflow.DROP_HEAD:
                    while not self._fits(size):
                        old = self._items.popleft()
                        self.memory_bytes -= old.memory_bytes
                        assert old.batch is not None
                        self._drop(old.batch, "queue full, oldest dropped")
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
            (record,) = await asyncio.to_thread(self.spool.append, [batch])
        except (SpoolFull, SpoolError) as e:
            if durable:
                raise BusFull(f"destination {self.name}: {e}") from None
            full = isinstance(e, SpoolFull)
            self._drop(batch, "spool full, newest dropped" if full else "spool failed, dropped")
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
        """The oldest batch, waiting up to ``timeout`` seconds (None: forever)."""
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
        batch = item.batch
        if batch is None:
            assert self.spool is not None and item.record is not None
            batch = await asyncio.to_thread(self.spool.read, item.record)
            assert batch is not None
        self.delivered_rows += batch.num_rows
        return Delivery(batch, item.record, item.replay)

    async def done(self, deliveries: list[Delivery]) -> None:
        """The consumer has handled ``deliveries`` (in order): release their spool records."""
        records = [d.record for d in deliveries if d.record is not None]
        self.replay_done += sum(d.replay for d in deliveries)
        if records and self.spool is not None:
            await asyncio.to_thread(self.spool.release, records[-1])

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
