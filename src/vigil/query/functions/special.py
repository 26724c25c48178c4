"""Graphite's generated series (constant lines, test waves, events) and its tag functions.

Generated series start at the request's start and take their step from an
argument (60 s by default, as in graphite-web); ``constantLine`` draws three
points across the range. ``events`` counts events on a 60 s grid aligned as
storage aligns a 60 s fetch, so it lines up with metrics at that resolution:
graphite-web uses a 1 s grid, which makes a day 86,400 points for a handful
of events.

``seriesByTag`` names each series by its path and gives it the call itself as
path expression, so that functions which re-evaluate their input over
another range (timeShift, movingAverage) find it again.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from vigil.query.errors import RenderError
from vigil.query.functions.combine import aggregate
from vigil.query.functions.filter import SERIES
from vigil.query.functions.registry import Collector, Param, RenderContext, format_number
from vigil.query.series import FloatArray, Series, parse_tags

collect = Collector()

EVENT_STEP = 60

# graphite-web's tag expression syntax: tag, operator, value (tagdb's parseTagExpression).
_TAG_EXPRESSION = re.compile(r"^([^;!=]+)(!?=~?)([^;]*)$")


def _grid(ctx: RenderContext, step: int) -> FloatArray:
    """Start times of the ``step``-second intervals from the request's start to its end."""
    if step <= 0:
        raise RenderError(f"the step must be a positive number of seconds, not {step}")
    return np.arange(ctx.start, ctx.end, step, dtype=np.float64)


# -- constant and generated series ----------------------------------------------------------------


def _constant(ctx: RenderContext, value: float, name: str) -> Series:
    """Three points spanning the request, graphite-web's shape for a horizontal line."""
    step = max(1, (ctx.end - ctx.start) // 2)
    return Series(
        name,
        ctx.start,
        step,
        np.full(3, value),
        path_expression=f"constantLine({format_number(value)})",
    )


@collect.function("constantLine", "Special", [Param("value", "float", required=True)])
def constant_line(ctx: RenderContext, value: float) -> list[Series]:
    """Draws a horizontal line at ``value`` across the graph, named after the value.

    Example: ``constantLine(123.456)``.
    """
    return [_constant(ctx, value, format_number(value))]


@collect.function(
    "threshold",
    "Graph",
    [
        Param("value", "float", required=True),
        Param("label", "string"),
        Param("color", "string"),
    ],
)
def threshold(
    ctx: RenderContext, value: float, label: str | None = None, color: str | None = None
) -> list[Series]:
    """Draws a horizontal line at ``value``, with an optional legend label and color.

    Example: ``threshold(123.456,"omgwtfbbq","red")``.
    """
    line = _constant(ctx, value, label or format_number(value))
    if color:
        line.options["color"] = color
    return [line]


@collect.function(
    "sinFunction",
    "Transform",
    [
        Param("name", "string", required=True),
        Param("amplitude", "float", default=1),
        Param("step", "integer", default=60),
    ],
    aliases=("sin",),
)
def sin_function(
    ctx: RenderContext, name: str, amplitude: float = 1, step: int = 60
) -> list[Series]:
    """Draws ``amplitude * sin(t)`` of the epoch time ``t``, a test signal.

    Example: ``sin("The.time.series",2)``; ``step`` is in seconds (default 60).
    """
    times = _grid(ctx, step)
    return [Series(name, ctx.start, step, np.sin(times) * amplitude)]


@collect.function(
    "timeFunction",
    "Transform",
    [Param("name", "string", required=True), Param("step", "integer", default=60)],
    aliases=("time",),
)
def time_function(ctx: RenderContext, name: str, step: int = 60) -> list[Series]:
    """Draws each point's own timestamp (epoch seconds) as its value.

    Example: ``time("The.time.series")``; ``step`` is in seconds (default 60).
    """
    return [Series(name, ctx.start, step, _grid(ctx, step))]


@collect.function(
    "randomWalkFunction",
    "Special",
    [Param("name", "string", required=True), Param("step", "integer", default=60)],
    aliases=("randomWalk",),
)
def random_walk_function(ctx: RenderContext, name: str, step: int = 60) -> list[Series]:
    """Draws a random walk from 0, each point the last plus a random step in [-0.5, 0.5).

    Example: ``randomWalk("The.time.series")``. The walk is seeded by the name,
    start and step, so that a repeated request draws the same line (graphite-web
    draws a new one each time).
    """
    times = _grid(ctx, step)
    rng = np.random.default_rng(zlib.crc32(f"{name}\0{ctx.start}\0{step}".encode()))
    walk = np.concatenate([[0.0], np.cumsum(rng.random(max(len(times) - 1, 0)) - 0.5)])
    return [Series(name, ctx.start, step, walk[: len(times)])]


@collect.function("identity", "Calculate", [Param("name", "string", required=True)])
def identity(ctx: RenderContext, name: str) -> list[Series]:
    """Draws each point's own timestamp as its value at a 60 s step, to compare with a timestamp-valued series.

    Example: ``identity("The.time.series")``.
    """
    return [Series(name, ctx.start, 60, _grid(ctx, 60), path_expression=f'identity("{name}")')]


# -- events ---------------------------------------------------------------------------------------


@collect.function("events", "Special", [Param("tags", "string", required=True, multiple=True)])
def events(ctx: RenderContext, *tags: str) -> list[Series]:
    """Counts the events carrying all the given tags in each minute, None where there are none.

    ``events("*")`` counts every event. Made to be drawn with
    ``drawAsInfinite``: ``drawAsInfinite(events("deploy"))``. The series sums
    when consolidated, so a wider interval shows how many events it holds.
    """
    name = 'events("' + '", "'.join(tags) + '")'
    wanted = () if tags in ((), ("*",)) else tags
    start = ctx.start - ctx.start % EVENT_STEP
    points = max(0, -(-(ctx.end - start) // EVENT_STEP))
    found = ctx.source.events(ctx.start, ctx.end, wanted)
    offsets = np.array([(e.when - start) // EVENT_STEP for e in found], dtype=np.intp)
    counts = np.bincount(offsets[offsets < points], minlength=points)[:points]
    values = np.where(counts > 0, counts.astype(np.float64), np.nan)
    return [Series(name, start, EVENT_STEP, values, consolidation="sum")]


# -- tags -----------------------------------------------------------------------------------------


def _matches_empty(expression: str) -> bool:
    """Whether a tag expression holds for a series without the tag; a bad one is a RenderError."""
    parsed = _TAG_EXPRESSION.match(expression)
    if not parsed:
        raise RenderError(
            f"bad tag expression {expression!r}: write tag=value, tag!=value, "
            "tag=~regex or tag!=~regex"
        )
    _, op, value = parsed.groups()
    if op in ("=", "!="):
        return (value == "") == (op == "=")
    try:
        found = re.match(value, "") is not None
    except re.error as exc:
        raise RenderError(f"bad regular expression in {expression!r}: {exc}") from None
    return found == (op == "=~")


def _quoted(text: str) -> str:
    return f'"{text}"' if "'" in text else f"'{text}'"


@collect.function(
    "seriesByTag", "Special", [Param("tagExpressions", "string", required=True, multiple=True)]
)
def series_by_tag(ctx: RenderContext, *tagExpressions: str) -> list[Series]:
    """Fetches the series whose tags match all the expressions.

    An expression is ``tag=value``, ``tag!=value``, ``tag=~regex`` or
    ``tag!=~regex`` (regexes anchored at the start); a series without a tag
    has it empty. At least one expression must need a non-empty value.
    Example: ``seriesByTag('name=cpu.load','dc!=test')``.
    """
    needs_value = [not _matches_empty(e) for e in tagExpressions]  # checks every expression
    if not any(needs_value):
        raise RenderError(
            "seriesByTag needs at least one expression that requires a non-empty value, "
            "such as name=cpu.load"
        )
    paths = ctx.source.tagged(tagExpressions)
    if len(paths) > ctx.max_series:
        raise RenderError(
            f"seriesByTag matched {len(paths)} series, more than the limit of {ctx.max_series}; "
            "add expressions to narrow it"
        )
    call = f"seriesByTag({','.join(_quoted(e) for e in tagExpressions)})"
    fetched = ctx.source.fetch(paths, ctx.start, ctx.end) if paths else []
    for series in fetched:
        series.path_expression = call
    return fetched


def _group_key(series: Series, name: str, tags: Sequence[str]) -> str:
    pairs = sorted(f"{t}={series.tags.get(t, '')}" for t in tags if t != "name")
    return ";".join([series.tags["name"] if "name" in tags else name, *pairs])


@collect.function(
    "groupByTags",
    "Combine",
    [
        SERIES,
        Param("callback", "aggOrSeriesFunc", required=True),
        Param("tags", "tag", required=True, multiple=True),
    ],
)
def group_by_tags(
    ctx: RenderContext, seriesList: list[Series], callback: str, *tags: str
) -> list[Series]:
    """Aggregates the series in groups that share the values of the given tags.

    ``seriesByTag('name=cpu')|groupByTags('sum','dc')`` gives one series per
    data center, named ``cpu;dc=dc1``: the common ``name`` tag (or the
    callback when names differ) followed by the grouping tags. The callback
    is an aggregation (``sum``, ``average``, ``max`` ...) or its series
    function (``sumSeries``).
    """
    if not tags:
        raise RenderError("groupByTags needs at least one tag to group by")
    names = {s.tags["name"] for s in seriesList}
    common = names.pop() if len(names) == 1 else callback
    groups: dict[str, list[Series]] = {}
    for series in seriesList:
        groups.setdefault(_group_key(series, common, tags), []).append(series)
    result = []
    for key, members in groups.items():
        (combined,) = aggregate(ctx, members, callback)
        result.append(combined.copy(name=key, path_expression=key, tags=parse_tags(key)))
    return result
