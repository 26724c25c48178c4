"""An in-memory ``SeriesSource`` for unit tests of the query layer.

It stores each series on its own grid and answers ``fetch`` by slicing that
grid to the asked range, as storage does for one resolution.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from vigil.query.pathglob import glob_to_regex
from vigil.query.series import Series, parse_tags
from vigil.query.source import Event, MetricNode


class MemorySource:
    """Series and events held in dicts; enough of storage for pure tests."""

    def __init__(self, step: int = 60) -> None:
        self.step = step
        self.data: dict[str, dict[int, float]] = {}
        self.event_list: list[Event] = []
        self.timer_samples: dict[str, dict[int, list[float]]] = {}

    def add(
        self, path: str, start: int, values: Sequence[float | None], step: int | None = None
    ) -> None:
        """Store ``values`` for ``path`` from ``start`` on, one per step (None = gap)."""
        step = step or self.step
        points = self.data.setdefault(path, {})
        for i, v in enumerate(values):
            if v is not None:
                points[start + i * step] = float(v)

    def find(self, pattern: str) -> list[MetricNode]:
        regex = re.compile(glob_to_regex(pattern))
        depth = pattern.count(".") + 1
        nodes: dict[str, bool] = {}
        for path in self.data:
            parts = path.split(";")[0].split(".")
            prefix = ".".join(parts[:depth])
            if len(parts) >= depth and regex.match(prefix):
                leaf = len(parts) == depth
                if leaf or prefix not in nodes:
                    nodes[prefix] = nodes.get(prefix, False) or leaf
        return [MetricNode(p, leaf) for p, leaf in sorted(nodes.items())]

    def fetch(self, patterns: Sequence[str], start: int, end: int) -> list[Series]:
        out = []
        step = self.step
        first = start - start % step
        n = max(0, -(-(end - first) // step))
        for path in sorted(self.data):
            if any(p == path or re.match(glob_to_regex(p), path) for p in patterns):
                values = np.full(n, np.nan)
                for ts, v in self.data[path].items():
                    i = (ts - first) // step
                    if 0 <= i < n:
                        values[i] = v
                out.append(Series(path, first, step, values, tags=parse_tags(path)))
        return out

    def tagged(self, expressions: Sequence[str]) -> list[str]:
        def holds(tags: dict[str, str], expr: str) -> bool:
            m = re.match(r"^([^!=~]+)(!=~|=~|!=|=)(.*)$", expr)
            if not m:
                raise ValueError(f"bad tag expression {expr!r}")
            key, op, value = m.groups()
            have = tags.get(key, "")
            if op == "=":
                return have == value
            if op == "!=":
                return have != value
            found = re.match(value, have) is not None
            return found if op == "=~" else not found

        return sorted(
            p for p in self.data if ";" in p and all(holds(parse_tags(p), e) for e in expressions)
        )

    def events(self, start: int, end: int, tags: Sequence[str] = ()) -> list[Event]:
        return [
            e for e in self.event_list if start <= e.when < end and all(t in e.tags for t in tags)
        ]

    def timer_quantile(self, pattern: str, start: int, end: int, q: float) -> Series | None:
        regex = re.compile(glob_to_regex(pattern))
        matching = [t for p, t in self.timer_samples.items() if regex.match(p)]
        if not matching:
            return None
        first = start - start % self.step
        n = max(0, -(-(end - first) // self.step))
        buckets: dict[int, list[float]] = {}
        for timer in matching:
            for ts, samples in timer.items():
                buckets.setdefault((ts - first) // self.step, []).extend(samples)
        values = np.full(n, np.nan)
        for i, samples in buckets.items():
            if 0 <= i < n:
                values[i] = np.quantile(samples, q, method="lower")
        return Series(pattern, first, self.step, values)
