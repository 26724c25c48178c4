"""A bounded queue of batches for one destination, with its overflow policy.

Each destination (store, forward, ...) has its own queue so that a slow or
dead destination never stalls the others. Capacity is in bytes; when a put
would exceed it the policy decides: ``block`` waits (backpressure reaches
the publishers), ``drop_head`` drops the oldest batches, ``drop_tail`` drops
the new one. Every drop is counted with its reason.
"""

from __future__ import annotations

import asyncio
import collections
import enum

import pyarrow as pa


class Overflow(enum.Enum):
    """What a full queue does with one more batch."""

    BLOCK = "block"
    DROP_HEAD = "drop_head"
    DROP_TAIL = "drop_tail"


class BatchQueue:
    """Bounded FIFO of Arrow batches, sized by their bytes.

    A batch larger than the whole capacity is still accepted into an empty
    queue, so that no batch size can wedge ``block``.
    """

    def __init__(self, name: str, capacity_bytes: int, overflow: Overflow) -> None:
        self.name = name
        self.capacity_bytes = capacity_bytes
        self.overflow = overflow
        self.depth_bytes = 0
        self.dropped_batches: collections.Counter[str] = collections.Counter()
        self.dropped_rows: collections.Counter[str] = collections.Counter()
        self._items: collections.deque[pa.Table] = collections.deque()
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def _fits(self, size: int) -> bool:
        return not self._items or self.depth_bytes + size <= self.capacity_bytes

    def _drop(self, batch: pa.Table, reason: str) -> None:
        self.dropped_batches[reason] += 1
        self.dropped_rows[reason] += batch.num_rows

    async def put(self, batch: pa.Table) -> None:
        """Enqueue ``batch`` according to the overflow policy."""
        size = batch.nbytes
        async with self._changed:
            if not self._fits(size):
                if self.overflow is Overflow.DROP_TAIL:
                    self._drop(batch, "queue full, newest dropped")
                    return
                if self.overflow is Overflow.DROP_HEAD:
                    while not self._fits(size):
                        old = self._items.popleft()
                        self.depth_bytes -= old.nbytes
                        self._drop(old, "queue full, oldest dropped")
                else:
                    await self._changed.wait_for(lambda: self._fits(size))
            self._items.append(batch)
            self.depth_bytes += size
            self._changed.notify_all()

    async def get(self, timeout: float | None = None) -> pa.Table | None:
        """The oldest batch, waiting up to ``timeout`` seconds (None: forever)."""
        async with self._changed:
            if not self._items:
                try:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(self._items)), timeout
                    )
                except TimeoutError:
                    return None
            batch = self._items.popleft()
            self.depth_bytes -= batch.nbytes
            self._changed.notify_all()
            return batch
