"""Render functions that combine several series into fewer: Graphite's "Combine" group.

All of them first put their inputs on one grid with ``normalize`` (least
common multiple step, aligned by time), then reduce across series with the
shared aggregation table, so ``sumSeries(a.*)`` and ``aggregate(a.*, "sum")``
are one code path, as in graphite-web 1.1. Result names follow graphite-web:
``sumSeries(a.b,a.c)`` lists the distinct path expressions of the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vigil.query.errors import RenderError
from vigil.query.functions.aggregation import normalize, reduce_rows
from vigil.query.functions.filter import aggregation
from vigil.query.functions.nodes import node_value
from vigil.query.functions.registry import Collector, Param, RenderContext, format_number
from vigil.query.grammar import String, render
from vigil.query.series import FloatArray, Series

collect = Collector()

_SERIES_LISTS = Param("seriesLists", "seriesList", required=True, multiple=True)
_SERIES_LIST = Param("seriesList", "seriesList", required=True)


def _path_expressions(series_list: Sequence[Series]) -> str:
    """Distinct path expressions in order, comma-joined: the inside of a combined name."""
    return ",".join(dict.fromkeys(s.path_expression for s in series_list))


def _common_tags(series_list: Sequence[Series]) -> dict[str, str]:
    """Tags that every series carries with the same value."""
    common = dict(series_list[0].tags)
    for s in series_list[1:]:
        common = {k: v for k, v in common.items() if s.tags.get(k) == v}
    return common


def _new_series(
    name: str, start: int, step: int, values: FloatArray, x_files_factor: float, **fields: Any
) -> Series:
    """A result series whose path expression is its name unless ``fields`` say otherwise."""
    fields.setdefault("path_expression", name)
    return Series(name, start, step, values, x_files_factor=x_files_factor, **fields)


# Aggregations whose graphite-web result name is also a call that computes it again.
_SELF_NAMED = frozenset(("sum", "average", "min", "max", "diff", "multiply"))


def _one_list(expressions: Sequence[str]) -> str:
    """Expressions as one series-list argument: ``a.*``, or ``group(a.b,c.d)``."""
    distinct = list(dict.fromkeys(expressions))
    return distinct[0] if len(distinct) == 1 else f"group({','.join(distinct)})"


def _aggregate_expression(expressions: Sequence[str], label: str, xff: float | None) -> str:
    """A target that evaluates again to an aggregate, for functions that re-fetch their input.

    graphite-web's name ``avgSeries(a.*)`` names no function, so such results
    carry ``aggregate(a.*,"avg")`` as their path expression instead.
    """
    if label in _SELF_NAMED and xff is None:
        return f"{label}Series({','.join(dict.fromkeys(expressions))})"
    xff_arg = "" if xff is None else f",{xff!r}"
    return f"aggregate({_one_list(expressions)},{render(String(label))}{xff_arg})"


def _aggregate(
    series_lists: Sequence[Sequence[Series]], func: str, x_files_factor: float | None = None
) -> list[Series]:
    """graphite-web's ``aggregate()``: the core of every ``xxxSeries`` reducer."""
    label = func.removesuffix("Series")
    reducer = aggregation(label)
    series_list = [s for lst in series_lists for s in lst]
    if not series_list:
        return []
    grid = normalize(series_list)
    expression = _aggregate_expression(
        [s.path_expression for s in series_list], label, x_files_factor
    )
    if x_files_factor is None:
        x_files_factor = max(s.x_files_factor for s in series_list)
    values = reduce_rows(grid.matrix.T, reducer, x_files_factor)
    name = f"{label}Series({_path_expressions(series_list)})"
    tags = _common_tags(series_list)
    tags.setdefault("name", name)
    tags["aggregatedBy"] = label
    return [
        _new_series(
            name,
            grid.start,
            grid.step,
            values,
            x_files_factor,
            tags=tags,
            path_expression=expression,
        )
    ]


@collect.function(
    "aggregate",
    "Combine",
    [_SERIES_LIST, Param("func", "aggFunc", required=True), Param("xFilesFactor", "float")],
)
def aggregate(
    ctx: RenderContext, seriesList: list[Series], func: str, xFilesFactor: float | None = None
) -> list[Series]:
    """Aggregate the series point by point with an aggregation function.

    ``func`` is one of ``average`` (``avg``), ``avg_zero``, ``median``,
    ``sum`` (``total``), ``min``, ``max``, ``diff``, ``stddev``, ``count``,
    ``range`` (``rangeOf``), ``multiply`` and ``last`` (``current``); a
    trailing ``Series`` is ignored, so ``sumSeries`` works too. A point is
    null unless ``xFilesFactor`` of the series have a value there.

    ``aggregate(host.cpu-*.user, "sum")`` is ``sumSeries(host.cpu-*.user)``.
    """
    return _aggregate([seriesList], func, xFilesFactor)


@collect.function("sumSeries", "Combine", [_SERIES_LISTS], aliases=("sum",))
def sum_series(ctx: RenderContext, *seriesLists: list[Series]) -> list[Series]:
    """Add the series together point by point, skipping nulls (short form ``sum``).

    Series of different steps are consolidated to their least common multiple
    first. See ``integral`` for a sum over time.
    """
    return _aggregate(seriesLists, "sum")


@collect.function("averageSeries", "Combine", [_SERIES_LISTS], aliases=("avg",))
def average_series(ctx: RenderContext, *seriesLists: list[Series]) -> list[Series]:
    """Average the series point by point, skipping nulls (short form ``avg``)."""
    return _aggregate(seriesLists, "average")


@collect.function("minSeries", "Combine", [_SERIES_LISTS])
def min_series(ctx: RenderContext, *seriesLists: list[Series]) -> list[Series]:
    """Take the lowest value of the series at each point."""
    return _aggregate(seriesLists, "min")


@collect.function("maxSeries", "Combine", [_SERIES_LISTS])
def max_series(ctx: RenderContext, *seriesLists: list[Series]) -> list[Series]:
    """Take the highest value of the series at each point."""
    return _aggregate(seriesLists, "max")


@collect.function("diffSeries", "Combine", [_SERIES_LISTS])
def diff_series(ctx: RenderContext, *seriesLists: list[Series]) -> list[Series]:
    """Subtract the second and later series from the first, point by point.

    Nulls are skipped, so where the first series is null the first non-null
    value takes its place. To subtract a constant use ``offset``.
    """
    return _aggregate(seriesLists, "diff")


@collect.function("multiplySeries", "Combine", [_SERIES_LISTS])
def multiply_series(ctx: RenderContext, *seriesLists: list[Series]) -> list[Series]:
    """Multiply the series point by point; a null in any series gives null.

    A single series comes back unchanged. To multiply by a constant use ``scale``.
    """
    if len(seriesLists) == 1 and len(seriesLists[0]) == 1:
        return list(seriesLists[0])
    return _aggregate(seriesLists, "multiply")


@collect.function("countSeries", "Combine", [Param("seriesLists", "seriesList", multiple=True)])
def count_series(ctx: RenderContext, *seriesLists: list[Series]) -> list[Series]:
    """Draw a line at the number of series given, nulls or not.

    With no series at all it draws zero over the request's range, named
    ``countSeries()``.
    """
    series_list = [s for lst in seriesLists for s in lst]
    if not series_list:
        step = max(1, (ctx.end - ctx.start) // 2)
        return [_new_series("countSeries()", ctx.start, step, np.zeros(3), 0.0)]
    grid = normalize(series_list)
    name = f"countSeries({_path_expressions(series_list)})"
    values = np.full(grid.matrix.shape[1], float(len(series_list)))
    return [_new_series(name, grid.start, grid.step, values, 0.0)]


def _percentile(matrix: FloatArray, n: float, interpolate: bool) -> FloatArray:
    """The n-th percentile of each row, skipping nulls, by the NIST method graphite-web uses.

    Without ``interpolate`` the result is always one of the row's values.
    """
    ordered = np.sort(matrix, axis=-1)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(matrix), axis=-1)
    fractional = n / 100.0 * (count + 1)
    rank = np.floor(fractional).astype(np.int64)
    fraction = fractional - rank
    if not interpolate:
        rank += np.ceil(fraction).astype(np.int64)
    index = np.clip(rank - 1, 0, np.maximum(count - 1, 0))
    value = np.take_along_axis(ordered, index[..., None], axis=-1)[..., 0]
    if interpolate:
        following = np.take_along_axis(
            ordered, np.minimum(rank, np.maximum(count - 1, 0))[..., None], axis=-1
        )[..., 0]
        with np.errstate(invalid="ignore"):
            value = np.where(rank < count, value + fraction * (following - value), value)
    return np.where(count > 0, value, np.nan)


@collect.function(
    "percentileOfSeries",
    "Combine",
    [
        _SERIES_LIST,
        Param("n", "float", required=True),
        Param("interpolate", "boolean", default=False),
    ],
)
def percentile_of_series(
    ctx: RenderContext, seriesList: list[Series], n: float, interpolate: bool = False
) -> list[Series]:
    """Take the n-th percentile of the series' values at each point.

    Unless ``interpolate`` is true, each result is a value one of the series
    actually had at that point.
    """
    if n <= 0:
        raise RenderError(f"percentileOfSeries: the percentile must be above 0, got {n:g}")
    if not seriesList:
        return []
    grid = normalize(seriesList)
    name = f"percentileOfSeries({seriesList[0].path_expression},{n:g})"
    flag = ",true" if interpolate else ""
    # graphite-web names the result after the first input only; re-evaluate them all.
    expression = (
        f"percentileOfSeries({_one_list([s.path_expression for s in seriesList])},{n!r}{flag})"
    )
    values = _percentile(grid.matrix.T, n, interpolate)
    return [
        _new_series(
            name,
            grid.start,
            grid.step,
            values,
            seriesList[0].x_files_factor,
            path_expression=expression,
        )
    ]


@collect.function("group", "Combine", [Param("seriesLists", "seriesList", multiple=True)])
def group(ctx: RenderContext, *seriesLists: list[Series]) -> list[Series]:
    """Join several series lists into one, to pass them where a function takes one list."""
    return [s for lst in seriesLists for s in lst]


def _group_key(series: Series, nodes: Sequence[int | str]) -> str:
    return ".".join(node_value(series.name, n, series.tags) for n in nodes)


def _groups(series_list: Sequence[Series], nodes: Sequence[int | str]) -> dict[str, list[Series]]:
    """Series grouped by their node/tag key, groups in order of first appearance."""
    groups: dict[str, list[Series]] = {}
    for s in series_list:
        groups.setdefault(_group_key(s, nodes), []).append(s)
    return groups


@collect.function(
    "groupByNodes",
    "Combine",
    [
        _SERIES_LIST,
        Param("callback", "aggOrSeriesFunc", required=True),
        Param("nodes", "nodeOrTag", multiple=True),
    ],
)
def group_by_nodes(
    ctx: RenderContext, seriesList: list[Series], callback: str, *nodes: int | str
) -> list[Series]:
    """Aggregate the series in groups that share the given nodes or tags.

    ``groupByNodes(ganglia.server*.*.cpu.load*, "sum", 1, 4)`` sums each
    server's load5, load10 and load15 separately and names the results
    ``server1.load5`` and so on. ``callback`` is an aggregation function as in
    ``aggregate`` (``sumSeries`` style names work too); a node may be an
    index into the name or a tag name.
    """
    out = []
    for key, members in _groups(seriesList, nodes).items():
        [result] = _aggregate([members], callback)
        # Members of all groups share one path expression (``servers.*.cpu``), so
        # the group is re-evaluated from its members' names and renamed again.
        inner = _aggregate_expression(
            [m.name for m in members], callback.removesuffix("Series"), None
        )
        expression = f"alias({inner},{render(String(key))})"
        out.append(result.copy(name=key, path_expression=expression))
    return out


@collect.function(
    "groupByNode",
    "Combine",
    [
        _SERIES_LIST,
        Param("nodeNum", "nodeOrTag", required=True),
        Param("callback", "aggOrSeriesFunc", default="average"),
    ],
)
def group_by_node(
    ctx: RenderContext, seriesList: list[Series], nodeNum: int | str, callback: str = "average"
) -> list[Series]:
    """Aggregate the series in groups that share one node or tag.

    ``groupByNode(ganglia.by-function.*.*.cpu.load5, 2, "sum")`` gives one
    series per value of node 2, named after it. This is ``groupByNodes`` with
    a single node.
    """
    return group_by_nodes(ctx, seriesList, callback, nodeNum)


def _ratio(dividend: Series, divisor: Series) -> tuple[int, int, FloatArray]:
    """Start, step and ``dividend / divisor`` on a common grid; null where either is null or 0."""
    grid = normalize([dividend, divisor])
    top, bottom = grid.matrix
    with np.errstate(all="ignore"):
        values = np.where(bottom == 0, np.nan, top / bottom)
    return grid.start, grid.step, values


def _missing(series: Series, name: str) -> Series:
    return _new_series(
        name, series.start, series.step, np.full(len(series.values), np.nan), series.x_files_factor
    )


@collect.function(
    "divideSeries",
    "Combine",
    [
        Param("dividendSeriesList", "seriesList", required=True),
        Param("divisorSeries", "seriesList", required=True),
    ],
)
def divide_series(
    ctx: RenderContext, dividendSeriesList: list[Series], divisorSeries: list[Series]
) -> list[Series]:
    """Divide each series by one divisor series; null where the divisor is null or zero.

    With no divisor series the results are all null and named
    ``divideSeries(x,MISSING)``. To divide by a constant use ``scale`` with
    its inverse.
    """
    if not divisorSeries:
        return [_missing(s, f"divideSeries({s.name},MISSING)") for s in dividendSeriesList]
    if len(divisorSeries) > 1:
        raise RenderError(
            "divideSeries: the divisor must be exactly one series, "
            f"got {len(divisorSeries)}; combine them first, e.g. with sumSeries"
        )
    [divisor] = divisorSeries
    out = []
    for s in dividendSeriesList:
        start, step, values = _ratio(s, divisor)
        name = f"divideSeries({s.name},{divisor.name})"
        out.append(_new_series(name, start, step, values, s.x_files_factor))
    return out


def _percent_of(series: Series, total: Series) -> Series:
    start, step, values = _ratio(series, total)
    name = f"asPercent({series.name},{total.name})"
    return _new_series(name, start, step, values * 100.0, series.x_files_factor)


def _sum_total(members: Sequence[Series]) -> Series:
    """The total of a group for asPercent: the series itself, or the sum of several."""
    if len(members) == 1:
        return members[0]
    [total] = _aggregate([members], "sum", 0.0)
    return total


def _as_percent_by_nodes(
    series_list: Sequence[Series], total: list[Series] | None, nodes: Sequence[int | str]
) -> list[Series]:
    groups = _groups(series_list, nodes)
    keys = list(groups)
    if total is None:
        totals = {key: _sum_total(members) for key, members in groups.items()}
    else:
        total_groups = _groups(total, nodes)
        keys += [key for key in total_groups if key not in groups]
        totals = {key: _sum_total(members) for key, members in total_groups.items()}
    out = []
    for key in keys:
        if key not in groups:
            out.append(_missing(totals[key], f"asPercent(MISSING,{totals[key].name})"))
        elif key not in totals:
            out += [_missing(s, f"asPercent({s.name},MISSING)") for s in groups[key]]
        else:
            out += [_percent_of(s, totals[key]) for s in groups[key]]
    return out


@collect.function(
    "asPercent",
    "Combine",
    [_SERIES_LIST, Param("total", "any"), Param("nodes", "nodeOrTag", multiple=True)],
)
def as_percent(
    ctx: RenderContext,
    seriesList: list[Series],
    total: float | list[Series] | None = None,
    *nodes: int | str,
) -> list[Series]:
    """Express each series as a percentage of a total.

    ``total`` may be a number, one series, as many series as ``seriesList``
    (matched by sorted name), or missing, in which case it is the sum of all
    the series. With ``nodes``, series and totals are matched by those nodes
    or tags as in ``groupByNodes`` (``total`` then missing meaning each
    group's sum); an unmatched series or total gives an all-null series named
    ``asPercent(x,MISSING)`` or ``asPercent(MISSING,y)``.
    """
    if not seriesList:
        return []
    if nodes:
        if total is not None and not isinstance(total, list):
            raise RenderError("asPercent: with nodes, total must be missing, None or series")
        return _as_percent_by_nodes(seriesList, total, nodes)
    if total is None:
        [summed] = _aggregate([seriesList], "sum", 0.0)
        return [_percent_of(s, summed) for s in seriesList]
    if isinstance(total, list):
        if len(total) == 1:
            return [_percent_of(s, total[0]) for s in seriesList]
        if len(total) != len(seriesList):
            raise RenderError(
                "asPercent: total must be missing, a number, one series, or as many series "
                f"as the first argument ({len(seriesList)}); got {len(total)} series"
            )
        pairs = zip(sorted(seriesList, key=lambda s: s.name), sorted(total, key=lambda s: s.name))
        return [_percent_of(s, t) for s, t in pairs]
    divisor = np.nan if total == 0 else float(total)
    name = f"asPercent({{}},{format_number(total)})"
    return [
        _new_series(
            name.format(s.name), s.start, s.step, s.values / divisor * 100.0, s.x_files_factor
        )
        for s in seriesList
    ]
