"""What the query layer needs from storage, as a narrow protocol.

The render API evaluates targets against a ``SeriesSource``; the storage
stage provides the real one, tests may use an in-memory one. All calls are
synchronous and thread-safe: the web layer runs them in worker threads.
Time bounds are epoch seconds, ``start`` inclusive and ``end`` exclusive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from vigil.query.series import Series


@dataclasses.dataclass(frozen=True)
class MetricNode:
    """One node of the metric tree as ``/metrics/find`` lists it."""

    path: str
    is_leaf: bool

    @property
    def name(self) -> str:
        """Last component of the path."""
        return self.path.rsplit(".", 1)[-1]


@dataclasses.dataclass(frozen=True)
class Event:
    """An annotation on the timeline (a deploy, an incident), Graphite-style."""

    id: int
    when: float
    what: str
    tags: tuple[str, ...]
    data: str


class SeriesSource(Protocol):
    """Read side of storage as the query layer sees it."""

    def find(self, pattern: str) -> list[MetricNode]:
        """Nodes matching a Graphite glob (``*``, ``?``, ``[0-9]``, ``{a,b}``), one level deep.

        ``servers.*`` lists the children of ``servers``: branches and leaves
        (a node may be both). Sorted by path.
        """
        ...

    def fetch(self, patterns: Sequence[str], start: int, end: int) -> list[Series]:
        """Series of every leaf path matching any pattern, over ``[start, end)``.

        Reads the finest resolution whose retention covers ``start``; the
        series' ``start`` is ``start`` rounded down to that step, missing
        intervals are NaN. A series' name and path_expression are its path.
        """
        ...

    def tagged(self, expressions: Sequence[str]) -> list[str]:
        """Paths of tagged series matching ``seriesByTag`` expressions such as ``dc=x``,
        ``host!=a``, ``name=~cpu.*``, ``host!=~b.*`` (all must hold)."""
        ...

    def events(self, start: int, end: int, tags: Sequence[str] = ()) -> list[Event]:
        """Events in ``[start, end)`` carrying all the given tags, oldest first."""
        ...

    def timer_quantile(self, pattern: str, start: int, end: int, q: float) -> Series | None:
        """The ``q`` quantile (0..1) of every timer matching ``pattern`` merged, per interval.

        Timers are StatsD timers stored as mergeable sketches, so the quantile
        is right over many hosts and over coarse intervals (unlike averaging
        ``.p99`` series). None when no timer matches.
        """
        ...
