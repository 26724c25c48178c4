"""The fault-domain manager: every published batch goes to each destination's queue."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from vigil.bus.queue import BatchQueue


class Bus:
    """In-process bus: one bounded queue per destination, fed in publish order."""

    def __init__(self, queues: Iterable[BatchQueue] = ()) -> None:
        self.queues: dict[str, BatchQueue] = {}
        for q in queues:
            self.add(q)

    def add(self, queue: BatchQueue) -> BatchQueue:
        """Register a destination's queue; batches published from now on reach it."""
        if queue.name in self.queues:
            raise ValueError(f"destination {queue.name} registered twice")
        self.queues[queue.name] = queue
        return queue

    async def publish(self, batch: pa.Table) -> None:
        """Hand ``batch`` to every destination; waits only on ``block`` queues that are full.

        Destinations share the batch: Arrow tables are immutable, so no copy is made.
        """
        if batch.num_rows == 0:
            return
        for queue in self.queues.values():
            await queue.put(batch)
