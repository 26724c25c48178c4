"""Render functions that resample a series into larger buckets: summarize, smartSummarize, hitcount.

``summarize`` aligns buckets to multiples of the interval (or to the series
start with ``alignToFrom``), ``smartSummarize`` to the series start after
optionally fetching again from a calendar-aligned start, and ``hitcount``
treats values as rates per second and spreads each point's hits over the
buckets its interval overlaps. Calendar alignment is in UTC.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from vigil.query.errors import RenderError
from vigil.query.functions.aggregation import reduce_rows
from vigil.query.functions.filter import AggFunc, aggregation
from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.functions.transform import derived, reevaluate
from vigil.query.series import FloatArray, Series
from vigil.query.timeparse import parse_interval

collect = Collector()

_SERIES_LIST = Param("seriesList", "seriesList", required=True)
_INTERVAL = Param("intervalString", "interval", required=True)

_MINUTE, _HOUR, _DAY = 60, 3600, 86400


def _bucket_seconds(interval: str) -> int:
    seconds = abs(parse_interval(interval))
    if seconds == 0:
        raise RenderError(f"the interval {interval!r} is zero; give a length such as '1h'")
    return seconds


def _bucketed(series: Series, func: AggFunc, interval: int, start: int, end: int) -> FloatArray:
    """``func`` over the points in each bucket ``[start + k*interval, ...)`` up to ``end``.

    As graphite-web's ``_summarizeValues``, a bucket is null unless its
    non-null points reach the series' x-files factor of ``interval / step``.
    """
    buckets = max(0, -(-(end - start) // interval))
    index = (series.timestamps() - start) // interval
    inside = (index >= 0) & (index < buckets)
    index, values = index[inside], series.values[inside]
    width = int(np.bincount(index).max()) if len(index) else 0
    position = np.arange(len(index)) - np.searchsorted(index, index)
    matrix = np.full((buckets, width), np.nan)
    matrix[index, position] = values
    return reduce_rows(matrix, func, series.x_files_factor, interval / series.step)


@collect.function(
    "summarize",
    "Transform",
    [
        _SERIES_LIST,
        _INTERVAL,
        Param("func", "aggFunc", default="sum"),
        Param("alignToFrom", "boolean", default=False),
    ],
)
def summarize(
    ctx: RenderContext,
    seriesList: list[Series],
    intervalString: str,
    func: str = "sum",
    alignToFrom: bool = False,
) -> list[Series]:
    """Aggregate the points into buckets of an interval, summing them unless told otherwise.

    ``func`` is an aggregation function as in ``aggregate`` (``sum`` for
    counters, ``average`` or ``max`` for gauges). Buckets start at multiples
    of the interval (22:32 falls in 22:00-23:00 for ``1hour``); with
    ``alignToFrom`` they start at the series' start instead.
    ``summarize(counter.errors, "1hour")`` counts errors per hour.
    """
    reducer = aggregation(func)
    interval = _bucket_seconds(intervalString)
    out = []
    for s in seriesList:
        if alignToFrom:
            start, end = s.start, s.end
        else:
            start, end = s.start - s.start % interval, s.end - s.end % interval + interval
        values = _bucketed(s, reducer, interval, start, end)
        flag = ", true" if alignToFrom else ""
        name = f'summarize({s.name}, "{intervalString}", "{func}"{flag})'
        tags = {"summarize": intervalString, "summarizeFunction": func}
        out.append(derived(s, name, values, tags, start=start, step=interval))
    return out


def _truncate(ts: int, unit: str) -> int:
    """``ts`` rounded down to the start of its UTC year, month, week, day, hour or minute.

    Units are matched by prefix as graphite-web's ``getUnitString`` does
    (``"weeks"``, ``"d"``); a week starts on ISO weekday 1 (Monday) unless the
    unit ends in another weekday digit, e.g. ``"weeks7"``.
    """
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    name = unit.lower()
    if name.startswith("s"):
        aligned = moment.replace(microsecond=0)
    elif name.startswith("min"):
        aligned = moment.replace(second=0, microsecond=0)
    elif name.startswith("h"):
        aligned = moment.replace(minute=0, second=0, microsecond=0)
    elif name.startswith("d"):
        aligned = midnight
    elif name.startswith("w"):
        weekday = int(name[-1]) if name[-1].isdigit() else 1
        aligned = midnight - dt.timedelta(days=(moment.isoweekday() - weekday) % 7)
    elif name.startswith("mon"):
        aligned = midnight.replace(day=1)
    elif name.startswith("m"):
        aligned = moment.replace(second=0, microsecond=0)
    elif name.startswith("y"):
        aligned = midnight.replace(month=1, day=1)
    else:
        raise RenderError(
            f"cannot align to {unit!r}: use years, months, weeks, days, hours, minutes or seconds"
        )
    return int(aligned.timestamp())


@collect.function(
    "smartSummarize",
    "Transform",
    [
        _SERIES_LIST,
        _INTERVAL,
        Param("func", "aggFunc", default="sum"),
        Param("alignTo", "string"),
    ],
)
def smart_summarize(
    ctx: RenderContext,
    seriesList: list[Series],
    intervalString: str,
    func: str = "sum",
    alignTo: str | None = None,
) -> list[Series]:
    """Aggregate the points into buckets of an interval counted from the series' start.

    With ``alignTo`` (``"years"``, ``"months"``, ``"weeks"``, ``"days"``,
    ``"hours"``, ``"minutes"`` or ``"seconds"``; ``"weeks3"`` starts weeks on
    Wednesday) the series are fetched again from the request's start rounded
    down to that unit in UTC, so that buckets fall on whole days or hours.
    """
    reducer = aggregation(func)
    interval = _bucket_seconds(intervalString)
    if alignTo is not None:
        seriesList = reevaluate(ctx, seriesList, _truncate(ctx.start, alignTo), ctx.end)
    out = []
    for s in seriesList:
        values = _bucketed(s, reducer, interval, s.start, s.end)
        name = f'smartSummarize({s.name}, "{intervalString}", "{func}")'
        tags = {"smartSummarize": intervalString, "smartSummarizeFunction": func}
        out.append(derived(s, name, values, tags, step=interval))
    return out


def _hits(series: Series, start: int, interval: int, buckets: int) -> FloatArray:
    """Sum over each bucket of value x seconds of overlap, treating values as rates per second.

    Hits falling after the last bucket are dropped; a bucket no non-null
    point overlaps is null.
    """
    n, step = len(series.values), series.step
    if n == 0:
        return np.full(buckets, np.nan)
    present = ~np.isnan(series.values)
    rates = np.where(present, series.values, 0.0)
    hits_before = np.concatenate(([0.0], np.cumsum(rates * step)))
    present_before = np.concatenate(([0], np.cumsum(present)))
    edges = start + interval * np.arange(buckets + 1) - series.start
    point = np.clip(edges // step, 0, n)
    inside = np.minimum(point, n - 1)
    partial = np.where(point < n, edges - point * step, 0)
    hits = hits_before[point] + rates[inside] * np.clip(partial, 0, None)
    first = np.clip(edges[:-1] // step, 0, n)
    last = np.clip(-(-edges[1:] // step), 0, n)
    overlapping = present_before[last] - present_before[first]
    return np.where(overlapping > 0, np.diff(hits), np.nan)


@collect.function(
    "hitcount",
    "Transform",
    [_SERIES_LIST, _INTERVAL, Param("alignToInterval", "boolean", default=False)],
)
def hitcount(
    ctx: RenderContext,
    seriesList: list[Series],
    intervalString: str,
    alignToInterval: bool = False,
) -> list[Series]:
    """Turn rates per second into hit counts per interval, such as hits per hour.

    Like ``summarize`` with ``sum``, but each point's hits (value x step) are
    split between the buckets its time span overlaps, so fine and coarse
    resolutions give similar graphs. Buckets end at the series' end, unless
    ``alignToInterval`` re-fetches from the request's start rounded down to
    the day, hour or minute (UTC) and starts the buckets there.
    """
    interval = _bucket_seconds(intervalString)
    if alignToInterval:
        unit = "days" if interval >= _DAY else "hours" if interval >= _HOUR else "minutes"
        start = _truncate(ctx.start, unit) if interval >= _MINUTE else ctx.start
        seriesList = reevaluate(ctx, seriesList, start, ctx.end)
    out = []
    for s in seriesList:
        end = s.end
        if alignToInterval:
            end = s.start + (s.end - s.start) // interval * interval + interval
        buckets = -(-(end - s.start) // interval)
        start = end - buckets * interval
        flag = ", true" if alignToInterval else ""
        name = f'hitcount({s.name}, "{intervalString}"{flag})'
        values = _hits(s, start, interval, buckets)
        out.append(
            derived(s, name, values, {"hitcount": intervalString}, start=start, step=interval)
        )
    return out
