"""The destinations of a deployment, from its settings alone.

Every process of a deployment derives the same list, whichever stages it
runs: an ingest node publishes to every destination that exists, not only
to those it consumes (with roles split, it consumes none).
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from vigil.bus.destination import Overflow
from vigil.model import LOGS_SCHEMA
from vigil.settings import BusSettings, SettingsError


@dataclasses.dataclass(frozen=True)
class DestinationSpec:
    """One destination: its buffer, its overflow policy and what it takes.

    ``only``: the schemas it takes (empty: every batch). ``shared``: the
    consuming processes split its batches between them; else each one reads
    every batch (a live tail in every query process).
    """

    name: str
    capacity_bytes: int
    overflow: Overflow
    spool_bytes: int = 0
    only: tuple[pa.Schema, ...] = ()
    shared: bool = True


def destination_specs(bus: BusSettings) -> list[DestinationSpec]:
    """The deployment's destinations in fan-out order; ``forward`` only when a relay is set.

    Raises SettingsError for an overflow policy a destination cannot have.
    """
    logs_only = (LOGS_SCHEMA,)
    specs = [
        DestinationSpec(
            "store", bus.store_queue_bytes, _overflow(bus, "store"), bus.store_spool_bytes
        ),
        DestinationSpec(
            "tail", bus.tail_queue_bytes, _overflow(bus, "tail", "a live tail does not replay"),
            only=logs_only, shared=False,
        ),
        DestinationSpec(
            "cube", bus.cube_queue_bytes, _overflow(bus, "cube"), bus.cube_spool_bytes, logs_only
        ),
    ]  # fmt: skip
    if bus.forward_graphite or bus.forward_eventlog:
        specs.append(
            DestinationSpec(
                "forward",
                bus.forward_queue_bytes,
                _overflow(bus, "forward"),
                bus.forward_spool_bytes,
            )
        )
    specs.append(
        DestinationSpec(
            "alert", bus.alert_queue_bytes,
            _overflow(bus, "alert", "heartbeats are not replayed"), only=logs_only,
        )
    )  # fmt: skip
    return specs


def _overflow(bus: BusSettings, destination: str, no_spill: str = "") -> Overflow:
    """The ``<destination>_overflow`` setting as an Overflow; ``no_spill`` says why spill is refused."""
    name = f"{destination}_overflow"
    value = getattr(bus, name)
    try:
        overflow = Overflow(value)
    except ValueError:
        choices = ", ".join(o.value for o in Overflow)
        raise SettingsError(f"{name} = {value!r}: use one of {choices}") from None
    if no_spill and overflow is Overflow.SPILL:
        raise SettingsError(f"{name} = 'spill': {no_spill}; drop instead")
    return overflow
