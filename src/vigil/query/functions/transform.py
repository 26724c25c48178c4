"""Render functions that rewrite each series' values in place: Graphite's "Transform" group.

Each function returns new series (inputs are never mutated) named as
graphite-web names them, e.g. ``scale(a.b,2)``, with the call recorded as a
tag (``scale=2``) as graphite-web 1.1 does, and the new name as path
expression so that a function which re-evaluates its input (``movingAverage``,
``timeShift``) re-evaluates the transformed series. Nulls stay null unless the
function's point is to fill them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vigil.query.errors import RenderError
from vigil.query.functions.aggregation import CONSOLIDATIONS
from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.series import FloatArray, Series
from vigil.query.timeparse import parse_interval

collect = Collector()

_SERIES_LIST = Param("seriesList", "seriesList", required=True)


def derived(
    series: Series,
    name: str,
    values: FloatArray,
    tags: Mapping[str, object] | None = None,
    **changes: Any,
) -> Series:
    """A copy of ``series`` with new values, name (also its path expression) and tags added.

    ``changes`` are further ``Series`` fields to replace, such as ``start``,
    or a ``path_expression`` when the name leaves out an argument that a
    re-evaluation needs.
    """
    new_tags = {**series.tags, **{key: str(value) for key, value in (tags or {}).items()}}
    fields: dict[str, Any] = {"path_expression": name, **changes}
    return series.copy(name=name, values=values, tags=new_tags, **fields)


def reevaluate(
    ctx: RenderContext, series_list: Sequence[Series], start: int, end: int
) -> list[Series]:
    """The inputs evaluated again over ``[start, end)``, as graphite-web re-evaluates a target.

    Each distinct path expression is evaluated once, so ``a.*`` fetched as one
    expression comes back as all its series.
    """
    out: list[Series] = []
    for expression in dict.fromkeys(s.path_expression for s in series_list):
        out += ctx.evaluate(expression, start, end)
    return out


def _finite(values: FloatArray) -> FloatArray:
    """Null out the infinities and NaNs an operation produced, as graphite-web's safe math does."""
    return np.where(np.isfinite(values), values, np.nan)


def _power(values: FloatArray, exponent: float) -> FloatArray:
    """``values ** exponent``, null where Python's ``math.pow`` would fail or overflow."""
    with np.errstate(all="ignore"):
        return _finite(np.power(values, exponent))


def _previous(values: FloatArray) -> FloatArray:
    """The values shifted one step later, null first."""
    prev = np.empty_like(values)
    prev[:1] = np.nan
    prev[1:] = values[:-1]
    return prev


@collect.function("scale", "Transform", [_SERIES_LIST, Param("factor", "float", required=True)])
def scale(ctx: RenderContext, seriesList: list[Series], factor: float) -> list[Series]:
    """Multiply each point by a constant.

    ``scale(Server.instance01.threads.busy,10)``
    """
    return [
        derived(s, f"scale({s.name},{factor:g})", s.values * factor, {"scale": factor})
        for s in seriesList
    ]


@collect.function(
    "scaleToSeconds", "Transform", [_SERIES_LIST, Param("seconds", "float", required=True)]
)
def scale_to_seconds(ctx: RenderContext, seriesList: list[Series], seconds: float) -> list[Series]:
    """Turn a value per step into a value per ``seconds``, whatever the series' step.

    Useful after ``derivative`` or ``integral`` to compare series of different
    resolutions. Values are rounded to 6 decimals, as graphite-web does.
    """
    return [
        derived(
            s,
            f"scaleToSeconds({s.name},{int(seconds)})",
            np.round(s.values * (seconds / s.step), 6),
            {"scaleToSeconds": seconds},
        )
        for s in seriesList
    ]


@collect.function("offset", "Transform", [_SERIES_LIST, Param("factor", "float", required=True)])
def offset(ctx: RenderContext, seriesList: list[Series], factor: float) -> list[Series]:
    """Add a constant to each point.

    ``offset(Server.instance01.threads.busy,10)``
    """
    return [
        derived(s, f"offset({s.name},{factor:g})", s.values + factor, {"offset": factor})
        for s in seriesList
    ]


@collect.function("absolute", "Transform", [_SERIES_LIST])
def absolute(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Replace each point by its absolute value."""
    return [
        derived(s, f"absolute({s.name})", np.abs(s.values), {"absolute": 1}) for s in seriesList
    ]


@collect.function("invert", "Transform", [_SERIES_LIST])
def invert(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Replace each point x by 1/x; zero becomes null."""
    return [
        derived(s, f"invert({s.name})", _power(s.values, -1), {"invert": 1}) for s in seriesList
    ]


@collect.function("squareRoot", "Transform", [_SERIES_LIST])
def square_root(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Replace each point by its square root; negative values become null."""
    return [
        derived(s, f"squareRoot({s.name})", _power(s.values, 0.5), {"squareRoot": 1})
        for s in seriesList
    ]


@collect.function("pow", "Transform", [_SERIES_LIST, Param("factor", "float", required=True)])
def pow_(ctx: RenderContext, seriesList: list[Series], factor: float) -> list[Series]:
    """Raise each point to the power of a constant; impossible results become null.

    ``pow(Server.instance01.threads.busy,10)``
    """
    return [
        derived(s, f"pow({s.name},{factor:g})", _power(s.values, factor), {"pow": factor})
        for s in seriesList
    ]


@collect.function(
    "log", "Transform", [_SERIES_LIST, Param("base", "integer", default=10)], aliases=("logarithm",)
)
def logarithm(ctx: RenderContext, seriesList: list[Series], base: float = 10) -> list[Series]:
    """Take the logarithm of each point in a base (10 unless given); values <= 0 become null.

    ``log(carbon.agents.hostname.avgUpdateTime,2)``
    """
    if base <= 0 or base == 1:
        raise RenderError(f"log: the base must be positive and not 1, got {base}")
    out = []
    for s in seriesList:
        with np.errstate(all="ignore"):
            values = np.where(s.values > 0, np.log(s.values) / np.log(base), np.nan)
        out.append(derived(s, f"log({s.name}, {base})", values, {"log": base}))
    return out


@collect.function("derivative", "Transform", [_SERIES_LIST])
def derivative(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Replace each point by its difference from the previous point, the opposite of ``integral``.

    A point after a null (and the first point) is null. This does not divide
    by the step; see ``perSecond`` for a rate.
    """
    return [
        derived(s, f"derivative({s.name})", s.values - _previous(s.values), {"derivative": 1})
        for s in seriesList
    ]


def _non_negative_delta(
    values: FloatArray, max_value: float | None, min_value: float | None
) -> FloatArray:
    """Counter increments with wrap handling, as graphite-web's ``_nonNegativeDelta``.

    Values outside ``[min_value, max_value]`` are ignored (null, and no delta
    from them). A decrease is a wrap past ``max_value`` when it is given, a
    reset to ``min_value`` when only that is given, and null otherwise.
    """
    current = values.copy()
    with np.errstate(invalid="ignore"):
        if max_value is not None:
            current[current > max_value] = np.nan
        if min_value is not None:
            current[current < min_value] = np.nan
        prev = _previous(current)
        delta = current - prev
        wrapped = delta < 0
    if max_value is not None:
        delta[wrapped] = (max_value + 1 - (min_value or 0) + current - prev)[wrapped]
    elif min_value is not None:
        delta[wrapped] = (current - min_value)[wrapped]
    else:
        delta[wrapped] = np.nan
    return delta


_MAX_MIN = [Param("maxValue", "float"), Param("minValue", "float")]


@collect.function("nonNegativeDerivative", "Transform", [_SERIES_LIST, *_MAX_MIN])
def non_negative_derivative(
    ctx: RenderContext,
    seriesList: list[Series],
    maxValue: float | None = None,
    minValue: float | None = None,
) -> list[Series]:
    """Like ``derivative``, but a decrease gives null instead of a negative value.

    For counters that wrap or reset. With ``maxValue`` a decrease is taken as
    a wrap at ``maxValue`` (and the delta computed across it); with
    ``minValue`` as a reset to ``minValue``. Points outside those bounds are
    ignored.
    """
    return [
        derived(
            s,
            f"nonNegativeDerivative({s.name})",
            _non_negative_delta(s.values, maxValue, minValue),
            {"nonNegativeDerivative": 1},
        )
        for s in seriesList
    ]


@collect.function("perSecond", "Transform", [_SERIES_LIST, *_MAX_MIN])
def per_second(
    ctx: RenderContext,
    seriesList: list[Series],
    maxValue: float | None = None,
    minValue: float | None = None,
) -> list[Series]:
    """The per-second rate of a counter: ``nonNegativeDerivative`` divided by the step.

    ``maxValue`` and ``minValue`` mean what they mean for
    ``nonNegativeDerivative``. Values are rounded to 6 decimals.
    """
    return [
        derived(
            s,
            f"perSecond({s.name})",
            np.round(_non_negative_delta(s.values, maxValue, minValue) / s.step, 6),
            {"perSecond": 1},
        )
        for s in seriesList
    ]


def _running_total(values: FloatArray, run_starts: np.ndarray) -> FloatArray:
    """Cumulative sum of the values (nulls as 0) restarting at each index marked in run_starts."""
    filled = np.nan_to_num(values, nan=0.0)
    total = np.cumsum(filled)
    starts = np.maximum.accumulate(np.where(run_starts, np.arange(len(values)), 0))
    return total - (total[starts] - filled[starts])


@collect.function("integral", "Transform", [_SERIES_LIST])
def integral(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Replace each point by the sum of all points so far; nulls stay null.

    ``integral(company.sales.perMinute)`` shows the running sales total.
    """
    out = []
    for s in seriesList:
        values = _running_total(s.values, np.zeros(len(s.values), dtype=bool))
        values[np.isnan(s.values)] = np.nan
        out.append(derived(s, f"integral({s.name})", values, {"integral": 1}))
    return out


@collect.function(
    "integralByInterval",
    "Transform",
    [_SERIES_LIST, Param("intervalUnit", "string", required=True)],
)
def integral_by_interval(
    ctx: RenderContext, seriesList: list[Series], intervalUnit: str
) -> list[Series]:
    """Like ``integral``, but the sum restarts at zero every interval counted from ``from``.

    ``integralByInterval(company.sales.perMinute, "1d")&from=midnight-10days``
    shows the sales of each day so far. A null point repeats the running sum.
    """
    interval = abs(parse_interval(intervalUnit))
    if interval == 0:
        raise RenderError(f"integralByInterval: the interval {intervalUnit!r} is zero")
    out = []
    for s in seriesList:
        bucket = (s.timestamps() - ctx.start) // interval
        run_starts = np.ones(len(bucket), dtype=bool)
        run_starts[1:] = bucket[1:] != bucket[:-1]
        values = _running_total(s.values, run_starts)
        name = f"integralByInterval({s.name},'{intervalUnit}')"
        out.append(derived(s, name, values, {"integralByInterval": intervalUnit}))
    return out


@collect.function("delay", "Transform", [_SERIES_LIST, Param("steps", "integer", required=True)])
def delay(ctx: RenderContext, seriesList: list[Series], steps: int) -> list[Series]:
    """Shift the values later by a number of steps (earlier if negative), padding with nulls.

    Unlike ``timeShift`` this moves points, not time:
    ``divideSeries(server.FreeSpace,delay(server.FreeSpace,1))`` is the
    change ratio from one point to the next.
    """
    out = []
    for s in seriesList:
        n = len(s.values)
        k = min(abs(steps), n)
        values = np.full(n, np.nan)
        if steps >= 0:
            values[k:] = s.values[: n - k]
        else:
            values[: n - k] = s.values[k:]
        out.append(derived(s, f"delay({s.name},{steps})", values, {"delay": steps}))
    return out


def _fill_forward(values: FloatArray, limit: float) -> FloatArray:
    """Fill each run of nulls with the value before it when the run is at most ``limit`` long."""
    n = len(values)
    index = np.arange(n)
    present = ~np.isnan(values)
    last = np.maximum.accumulate(np.where(present, index, -1))
    following = np.minimum.accumulate(np.where(present, index, n)[::-1])[::-1]
    fill = ~present & (last >= 0) & (following - last - 1 <= limit)
    out = values.copy()
    out[fill] = values[last[fill]]
    return out


@collect.function("keepLastValue", "Transform", [_SERIES_LIST, Param("limit", "integer")])
def keep_last_value(
    ctx: RenderContext, seriesList: list[Series], limit: int | None = None
) -> list[Series]:
    """Fill gaps with the last value before them, for gaps of at most ``limit`` points.

    Without a limit every gap after the first value is filled, including one
    at the end. ``keepLastValue(Server01.connections.handled, 10)``
    """
    bound = float("inf") if limit is None else limit
    limit_arg = "" if limit is None else f",{limit}"
    return [
        derived(
            s,
            f"keepLastValue({s.name})",
            _fill_forward(s.values, bound),
            path_expression=f"keepLastValue({s.name}{limit_arg})",
        )
        for s in seriesList
    ]


@collect.function(
    "transformNull",
    "Transform",
    [
        _SERIES_LIST,
        Param("default", "float", default=0),
        Param("referenceSeries", "seriesList"),
    ],
)
def transform_null(
    ctx: RenderContext,
    seriesList: list[Series],
    default: float = 0,
    referenceSeries: list[Series] | None = None,
) -> list[Series]:
    """Replace nulls by a default value (0 unless given).

    With ``referenceSeries``, only the nulls at points where at least one
    reference series has a value are replaced.
    ``transformNull(webapp.pages.*.views,-1)``
    """
    out = []
    for s in seriesList:
        fill = np.isnan(s.values)
        if referenceSeries:
            covered = np.zeros(len(s.values), dtype=bool)
            for ref in referenceSeries:
                n = min(len(covered), len(ref.values))
                covered[:n] |= ~np.isnan(ref.values[:n])
            fill &= covered
            name = f"transformNull({s.name},{default:g},referenceSeries)"
            references = ",".join(dict.fromkeys(r.path_expression for r in referenceSeries))
            expression = f"transformNull({s.name},{default!r},group({references}))"
            tags: dict[str, object] = {"transformNull": default, "referenceSeries": 1}
        else:
            name = expression = f"transformNull({s.name},{default:g})"
            tags = {"transformNull": default}
        values = np.where(fill, default, s.values)
        out.append(derived(s, name, values, tags, path_expression=expression))
    return out


@collect.function("isNonNull", "Transform", [_SERIES_LIST])
def is_non_null(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Replace each point by 1 when it has a value and 0 when it is null.

    ``sumSeries(isNonNull(webapp.*.alive))`` counts the reporting servers.
    """
    return [
        derived(
            s, f"isNonNull({s.name})", (~np.isnan(s.values)).astype(np.float64), {"isNonNull": 1}
        )
        for s in seriesList
    ]


@collect.function(
    "consolidateBy",
    "Special",
    [
        _SERIES_LIST,
        Param("consolidationFunc", "string", required=True, options=tuple(CONSOLIDATIONS)),
    ],
)
def consolidate_by(
    ctx: RenderContext, seriesList: list[Series], consolidationFunc: str
) -> list[Series]:
    """Set how the series is consolidated when it has more points than can be shown.

    One of ``sum``, ``average`` (``avg``), ``avg_zero``, ``min``, ``max``,
    ``first`` and ``last``; the default is ``average``. It also applies when
    the series is combined with series of a coarser step.
    ``consolidateBy(Sales.widgets.largeBlue, 'sum')``
    """
    if consolidationFunc not in CONSOLIDATIONS:
        raise RenderError(
            f"consolidateBy: unknown function {consolidationFunc!r}: "
            f"use one of {', '.join(CONSOLIDATIONS)}"
        )
    return [
        derived(
            s,
            f'consolidateBy({s.name},"{consolidationFunc}")',
            s.values,
            {"consolidateBy": consolidationFunc},
            consolidation={"avg": "average"}.get(consolidationFunc, consolidationFunc),
        )
        for s in seriesList
    ]
