"""The bus's self-metrics: depth, spool, drops and replay (redelivery) progress per destination."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vigil.bus.fanout import Bus
from vigil.telemetry import Telemetry


class _BusCollector(Collector):
    """Reads the destinations' counters at scrape time (no bookkeeping on the hot path)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        label = ["destination"]
        memory = GaugeMetricFamily(
            "vigil_bus_memory_bytes", "Bytes buffered in memory per destination.", labels=label
        )
        batches = GaugeMetricFamily(
            "vigil_bus_batches", "Batches waiting per destination.", labels=label
        )
        spool = GaugeMetricFamily(
            "vigil_bus_spool_bytes", "Bytes in a destination's disk spool.", labels=label
        )
        delivered = CounterMetricFamily(
            "vigil_bus_delivered_rows", "Rows handed to a destination.", labels=label
        )
        dropped = CounterMetricFamily(
            "vigil_bus_dropped_rows", "Rows dropped per destination and reason.",
            labels=["destination", "reason"],
        )  # fmt: skip
        dropped_batches = CounterMetricFamily(
            "vigil_bus_dropped_batches", "Batches dropped per destination and reason.",
            labels=["destination", "reason"],
        )  # fmt: skip
        replay = GaugeMetricFamily(
            "vigil_bus_replay_left", "Spooled batches from before a restart still to deliver.",
            labels=label,
        )  # fmt: skip
        for name, d in self.bus.destinations.items():
            memory.add_metric([name], d.memory_bytes)
            batches.add_metric([name], len(d))
            spool.add_metric([name], d.spool_bytes)
            delivered.add_metric([name], d.delivered_rows)
            replay.add_metric([name], d.replay_total - d.replay_done)
            for reason, rows in d.dropped_rows.items():
                dropped.add_metric([name, reason], rows)
            for reason, count in d.dropped_batches.items():
                dropped_batches.add_metric([name, reason], count)
        yield from (memory, batches, spool, delivered, dropped, dropped_batches, replay)


def register_bus_metrics(bus: Bus, telemetry: Telemetry) -> None:
    """Expose ``bus``'s destinations in the node's registry (``/metrics`` and ``vigil.*``)."""
    telemetry.registry.register(_BusCollector(bus))
