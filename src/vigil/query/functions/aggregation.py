"""Reducing groups of points with Graphite's x-files factor, consolidation and ``normalize()``.

Graphite reduces a group of values with one of its ``aggFuncs`` in many places:
across series (``sumSeries``, ``aggregate``), over time buckets
(``summarize``), over moving windows, and when it consolidates a series to a
coarser step before combining it with others. The functions come from the one
table in ``filter.AGGREGATIONS``, which reduces the last axis of an array
whose NaN cells are nulls, so each of those callers is one reshape into a
2-D array plus one vectorised call::

    >>> reduce_rows(np.array([[1.0, np.nan, 3.0], [np.nan] * 3]), AGGREGATIONS["sum"])
    array([ 4., nan])

A row with no value at all reduces to null, and so does a row whose share of
values is below the x-files factor, as in Graphite's ``xff()``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from vigil.query.errors import RenderError
from vigil.query.functions.filter import AGGREGATIONS, AggFunc, first
from vigil.query.series import FloatArray, Series

# What ``consolidateBy`` accepts: how one series is squeezed to a coarser step.
CONSOLIDATIONS: Mapping[str, AggFunc] = MappingProxyType(
    {
        "sum": AGGREGATIONS["sum"],
        "average": AGGREGATIONS["average"],
        "avg": AGGREGATIONS["average"],
        "avg_zero": AGGREGATIONS["avg_zero"],
        "min": AGGREGATIONS["min"],
        "max": AGGREGATIONS["max"],
        "first": first,
        "last": AGGREGATIONS["last"],
    }
)


def reduce_rows(
    matrix: FloatArray, func: AggFunc, x_files_factor: float = 0.0, denominator: float | None = None
) -> FloatArray:
    """Reduce the last axis of ``matrix`` with an aggregation from the shared table.

    A row is null unless it holds at least one value and its non-null count
    divided by ``denominator`` (the row width unless given) reaches
    ``x_files_factor``.
    """
    if matrix.shape[-1] == 0:
        return np.full(matrix.shape[:-1], np.nan)
    with np.errstate(all="ignore"):
        out = func(matrix)
        present = np.count_nonzero(~np.isnan(matrix), axis=-1)
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
