"""The fault-domain manager: every published batch goes to each destination's buffer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import pyarrow as pa

from vigil.bus.queue import Queue

Q = TypeVar("Q", bound=Queue)


class Bus:
    """One bounded queue per destination, fed in publish order.

    A queue is in-process (``destination``) or a JetStream stream
    (``jetstream``); the fan-out is the same.
    """

    def __init__(self, destinations: Iterable[Queue] = ()) -> None:
        self.destinations: dict[str, Queue] = {}
        for d in destinations:
            self.add(d)

    def add(self, destination: Q) -> Q:
        """Register a destination; batches published from now on reach it."""
        if destination.name in self.destinations:
            raise ValueError(f"destination {destination.name} registered twice")
        self.destinations[destination.name] = destination
        return destination

    async def publish(self, batch: pa.Table, durable: bool = False) -> None:
        """Hand ``batch`` to every destination; waits only on ``block`` buffers that are full.

        With ``durable`` it returns once every ``spill`` destination has the
        batch fsynced in its spool: then the sender may be acknowledged. It
        raises ``destination.BusFull`` when a spool is full; destinations
        earlier in the order may have taken the batch, so a retry can deliver
        it to them twice (at-least-once). Destinations share the batch: Arrow
        tables are immutable, so no copy is made.
        """
        if batch.num_rows == 0:
            return
        for destination in self.destinations.values():
            await destination.put(batch, durable)
