"""What the bus and the consumers need of a destination, whichever backend holds it.

Two backends implement it: ``destination.Destination`` (in-process buffer plus
disk spool) and ``jetstream.JetStreamDestination`` (a JetStream stream and its
durable consumer). The contract, as consumers rely on it:

- ``put`` is called by the bus's fan-out only; it waits on ``block`` and
  returns once a ``durable`` put is safe from a crash of this process
  (spooled or stored by JetStream), raising ``BusFull`` when it cannot be.
- ``get`` hands out batches in put order, ``None`` after ``timeout`` seconds.
- ``done`` releases handled deliveries, in the order they were got; what was
  got but not released is delivered again later (``Delivery.replay`` set).
- The counters are read by the self-metrics collector at scrape time.
"""

from __future__ import annotations

import collections
from typing import Protocol

import pyarrow as pa

from vigil.bus.destination import Delivery, Overflow
from vigil.bus.spool import Spool


class Queue(Protocol):
    """One destination's queue: bounded, with an overflow policy and counters."""

    name: str
    overflow: Overflow
    capacity_bytes: int
    spool: Spool | None
    memory_bytes: int
    delivered_rows: int
    dropped_batches: collections.Counter[str]
    dropped_rows: collections.Counter[str]
    replay_total: int
    replay_done: int

    @property
    def spool_bytes(self) -> int:
        """Bytes kept on disk for this destination."""
        ...

    def __len__(self) -> int:
        """Batches waiting to be got."""
        ...

    async def put(self, batch: pa.Table, durable: bool = False) -> None:
        """Take ``batch`` according to the overflow policy."""
        ...

    async def get(self, timeout: float | None = None) -> Delivery | None:
        """The oldest batch not yet got, or None after ``timeout`` seconds."""
        ...

    async def done(self, deliveries: list[Delivery]) -> None:
        """The consumer has handled ``deliveries``: they are not delivered again."""
        ...

    def status(self) -> dict[str, object]:
        """Depth, bytes, drops and replay progress, as ``vigil status`` shows them."""
        ...
