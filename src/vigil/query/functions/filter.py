"""Graphite's series filters: keep some series of a list, or blank some of their points.

Every function that ranks or thresholds series reduces each one to a number
with an aggregation from ``AGGREGATIONS`` (graphite-web's ``aggFuncs``: a
series without any value reduces to None, which ranks below every number).
The table reduces the last axis of an array, so the same callables summarise
one series (1-D) or combine many series point by point (2-D, series last).

Graphite's None-handling is kept on purpose: ``currentBelow`` and the other
``<``/``<=`` filters keep series that have no value at all, ``lowest`` ranks
them first, and ranking ties keep the input order.

Python parameter names are graphite's (``seriesList``, ``xFilesFactor``) so
that keyword arguments in a target bind to them.
"""

from __future__ import annotations

import functools
import math
import operator as op
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from vigil.query.errors import RenderError
from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.series import FloatArray, Series

collect = Collector()

AggFunc = Callable[[FloatArray], FloatArray]


def _count(values: FloatArray) -> FloatArray:
    return np.asarray(np.sum(~np.isnan(values), axis=-1, dtype=np.float64))


def _sum(values: FloatArray) -> FloatArray:
    return np.where(_count(values) > 0, np.nansum(values, axis=-1), np.nan)


def _average(values: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(_sum(values) / _count(values))


def _avg_zero(values: FloatArray) -> FloatArray:
    """Mean with None counted as 0, as graphite's ``avg_zero``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.nansum(values, axis=-1) / values.shape[-1])


def _min(values: FloatArray) -> FloatArray:
    return np.asarray(np.fmin.reduce(values, axis=-1, initial=np.nan))


def _max(values: FloatArray) -> FloatArray:
    return np.asarray(np.fmax.reduce(values, axis=-1, initial=np.nan))


def _empty_is_none(func: AggFunc) -> AggFunc:
    """Wrap a reduction that indexes into the last axis so that an empty axis gives None."""

    def reduce(values: FloatArray) -> FloatArray:
        if values.shape[-1] == 0:
            return np.full(values.shape[:-1], np.nan)
        return func(values)

    return reduce


def _at(values: FloatArray, index: npt.NDArray[Any]) -> FloatArray:
    """``values[..., index]`` row by row."""
    picked = np.take_along_axis(values, index.astype(np.intp)[..., None], axis=-1)
    return np.asarray(picked[..., 0])


@_empty_is_none
def first(values: FloatArray) -> FloatArray:
    """The first non-null value along the last axis (consolidation ``first``)."""
    return _at(values, np.argmax(~np.isnan(values), axis=-1))


@_empty_is_none
def _last(values: FloatArray) -> FloatArray:
    present = ~np.isnan(values)
    return _at(values, values.shape[-1] - 1 - np.argmax(present[..., ::-1], axis=-1))


@_empty_is_none
def _median(values: FloatArray) -> FloatArray:
    ordered = np.sort(values, axis=-1)  # NaN sorts last
    n = np.asarray(np.sum(~np.isnan(values), axis=-1))
    low = _at(ordered, np.maximum((n - 1) // 2, 0))
    high = _at(ordered, np.minimum(n // 2, values.shape[-1] - 1))
    middle = np.where(n % 2 == 1, low, (low + high) / 2)
    return np.where(n > 0, middle, np.nan)


def _diff(values: FloatArray) -> FloatArray:
    """First value minus all the others, None skipped."""
    head = first(values)
    return np.asarray(head - (_sum(values) - head))


def _stddev(values: FloatArray) -> FloatArray:
    """Population standard deviation of the values present."""
    mean = _average(values)
    deviation = np.where(np.isnan(values), 0.0, values - mean[..., None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sqrt(np.sum(deviation**2, axis=-1) / _count(values)))


def _range(values: FloatArray) -> FloatArray:
    return np.asarray(_max(values) - _min(values))


@_empty_is_none
def _multiply(values: FloatArray) -> FloatArray:
    """Product of all values; one None makes it None."""
    return np.asarray(np.prod(values, axis=-1))


AGGREGATIONS: Mapping[str, AggFunc] = MappingProxyType(
    {
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
        "last": _last,
        "rangeOf": _range,
        "avg": _average,
        "total": _sum,
        "current": _last,
    }
)
"""graphite-web's aggregation functions and their aliases, each reducing the last axis."""


def aggregation(name: str) -> AggFunc:
    """The aggregation called ``name``, or a RenderError naming the valid ones."""
    try:
        return AGGREGATIONS[name]
    except KeyError:
        valid = ", ".join(AGGREGATIONS)
        raise RenderError(
            f"unsupported aggregation function {name!r}; use one of {valid}"
        ) from None


def summary(series: Series, func: str) -> float:
    """One series reduced by the aggregation ``func``; NaN stands for None."""
    return float(aggregation(func)(series.values))


def rank_key(func: str) -> Callable[[Series], float]:
    """A sort key by aggregated value where None ranks below every number."""

    def key(series: Series) -> float:
        value = summary(series, func)
        return -math.inf if math.isnan(value) else value

    return key


def _check_count(n: int) -> None:
    if n < 0:
        raise RenderError(f"the number of series to keep must be 0 or more, not {n}")


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RenderError(f"invalid regular expression {pattern!r}: {exc}") from None


SERIES = Param("seriesList", "seriesList", required=True)
_N_SERIES = Param("n", "integer", required=True)
_N_VALUE = Param("n", "float", required=True)


# -- ranking: highest, lowest and their fixed-aggregation forms -----------------------------------


def _ranked(series_list: list[Series], n: int, func: str, highest: bool) -> list[Series]:
    """The first ``n`` series by aggregated value; ties keep their input order."""
    _check_count(n)
    return sorted(series_list, key=rank_key(func), reverse=highest)[:n]


@collect.function(
    "highest", "Filter Series", [SERIES, _N_SERIES, Param("func", "aggFunc", default="average")]
)
def highest(
    ctx: RenderContext, seriesList: list[Series], n: int = 1, func: str = "average"
) -> list[Series]:
    """Keeps the ``n`` series whose aggregated value (``func``, default average) is highest.

    Example: ``highest(server*.threads.busy,5,'max')``. Series without any
    value rank last.
    """
    return _ranked(seriesList, n, func, highest=True)


@collect.function(
    "lowest", "Filter Series", [SERIES, _N_SERIES, Param("func", "aggFunc", default="average")]
)
def lowest(
    ctx: RenderContext, seriesList: list[Series], n: int = 1, func: str = "average"
) -> list[Series]:
    """Keeps the ``n`` series whose aggregated value (``func``, default average) is lowest.

    Example: ``lowest(server*.threads.busy,5,'min')``. As in graphite-web,
    series without any value rank first.
    """
    return _ranked(seriesList, n, func, highest=False)


_RANKINGS: tuple[tuple[str, str, bool, str], ...] = (
    ("highestCurrent", "current", True, "Keeps the n series whose last value is highest."),
    ("highestMax", "max", True, "Keeps the n series whose maximum is highest."),
    ("highestAverage", "average", True, "Keeps the n series whose average is highest."),
    ("lowestCurrent", "current", False, "Keeps the n series whose last value is lowest."),
    ("lowestAverage", "average", False, "Keeps the n series whose average is lowest."),
)


def _declare_ranking(name: str, func: str, is_highest: bool, doc: str) -> None:
    def ranking(ctx: RenderContext, seriesList: list[Series], n: int) -> list[Series]:
        return _ranked(seriesList, n, func, is_highest)

    ranking.__name__ = ranking.__qualname__ = name
    general = "highest" if is_highest else "lowest"
    ranking.__doc__ = f"{doc}\n\nThe same as ``{general}(seriesList, n, '{func}')``."
    collect.function(name, "Filter Series", [SERIES, _N_SERIES])(ranking)


for _ranking in _RANKINGS:
    _declare_ranking(*_ranking)


# -- thresholds: filterSeries and its fixed forms -------------------------------------------------

_Compare = Callable[[FloatArray, float], npt.NDArray[np.bool_]]

# Each operator with whether a series that aggregates to None passes it (graphite-web's rule).
_OPERATORS: Mapping[str, tuple[_Compare, bool]] = MappingProxyType(
    {
        "=": (op.eq, False),
        "!=": (op.ne, True),
        ">": (op.gt, False),
        ">=": (op.ge, False),
        "<": (op.lt, True),
        "<=": (op.le, True),
    }
)


def _thresholded(
    series_list: list[Series], func: str, operator_: str, threshold: float
) -> list[Series]:
    try:
        compare, none_passes = _OPERATORS[operator_]
    except KeyError:
        valid = ", ".join(_OPERATORS)
        raise RenderError(f"unsupported operator {operator_!r}; use one of {valid}") from None
    reduce = aggregation(func)
    values = np.array([float(reduce(s.values)) for s in series_list], dtype=np.float64)
    keep = np.where(np.isnan(values), none_passes, compare(values, threshold))
    return [s for s, kept in zip(series_list, keep.tolist(), strict=True) if kept]


@collect.function(
    "filterSeries",
    "Filter Series",
    [
        SERIES,
        Param("func", "aggFunc", required=True),
        Param("operator", "string", required=True, options=tuple(sorted(_OPERATORS))),
        Param("threshold", "float", required=True),
    ],
)
def filter_series(
    ctx: RenderContext, seriesList: list[Series], func: str, operator: str, threshold: float
) -> list[Series]:
    """Keeps the series whose aggregated value compares true with the threshold.

    Example: ``filterSeries(eth*.packetsSent,'max','>',1000)``. Operators are
    ``=``, ``!=``, ``>``, ``>=``, ``<`` and ``<=``; a series without any value
    passes ``!=``, ``<`` and ``<=`` only.
    """
    return _thresholded(seriesList, func, operator, threshold)


_THRESHOLDS: tuple[tuple[str, str, str, str], ...] = (
    ("currentAbove", "last", ">", "Keeps the series whose last value is above n."),
    ("currentBelow", "last", "<=", "Keeps the series whose last value is n or below."),
    ("averageAbove", "average", ">", "Keeps the series whose average is above n."),
    ("averageBelow", "average", "<=", "Keeps the series whose average is n or below."),
    ("maximumAbove", "max", ">", "Keeps the series whose maximum is above n."),
    ("maximumBelow", "max", "<=", "Keeps the series whose maximum is n or below."),
    ("minimumAbove", "min", ">", "Keeps the series whose minimum is above n."),
    ("minimumBelow", "min", "<=", "Keeps the series whose minimum is n or below."),
)


def _declare_threshold(name: str, func: str, operator_: str, doc: str) -> None:
    def threshold(ctx: RenderContext, seriesList: list[Series], n: float) -> list[Series]:
        return _thresholded(seriesList, func, operator_, n)

    threshold.__name__ = threshold.__qualname__ = name
    threshold.__doc__ = (
        f"{doc}\n\nThe same as ``filterSeries(seriesList, '{func}', '{operator_}', n)``."
    )
    collect.function(name, "Filter Series", [SERIES, _N_VALUE])(threshold)


for _threshold in _THRESHOLDS:
    _declare_threshold(*_threshold)


# -- selection by position, name or presence ------------------------------------------------------


@collect.function("limit", "Filter Series", [SERIES, _N_SERIES])
def limit(ctx: RenderContext, seriesList: list[Series], n: int) -> list[Series]:
    """Keeps the first ``n`` series, handy while trying out a wildcard."""
    _check_count(n)
    return seriesList[:n]


@collect.function("exclude", "Filter Series", [SERIES, Param("pattern", "string", required=True)])
def exclude(ctx: RenderContext, seriesList: list[Series], pattern: str) -> list[Series]:
    """Drops the series whose name matches a regular expression (searched anywhere in the name)."""
    regex = _compile(pattern)
    return [s for s in seriesList if not regex.search(s.name)]


@collect.function("grep", "Filter Series", [SERIES, Param("pattern", "string", required=True)])
def grep(ctx: RenderContext, seriesList: list[Series], pattern: str) -> list[Series]:
    """Keeps the series whose name matches a regular expression (searched anywhere in the name)."""
    regex = _compile(pattern)
    return [s for s in seriesList if regex.search(s.name)]


@collect.function("removeEmptySeries", "Filter Series", [SERIES, Param("xFilesFactor", "float")])
def remove_empty_series(
    ctx: RenderContext, seriesList: list[Series], xFilesFactor: float | None = None
) -> list[Series]:
    """Drops the series without values, or with too few: ``xFilesFactor`` is the least fraction of non-null points.

    With the default 0 one value is enough; with 1 every point must have one.
    """
    ratio = 0.0 if xFilesFactor is None else xFilesFactor
    kept = []
    for s in seriesList:
        present = int(np.count_nonzero(~np.isnan(s.values)))
        if present and present / len(s.values) >= ratio:
            kept.append(s)
    return kept


@collect.function(
    "useSeriesAbove",
    "Filter Series",
    [
        SERIES,
        Param("value", "float", required=True),
        Param("search", "string", required=True),
        Param("replace", "string", required=True),
    ],
)
def use_series_above(
    ctx: RenderContext, seriesList: list[Series], value: float, search: str, replace: str
) -> list[Series]:
    """Fetches a related metric for each series whose maximum is above ``value``.

    The related metric's path is the series name with the regular expression
    ``search`` replaced by ``replace``: ``useSeriesAbove(app.reqs,10,'reqs','time')``
    draws ``app.time`` only while ``app.reqs`` goes above 10. Series found
    empty are left out.
    """
    regex = _compile(search)
    paths = [regex.sub(replace, s.name) for s in seriesList if summary(s, "max") > value]
    related = [s for path in paths for s in ctx.evaluate(path, ctx.start, ctx.end)]
    return [s for s in related if len(s.values)]


# -- point filters --------------------------------------------------------------------------------


def percentile(values: FloatArray, n: float) -> float:
    """The ``n``-th percentile of the non-null values by nearest rank, NaN if there are none.

    This is graphite-web's rule (NIST's handbook, without interpolation): the
    rank is ``ceil(n/100 * (count + 1))``, clamped to the values present.
    """
    present = np.sort(values[~np.isnan(values)])
    if not present.size:
        return math.nan
    rank = math.ceil((n / 100.0) * (present.size + 1))
    return float(present[min(max(rank, 1), present.size) - 1])


def _check_percent(n: float) -> None:
    if not 0 < n <= 100:
        raise RenderError(f"the percentile must be above 0 and at most 100, not {n:g}")


def _removed(
    series_list: list[Series],
    label: str,
    n: float,
    bound: Callable[[FloatArray], float],
    above: bool,
) -> list[Series]:
    """Copies named ``label(name, n)`` without the points beyond each series' ``bound``."""
    result = []
    for s in series_list:
        limit = bound(s.values)
        drop = s.values > limit if above else s.values < limit
        name = f"{label}({s.name}, {n:g})"
        result.append(
            s.copy(name=name, path_expression=name, values=np.where(drop, np.nan, s.values))
        )
    return result


@collect.function("removeAboveValue", "Filter Data", [SERIES, _N_VALUE])
def remove_above_value(ctx: RenderContext, seriesList: list[Series], n: float) -> list[Series]:
    """Sets the points above ``n`` to None."""
    return _removed(seriesList, "removeAboveValue", n, lambda values: n, above=True)


@collect.function("removeBelowValue", "Filter Data", [SERIES, _N_VALUE])
def remove_below_value(ctx: RenderContext, seriesList: list[Series], n: float) -> list[Series]:
    """Sets the points below ``n`` to None."""
    return _removed(seriesList, "removeBelowValue", n, lambda values: n, above=False)


@collect.function("removeAbovePercentile", "Filter Data", [SERIES, _N_VALUE])
def remove_above_percentile(ctx: RenderContext, seriesList: list[Series], n: float) -> list[Series]:
    """Sets the points above each series' own ``n``-th percentile to None.

    The percentile is taken by nearest rank, as ``nPercentile`` does.
    """
    _check_percent(n)
    bound = functools.partial(percentile, n=n)
    return _removed(seriesList, "removeAbovePercentile", n, bound, above=True)


@collect.function("removeBelowPercentile", "Filter Data", [SERIES, _N_VALUE])
def remove_below_percentile(ctx: RenderContext, seriesList: list[Series], n: float) -> list[Series]:
    """Sets the points below each series' own ``n``-th percentile to None.

    The percentile is taken by nearest rank, as ``nPercentile`` does.
    """
    _check_percent(n)
    bound = functools.partial(percentile, n=n)
    return _removed(seriesList, "removeBelowPercentile", n, bound, above=False)


@collect.function("nPercentile", "Calculate", [SERIES, _N_VALUE])
def n_percentile(ctx: RenderContext, seriesList: list[Series], n: float) -> list[Series]:
    """Draws each series' ``n``-th percentile as a flat line over its whole range.

    The percentile is one of the series' values (nearest rank, no
    interpolation). Series without any value are left out.
    """
    _check_percent(n)
    lines = []
    for s in seriesList:
        value = percentile(s.values, n)
        if not math.isnan(value):
            name = f"nPercentile({s.name}, {n:g})"
            lines.append(
                s.copy(
                    name=name,
                    path_expression=name,
                    values=np.full(len(s.values), value),
                    tags={**s.tags, "nPercentile": f"{n:g}"},
                )
            )
    return lines
