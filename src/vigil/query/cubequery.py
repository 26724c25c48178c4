"""A cube query as data: measures, group-by dimensions, filters, time range and step.

The cube counts transactions and events per time bucket over the dimensions
datacenter > cluster > host, application, type, name and status (see
``docs/cubes.md``). The web API and the CLI build a ``CubeQuery`` from user
input (errors name the parameter); a storage backend answers it with a
``CubeResult`` table.

>>> q = CubeQuery(0, 3600, measures=("count", "p99"), group_by=("app", "host"), rollup=True)
>>> q.hierarchy_levels()
[('app', 'host'), ('app',)]
"""

from __future__ import annotations

import dataclasses
from typing import Any

DIMENSIONS = ("dc", "cluster", "host", "app", "type", "name", "status")
# The location hierarchy that roll-up totals follow, outermost first.
HIERARCHY = ("dc", "cluster", "host")
# Each measure and the quantile it reads from the duration sketch, if any.
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
MEASURES = ("count", "errors", "error_rate", "transactions", "sum", "avg", "min", "max", *QUANTILES)
# The steps the engine keeps, finest first. Days are not a retention step of
# their own: they serve long ranges from few rows and live as long as hours.
STEPS = (10, 60, 3600, 86400)
MAX_ROWS = 200_000
# A range is read from a table with at least this many buckets in it, so that
# widening it to whole buckets changes it by at most a twelfth.
MIN_BUCKETS = 12


class CubeQueryError(ValueError):
    """A cube query that cannot run as asked; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class CubeQuery:
    """Measures per group over ``[start, end)`` epoch seconds; per ``step`` bucket if given."""

    start: int
    end: int
    measures: tuple[str, ...] = ("count",)
    group_by: tuple[str, ...] = ()
    filters: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    step: int | None = None
    rollup: bool = False

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise CubeQueryError("until must be after from")
        for m in self.measures:
            if m not in MEASURES:
                raise CubeQueryError(f"unknown measure {m!r}; measures: {', '.join(MEASURES)}")
        for d in (*self.group_by, *self.filters):
            if d not in DIMENSIONS:
                raise CubeQueryError(
                    f"unknown dimension {d!r}; dimensions: {', '.join(DIMENSIONS)}"
                )
        for value in self.filters.get("status", ()):
            if not value.lstrip("-").isdigit():
                raise CubeQueryError(f"status={value!r}: expected an integer")
        if self.step is not None and (self.step < STEPS[0] or self.step % STEPS[0]):
            raise CubeQueryError(f"step must be a multiple of {STEPS[0]} s")

    @property
    def table_step(self) -> int:
        """The step of the table to read.

        With ``step``: the coarsest kept step that divides it. Without (one row
        per group over the range): the coarsest kept step that still splits
        the range into at least ``MIN_BUCKETS`` buckets; the range is then
        read in whole buckets of that step (``bounds``).
        """
        if self.step:
            return max((s for s in STEPS if self.step % s == 0), default=STEPS[0])
        span = self.end - self.start
        return max((s for s in STEPS if span >= MIN_BUCKETS * s), default=STEPS[0])

    @property
    def bounds(self) -> tuple[int, int]:
        """The range read: ``[start, end)`` widened to whole buckets of ``table_step``."""
        step = self.table_step
        return self.start - self.start % step, -(-self.end // step) * step

    def segments(self) -> list[tuple[int, int, int]]:
        """(step, start, end) of each table read, covering ``bounds`` exactly.

        With ``step`` one table serves the range. Without, whole buckets of
        coarser tables inside the range are read from them and only the edges
        from ``table_step``'s table: the same sums from far fewer rows (a day
        of 1 h buckets is one row per group in the 1-day table).

        >>> CubeQuery(82_800, 3 * 86_400 + 3_600, step=None).segments()
        [(3600, 82800, 86400), (86400, 86400, 259200), (3600, 259200, 262800)]
        """
        start, end = self.bounds
        if self.step:
            return [(self.table_step, start, end)]
        return _cover(start, end, [s for s in STEPS if s >= self.table_step])

    def hierarchy_levels(self) -> list[tuple[str, ...]]:
        """The group-by of each row level: the full one, then (with ``rollup``) totals.

        Totals drop the innermost location dimension first (host, then
        cluster, then datacenter), keeping the other dimensions.
        """
        levels = [self.group_by]
        if self.rollup:
            located = [d for d in HIERARCHY if d in self.group_by]
            while located:
                dropped = located.pop()
                levels.append(tuple(d for d in levels[-1] if d != dropped))
        return levels


def _cover(start: int, end: int, steps: list[int]) -> list[tuple[int, int, int]]:
    """``[start, end)`` (whole buckets of ``steps[0]``) as whole buckets of the coarsest steps."""
    step, coarser = steps[0], steps[1:]
    if not coarser:
        return [(step, start, end)]
    low, high = -(-start // coarser[0]) * coarser[0], end // coarser[0] * coarser[0]
    if low >= high:
        return [(step, start, end)]
    head = [(step, start, low)] if start < low else []
    tail = [(step, high, end)] if high < end else []
    return [*head, *_cover(low, high, coarser), *tail]


@dataclasses.dataclass(frozen=True)
class CubeResult:
    """A table: column names, then rows (``rollup`` says which level a row totals, or null).

    Rows are tuples: tuples of numbers and strings drop out of the garbage
    collector's sight, where 50,000 lists made its passes cost more than
    building them.
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
