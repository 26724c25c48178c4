"""The fault-domain manager: every published batch goes to each destination's buffer that takes it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
        self._wants: dict[str, tuple[pa.Schema, ...]] = {}
        for d in destinations:
            self.add(d)

    def add(self, destination: Q, only: Sequence[pa.Schema] = ()) -> Q:
        """Register a destination; batches published from now on reach it.

        With ``only``, just batches of those schemas do: a consumer of log
        entries (tail, cube, alert) is not handed every batch of points, which
        on JetStream would cost a publish and its bytes each.
        """
        if destination.name in self.destinations:
            raise ValueError(f"destination {destination.name} registered twice")
        self.destinations[destination.name] = destination
        self._wants[destination.name] = tuple(only)
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
        for name, destination in self.destinations.items():
            wants = self._wants[name]
            if not wants or any(batch.schema.equals(schema) for schema in wants):
                await destination.put(batch, durable)
