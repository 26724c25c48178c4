"""Moving-window render functions: ``movingWindow`` and its family, ``exponentialMovingAverage``.

As in graphite-web, the point at time t summarises the ``windowSize`` points
*before* t (not t itself), and the first points of the requested range get
full windows: the input's path expression is evaluated again from one window
earlier (``ctx.evaluate``), the window is slid over that longer series, and
the result is trimmed back to the request's first point.

``windowSize`` is a number of points (``5``) or an interval (``"5min"``); an
interval gives each series ``interval // step`` points and is quoted in the
result name: ``movingAverage(a.b,5)``, ``movingAverage(a.b,"5min")``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vigil.query.errors import RenderError
from vigil.query.functions.aggregation import reduce_rows
from vigil.query.functions.filter import AggFunc, aggregation
from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.functions.transform import derived, reevaluate
from vigil.query.grammar import String, render
from vigil.query.series import FloatArray, Series
from vigil.query.timeparse import parse_interval

collect = Collector()

_SERIES_LIST = Param("seriesList", "seriesList", required=True)
_WINDOW = Param("windowSize", "intOrInterval", required=True)
_XFF = Param("xFilesFactor", "float")


@dataclasses.dataclass(frozen=True)
class _Window:
    """A parsed ``windowSize``: how far back to fetch and how many points a window holds."""

    size: int | str
    preview_seconds: int

    @classmethod
    def parse(cls, size: int | str, series_list: list[Series]) -> _Window:
        if isinstance(size, str):
            return cls(size, abs(parse_interval(size)))
        if size < 0:
            raise RenderError(f"windowSize must not be negative, got {size}")
        return cls(int(size), max(s.step for s in series_list) * int(size))

    def points(self, step: int) -> int:
        """Points in one window for a series of this step."""
        return self.size if isinstance(self.size, int) else self.preview_seconds // step

    def label(self) -> str:
        """The window as the result name shows it: ``5`` or ``"5min"``."""
        return f'"{self.size}"' if isinstance(self.size, str) else str(self.size)


# Result names that are also calls computing the same result.
_SELF_NAMED = frozenset(("movingAverage", "movingMedian", "movingSum", "movingMin", "movingMax"))


def _previews(ctx: RenderContext, series_list: list[Series], window: _Window) -> list[Series]:
    return reevaluate(ctx, series_list, ctx.start - window.preview_seconds, ctx.end)


def _trim(
    ctx: RenderContext, preview: Series, values: FloatArray, points: int
) -> tuple[int, FloatArray]:
    """Start and values of a result whose ``values[k]`` belongs at preview point ``points + k``.

    The result is cut to start at the request's first point on the series' grid.
    """
    first = ctx.start - ctx.start % preview.step
    skip = max(0, (first - preview.start) // preview.step - points)
    return preview.start + (points + skip) * preview.step, values[skip:]


def _moving(values: FloatArray, points: int, func: AggFunc, x_files_factor: float) -> FloatArray:
    """``func`` over the ``points`` values before each point from index ``points`` on."""
    n = len(values)
    if n <= points:
        return np.empty(0)
    windows = sliding_window_view(values[:-1], points) if points else np.empty((n, 0))
    return reduce_rows(windows, func, x_files_factor, points)


@collect.function(
    "movingWindow",
    "Calculate",
    [_SERIES_LIST, _WINDOW, Param("func", "aggFunc", default="average"), _XFF],
)
def moving_window(
    ctx: RenderContext,
    seriesList: list[Series],
    windowSize: int | str,
    func: str = "average",
    xFilesFactor: float | None = None,
) -> list[Series]:
    """Apply an aggregation function over a moving window of the preceding points.

    The window is a number of points or an interval such as ``'5min'``; the
    result at each point aggregates the window before it. A window with
    fewer than ``xFilesFactor`` of its points non-null gives null.
    ``movingWindow(Server.instance*.threads.idle,'5min','median',0.5)``
    """
    if not seriesList:
        return []
    reducer = aggregation(func)
    window = _Window.parse(windowSize, seriesList)
    tag = "moving" + func.capitalize()
    out = []
    for preview in _previews(ctx, seriesList, window):
        points = window.points(preview.step)
        xff = preview.x_files_factor if xFilesFactor is None else xFilesFactor
        start, values = _trim(ctx, preview, _moving(preview.values, points, reducer, xff), points)
        name = f"{tag}({preview.name},{window.label()})"
        expression = name
        if xFilesFactor is not None or tag not in _SELF_NAMED:
            # The name does not say how to compute the result again.
            xff_arg = "" if xFilesFactor is None else f",{xFilesFactor!r}"
            func_arg = render(String(func))
            expression = f"movingWindow({preview.name},{window.label()},{func_arg}{xff_arg})"
        tags = {tag: window.size}
        out.append(derived(preview, name, values, tags, start=start, path_expression=expression))
    return out


@collect.function("movingAverage", "Calculate", [_SERIES_LIST, _WINDOW, _XFF])
def moving_average(
    ctx: RenderContext,
    seriesList: list[Series],
    windowSize: int | str,
    xFilesFactor: float | None = None,
) -> list[Series]:
    """Average the preceding points over a moving window of points or time.

    ``movingAverage(Server.instance01.threads.busy,10)``,
    ``movingAverage(Server.instance*.threads.idle,'5min')``
    """
    return moving_window(ctx, seriesList, windowSize, "average", xFilesFactor)


@collect.function("movingMedian", "Calculate", [_SERIES_LIST, _WINDOW, _XFF])
def moving_median(
    ctx: RenderContext,
    seriesList: list[Series],
    windowSize: int | str,
    xFilesFactor: float | None = None,
) -> list[Series]:
    """Take the median of the preceding points over a moving window of points or time."""
    return moving_window(ctx, seriesList, windowSize, "median", xFilesFactor)


@collect.function("movingSum", "Calculate", [_SERIES_LIST, _WINDOW, _XFF])
def moving_sum(
    ctx: RenderContext,
    seriesList: list[Series],
    windowSize: int | str,
    xFilesFactor: float | None = None,
) -> list[Series]:
    """Sum the preceding points over a moving window of points or time."""
    return moving_window(ctx, seriesList, windowSize, "sum", xFilesFactor)


@collect.function("movingMin", "Calculate", [_SERIES_LIST, _WINDOW, _XFF])
def moving_min(
    ctx: RenderContext,
    seriesList: list[Series],
    windowSize: int | str,
    xFilesFactor: float | None = None,
) -> list[Series]:
    """Take the lowest of the preceding points over a moving window of points or time."""
    return moving_window(ctx, seriesList, windowSize, "min", xFilesFactor)


@collect.function("movingMax", "Calculate", [_SERIES_LIST, _WINDOW, _XFF])
def moving_max(
    ctx: RenderContext,
    seriesList: list[Series],
    windowSize: int | str,
    xFilesFactor: float | None = None,
) -> list[Series]:
    """Take the highest of the preceding points over a moving window of points or time."""
    return moving_window(ctx, seriesList, windowSize, "max", xFilesFactor)


def _ema(values: FloatArray, points: int, constant: float) -> FloatArray:
    """graphite-web's EMA: the mean of the first window, then one update per later value.

    ``out[0]`` is that mean (0 without values) and ``out[k]`` follows
    ``values[points + k - 1]``, null where that value is null.
    """
    head = values[:points]
    present_head = head[~np.isnan(head)]
    ema = float(present_head.mean()) if len(present_head) else 0.0
    tail = values[points:]
    out = np.full(len(tail) + 1, np.nan)
    out[0] = ema
    present = np.flatnonzero(~np.isnan(tail))
    smoothed = np.empty(len(present))
    # A first-order recurrence: each value needs the previous one, which numpy
    # has no primitive for; the loop runs over non-null values only.
    for k, value in enumerate(tail[present].tolist()):
        ema = constant * value + (1 - constant) * ema
        smoothed[k] = ema
    out[present + 1] = smoothed
    return np.round(out, 6)


@collect.function("exponentialMovingAverage", "Calculate", [_SERIES_LIST, _WINDOW])
def exponential_moving_average(
    ctx: RenderContext, seriesList: list[Series], windowSize: int | str
) -> list[Series]:
    """Exponential moving average: ``ema = c * value + (1 - c) * previous ema``.

    ``c`` is ``2 / (windowSize + 1)``; the first point is the plain average of
    the first window. As in graphite-web, an interval window uses its length
    in seconds in ``c``. ``exponentialMovingAverage(*.transactions.count, 10)``
    """
    if not seriesList:
        return []
    window = _Window.parse(windowSize, seriesList)
    size = window.preview_seconds if isinstance(window.size, str) else window.size
    constant = 2.0 / (size + 1)
    out = []
    for preview in _previews(ctx, seriesList, window):
        points = window.points(preview.step)
        start, values = _trim(ctx, preview, _ema(preview.values, points, constant), points)
        name = f"exponentialMovingAverage({preview.name},{window.label()})"
        tags = {"exponentialMovingAverage": window.size}
        out.append(derived(preview, name, values, tags, start=start))
    return out
