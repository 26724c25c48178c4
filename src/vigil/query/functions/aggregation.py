"""Graphite's aggregation functions, consolidation and ``normalize()`` on numpy arrays.

Graphite reduces a group of values with one of its ``aggFuncs`` in many places:
across series (``sumSeries``, ``aggregate``), over time buckets
(``summarize``), over moving windows, and when it consolidates a series to a
coarser step before combining it with others. Here every reducer works on the
last axis of a 2-D float array whose NaN cells are nulls, so each of those
callers is one reshape plus one vectorised call::

    >>> reduce_rows(np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]]), "sum")
    array([ 4., nan])

A row with no value at all reduces to null, and so does a row whose share of
values is below the x-files factor, as in Graphite's ``xff()``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.query.functions.registry import RenderError
from vigil.query.series import FloatArray, Series

Reducer = Callable[[FloatArray], FloatArray]


def _floats(values: Any) -> FloatArray:
    """numpy's axis reductions are typed ``Any``; state what they return."""
    return np.asarray(values, dtype=np.float64)


def _count(m: FloatArray) -> FloatArray:
    return _floats(np.count_nonzero(~np.isnan(m), axis=-1))


def _sum(m: FloatArray) -> FloatArray:
    return _floats(np.nansum(m, axis=-1))


def _average(m: FloatArray) -> FloatArray:
    return _floats(np.nansum(m, axis=-1) / _count(m))


def _avg_zero(m: FloatArray) -> FloatArray:
    return _floats(np.nansum(m, axis=-1) / m.shape[-1])


def _min(m: FloatArray) -> FloatArray:
    return _floats(np.fmin.reduce(m, axis=-1))


def _max(m: FloatArray) -> FloatArray:
    return _floats(np.fmax.reduce(m, axis=-1))


def _range(m: FloatArray) -> FloatArray:
    return _max(m) - _min(m)


def _first_index(m: FloatArray) -> npt.NDArray[np.intp]:
    return np.asarray(np.argmax(~np.isnan(m), axis=-1), dtype=np.intp)[..., None]


def _first(m: FloatArray) -> FloatArray:
    return np.take_along_axis(m, _first_index(m), axis=-1)[..., 0]


def _last(m: FloatArray) -> FloatArray:
    return _first(m[..., ::-1])


def _diff(m: FloatArray) -> FloatArray:
    # Graphite's safeDiff: the first value minus all the later ones.
    rest = m.copy()
    np.put_along_axis(rest, _first_index(m), np.nan, axis=-1)
    return _first(m) - _sum(rest)


def _multiply(m: FloatArray) -> FloatArray:
    # Graphite's safeMul: one null factor makes the product null.
    return _floats(np.prod(m, axis=-1))


def _median(m: FloatArray) -> FloatArray:
    ordered = np.sort(m, axis=-1)  # NaN sorts last
    n = np.count_nonzero(~np.isnan(m), axis=-1)
    low = np.maximum((n - 1) // 2, 0)[..., None]
    high = np.minimum(n // 2, m.shape[-1] - 1)[..., None]
    lows = np.take_along_axis(ordered, low, axis=-1)[..., 0]
    highs = np.take_along_axis(ordered, high, axis=-1)[..., 0]
    return _floats((lows + highs) / 2)


def _stddev(m: FloatArray) -> FloatArray:
    mean = _average(m)
    return np.sqrt(_sum((m - mean[..., None]) ** 2) / _count(m))


_REDUCERS: dict[str, Reducer] = {
    "average": _average,
    "avg_zero": _avg_zero,
    "median": _median,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "diff": _diff,
    "stddev": _stddev,
    "count": _count,
    "range": _range,
    "multiply": _multiply,
    "first": _first,
    "last": _last,
}

# Graphite's aggFuncs and their aliases (graphite/functions/aggfuncs.py).
AGG_FUNCS: dict[str, str] = {
    **{name: name for name in _REDUCERS if name != "first"},
    "avg": "average",
    "rangeOf": "range",
    "total": "sum",
    "current": "last",
}

# What ``consolidateBy`` accepts: how one series is squeezed to a coarser step.
CONSOLIDATIONS: dict[str, str] = {
    name: name for name in ("sum", "average", "avg_zero", "min", "max", "first", "last")
} | {"avg": "average"}


def agg_func(name: str) -> str:
    """The reducer behind a Graphite aggregation function name, or a RenderError."""
    try:
        return AGG_FUNCS[name]
    except KeyError:
        raise RenderError(
            f"unsupported aggregation function {name!r}: use one of {', '.join(AGG_FUNCS)}"
        ) from None


def reduce_rows(
    matrix: FloatArray, func: str, x_files_factor: float = 0.0, denominator: float | None = None
) -> FloatArray:
    """Reduce the last axis of ``matrix`` with reducer ``func`` (a key of AGG_FUNCS' values).

    A row is null unless it holds at least one value and its non-null count
    divided by ``denominator`` (the row width unless given) reaches
    ``x_files_factor``.
    """
    if matrix.shape[-1] == 0:
        return np.full(matrix.shape[:-1], np.nan)
    with np.errstate(all="ignore"):
        out = _REDUCERS[func](matrix)
        present = _count(matrix)
        total = matrix.shape[-1] if denominator is None else denominator
        keep = (present > 0) & (present / total >= x_files_factor)
    return np.where(keep, out, np.nan)


def consolidate(series: Series, step: int) -> tuple[int, FloatArray]:
    """Start and values of ``series`` consolidated to ``step``, a multiple of its own step.

    Buckets are aligned to multiples of ``step`` (as storage rolls up), each is
    reduced with the series' consolidation function, and a bucket needs
    ``x_files_factor`` of its points to be non-null.
    """
    if step == series.step:
        return series.start, series.values
    per_bucket = step // series.step
    start = series.start - series.start % step
    lead = (series.start - start) // series.step
    buckets = -(-(lead + len(series.values)) // per_bucket)
    padded = np.full(buckets * per_bucket, np.nan)
    padded[lead : lead + len(series.values)] = series.values
    try:
        func = CONSOLIDATIONS[series.consolidation]
    except KeyError:
        raise RenderError(
            f"series {series.name} has unknown consolidation {series.consolidation!r}"
        ) from None
    values = reduce_rows(padded.reshape(buckets, per_bucket), func, series.x_files_factor)
    return start, values


@dataclasses.dataclass(frozen=True)
class Grid:
    """Series put on one common time grid: row ``i`` of ``matrix`` is series ``i``."""

    start: int
    step: int
    matrix: FloatArray


def normalize(series_list: Sequence[Series]) -> Grid:
    """Put series of any steps and ranges on one grid, as Graphite's ``normalize()``.

    The common step is the least common multiple of the steps; each series is
    consolidated to it, then placed by time (Graphite zips by index, which is
    the same when the starts agree) with nulls where it has no data.
    """
    if not series_list:
        raise ValueError("normalize needs at least one series")
    step = math.lcm(*(s.step for s in series_list))
    parts = [consolidate(s, step) for s in series_list]
    start = min(p_start for p_start, _ in parts)
    end = max(p_start + len(values) * step for p_start, values in parts)
    matrix = np.full((len(parts), (end - start) // step), np.nan)
    for row, (p_start, values) in enumerate(parts):
        offset = (p_start - start) // step
        matrix[row, offset : offset + len(values)] = values
    return Grid(start, step, matrix)
