"""The time series value type that render functions take and return.

A series is a regular grid: ``values[i]`` is the value of the interval
``[start + i*step, start + (i+1)*step)``; NaN means "no value" (Graphite's
None). ``end`` is exclusive and equals ``start + len(values) * step``. Values
are a float64 numpy array so that functions are vectorised.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass
class Series:
    """One named series on a regular time grid, as Graphite's ``TimeSeries``.

    ``name`` is what the legend shows (functions rewrite it, e.g.
    ``sumSeries(a.*)``); ``path_expression`` is the expression the series came
    from, used when a function must re-fetch it over another range (timeShift,
    movingAverage's bootstrap). ``tags`` always holds at least ``name``.
    ``consolidation`` is the function used by maxDataPoints consolidation
    (``average``, ``sum``, ``min``, ``max``, ``first``, ``last``), set by
    ``consolidateBy``. ``options`` carries drawing hints (``stacked``,
    ``drawAsInfinite``, ``legendValue`` ...) that the JSON output ignores.
    """

    name: str
    start: int
    step: int
    values: FloatArray
    path_expression: str = ""
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    consolidation: str = "average"
    x_files_factor: float = 0.0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if not self.path_expression:
            self.path_expression = self.name
        if "name" not in self.tags:
            self.tags = {**parse_tags(self.name), **self.tags}

    @property
    def end(self) -> int:
        """Exclusive end of the grid."""
        return self.start + len(self.values) * self.step

    def timestamps(self) -> npt.NDArray[np.int64]:
        """Start time of every interval."""
        return self.start + self.step * np.arange(len(self.values), dtype=np.int64)

    def copy(self, **changes: Any) -> Series:
        """A new series with some fields replaced; values and dicts are copied."""
        fields: dict[str, Any] = {
            "name": self.name,
            "start": self.start,
            "step": self.step,
            "values": self.values.copy(),
            "path_expression": self.path_expression,
            "tags": dict(self.tags),
            "consolidation": self.consolidation,
            "x_files_factor": self.x_files_factor,
            "options": dict(self.options),
        }
        fields.update(changes)
        return Series(**fields)

    def as_list(self) -> list[float | None]:
        """Values with NaN as None, the shape of Graphite's JSON output."""
        return [None if v != v else float(v) for v in self.values.tolist()]


def parse_tags(path: str) -> dict[str, str]:
    """Tags of a Graphite 1.1 series path; plain paths only get ``name``.

    >>> parse_tags("cpu.load;host=a;dc=x")
    {'name': 'cpu.load', 'host': 'a', 'dc': 'x'}
    """
    name, *pairs = path.split(";")
    tags = {"name": name}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep:
            tags[key] = value
    return tags
