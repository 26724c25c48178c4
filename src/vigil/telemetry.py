"""Vigil's own metrics: one Prometheus registry per node, also written as points.

Stages register their counters and gauges on the node's ``Telemetry``; the
same values are served at ``/metrics`` (Prometheus text format) and written
into Vigil itself every few seconds as ``vigil.<node>.<metric>...`` points, so
Vigil graphs and alerts on its own health with the tools it gives users.
"""

from __future__ import annotations

import re

import pyarrow as pa
from prometheus_client import CollectorRegistry, generate_latest

from vigil.model import POINTS_SCHEMA

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def path_part(text: str) -> str:
    """``text`` as one Graphite path component (no dots or spaces)."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


class Telemetry:
    """The metric registry of one node (no process-wide state: two nodes may share a process)."""

    def __init__(self, node: str) -> None:
        self.node = path_part(node)
        self.registry = CollectorRegistry(auto_describe=True)

    def prometheus_text(self) -> bytes:
        """Every metric in Prometheus text exposition format."""
        return generate_latest(self.registry)

    def as_points(self, now: int) -> pa.Table:
        """Every sample as a point ``vigil.<node>.<metric parts>.<label values>``.

        ``vigil_ingest_points_total{protocol="graphite"}`` becomes
        ``vigil.<node>.ingest.points_total.graphite``.
        """
        paths: list[str] = []
        values: list[float] = []
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                name = sample.name.removeprefix("vigil_")
                stage, _, rest = name.partition("_")
                parts = ["vigil", self.node, stage, rest or stage]
                parts += [path_part(str(v)) for v in sample.labels.values()]
                paths.append(".".join(parts))
                values.append(float(sample.value))
        return pa.table(
            [
                pa.array(paths, pa.string()),
                pa.array([now] * len(paths), pa.uint32()),
                pa.array(values, pa.float64()),
            ],
            schema=POINTS_SCHEMA,
        )
