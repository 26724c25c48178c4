"""Graphite's naming and display functions: what the legend says and how a line is drawn.

Alias functions rename series; display functions put drawing hints into
``Series.options`` (``color``, ``lineWidth``, ``alpha``, ``dashed``,
``secondYAxis``, ``stacked``, ``drawAsInfinite``), which the JSON output
ignores. Where graphite-web also renames the series or adds a tag
(``dashed``, ``secondYAxis``, ``drawAsInfinite``, ``stacked``) so do these.
Every function returns copies; the input series are left alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from vigil.query.errors import RenderError
from vigil.query.functions.filter import AGGREGATIONS, SERIES, aggregation
from vigil.query.functions.nodes import node_value
from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.series import FloatArray, Series

collect = Collector()

_DOLLAR_GROUP = re.compile(r"\$(\d+)")

# graphite's unit systems for legend values, largest prefix first.
_UNITS: Mapping[str, tuple[tuple[str, float], ...]] = MappingProxyType(
    {
        "si": tuple((p, 1000.0**e) for p, e in (("P", 5), ("T", 4), ("G", 3), ("M", 2), ("K", 1))),
        "binary": tuple(
            (p, 1024.0**e) for p, e in (("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1))
        ),
    }
)


def _derive(
    series: Series,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    values: FloatArray | None = None,
) -> Series:
    """A copy of ``series`` with a new name or values, and tags and options added."""
    return series.copy(
        name=series.name if name is None else name,
        tags={**series.tags, **(tags or {})},
        options={**series.options, **(options or {})},
        values=series.values.copy() if values is None else values,
    )


# -- alias ----------------------------------------------------------------------------------------


@collect.function("alias", "Alias", [SERIES, Param("newName", "string", required=True)])
def alias(ctx: RenderContext, seriesList: list[Series], newName: str) -> list[Series]:
    """Shows ``newName`` in the legend instead of each series' name.

    Example: ``alias(Sales.widgets.largeBlue,"Large Blue Widgets")``.
    """
    return [_derive(s, newName) for s in seriesList]


def _by_nodes(series_list: list[Series], nodes: Iterable[int | str]) -> list[Series]:
    wanted = tuple(nodes)
    if not wanted:
        raise RenderError("give at least one node number or tag name")
    return [
        _derive(s, ".".join(node_value(s.name, n, s.tags) for n in wanted)) for s in series_list
    ]


@collect.function(
    "aliasByNode",
    "Alias",
    [SERIES, Param("nodes", "nodeOrTag", required=True, multiple=True)],
)
def alias_by_node(ctx: RenderContext, seriesList: list[Series], *nodes: int | str) -> list[Series]:
    """Names each series after some of its path nodes or tags, joined with dots.

    Nodes count from 0, negative ones from the end; a string names a tag. For
    a series out of a function, such as ``scale(a.b.c,2)``, the nodes are
    those of its first metric path. Example: ``aliasByNode(ganglia.*.cpu.load5,1)``,
    or ``seriesByTag('name=cpu.load')|aliasByNode('dc',-1)``.
    """
    return _by_nodes(seriesList, nodes)


@collect.function(
    "aliasByTags",
    "Alias",
    [SERIES, Param("tags", "nodeOrTag", required=True, multiple=True)],
)
def alias_by_tags(ctx: RenderContext, seriesList: list[Series], *tags: int | str) -> list[Series]:
    """Names each series after some of its tags (or nodes), joined with dots; the same as ``aliasByNode``.

    Example: ``seriesByTag('name=cpu')|aliasByTags('server','name')``.
    """
    return _by_nodes(seriesList, tags)


def metric_name(series_name: str) -> str:
    """The last node of the innermost path in a series name, graphite-web's ``aliasByMetric`` rule.

    >>> metric_name("scale(carbon.agents.host.creates,2)")
    'creates'
    """
    left = series_name.rfind("(") + 1
    right = series_name.find(")")
    inner = series_name[left : right if right >= 0 else len(series_name)]
    return inner.split(".")[-1].split(",", 1)[0]


@collect.function("aliasByMetric", "Alias", [SERIES])
def alias_by_metric(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Names each series after the last node of its metric path.

    Example: ``aliasByMetric(carbon.agents.graphite.creates)`` shows ``creates``.
    """
    return [_derive(s, metric_name(s.name)) for s in seriesList]


@collect.function(
    "aliasSub",
    "Alias",
    [
        SERIES,
        Param("search", "string", required=True),
        Param("replace", "string", required=True),
    ],
)
def alias_sub(
    ctx: RenderContext, seriesList: list[Series], search: str, replace: str
) -> list[Series]:
    r"""Renames each series by a regular expression search and replace.

    The replacement may refer to groups as ``\1`` or ``$1``. Example:
    ``aliasSub(ip.*TCP*,"^.*TCP(\d+)","port $1")``.
    """
    try:
        regex = re.compile(search)
        template = _DOLLAR_GROUP.sub(r"\\g<\1>", replace)
        return [_derive(s, regex.sub(template, s.name)) for s in seriesList]
    except (re.error, IndexError) as exc:
        raise RenderError(f"aliasSub({search!r}, {replace!r}) failed: {exc}") from None


# -- legendValue ----------------------------------------------------------------------------------


def _with_unit(value: float, system: str) -> str:
    """``value`` scaled to the largest fitting prefix of a unit system, e.g. ``1.50K``."""
    for prefix, size in _UNITS[system]:
        if abs(value) >= size:
            return f"{value / size:.2f}{prefix}"
    return f"{value:.2f}"


def _legend_value(series: Series, value_type: str) -> float | None:
    value = float(aggregation(value_type)(series.values))
    if math.isnan(value):
        return None
    return int(value) if value_type == "count" else value


def _legend_text(name: str, value_type: str, value: float | None, system: str) -> str:
    if not system:
        return f"{name} ({value_type}: {value})"
    text = "None" if value is None else _with_unit(value, system)
    return f"{name:<20}{value_type:<5}{text:<10}"


@collect.function(
    "legendValue",
    "Alias",
    [
        SERIES,
        Param(
            "valuesTypes",
            "string",
            multiple=True,
            options=(*AGGREGATIONS, *_UNITS),
        ),
    ],
)
def legend_value(ctx: RenderContext, seriesList: list[Series], *valuesTypes: str) -> list[Series]:
    """Appends aggregated values (``last``, ``avg``, ``total``, ``min``, ``max`` ...) to each legend name.

    A last argument of ``si`` or ``binary`` formats the values with unit
    prefixes in columns, e.g. ``legendValue(Sales.widgets,'avg','max','si')``
    gives ``Sales.widgets       avg  1.50K     max  3.00K``; without it the
    name becomes ``Sales.widgets (avg: 1500.0) (max: 3000.0)``.
    """
    types = list(valuesTypes)
    system = types.pop() if types and types[-1] in _UNITS else ""
    renamed = []
    for s in seriesList:
        name = s.name
        for value_type in types:
            name = _legend_text(name, value_type, _legend_value(s, value_type), system)
        renamed.append(_derive(s, name))
    return renamed


# -- display hints --------------------------------------------------------------------------------


@collect.function("color", "Graph", [SERIES, Param("theColor", "string", required=True)])
def color(ctx: RenderContext, seriesList: list[Series], theColor: str) -> list[Series]:
    """Draws the series in a color: a name (``green``) or hex RGB(A) (``ff0000``, ``6464ffaa``)."""
    return [_derive(s, options={"color": theColor}) for s in seriesList]


@collect.function("lineWidth", "Graph", [SERIES, Param("width", "float", required=True)])
def line_width(ctx: RenderContext, seriesList: list[Series], width: float) -> list[Series]:
    """Draws the series with a line ``width`` pixels wide, overriding the graph's lineWidth."""
    return [_derive(s, options={"lineWidth": width}) for s in seriesList]


@collect.function("alpha", "Graph", [SERIES, Param("alpha", "float", required=True)])
def alpha(ctx: RenderContext, seriesList: list[Series], alpha: float) -> list[Series]:
    """Draws the series with an opacity between 0 (transparent) and 1."""
    return [_derive(s, options={"alpha": alpha}) for s in seriesList]


@collect.function("dashed", "Graph", [SERIES, Param("dashLength", "float", default=5)])
def dashed(ctx: RenderContext, seriesList: list[Series], dashLength: float = 5) -> list[Series]:
    """Draws the series as a dashed line with segments ``dashLength`` pixels long (default 5)."""
    length = f"{dashLength:g}"
    return [
        _derive(s, f"dashed({s.name}, {length})", {"dashed": length}, {"dashed": dashLength})
        for s in seriesList
    ]


def _flagged(series_list: list[Series], flag: str) -> list[Series]:
    """Copies named ``flag(name)``, tagged and optioned with ``flag``, as graphite-web marks them."""
    return [_derive(s, f"{flag}({s.name})", {flag: "1"}, {flag: True}) for s in series_list]


@collect.function("secondYAxis", "Graph", [SERIES])
def second_y_axis(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Draws the series against the secondary (right) Y axis."""
    return _flagged(seriesList, "secondYAxis")


@collect.function("drawAsInfinite", "Graph", [SERIES])
def draw_as_infinite(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Draws a vertical line wherever the value is above 0, for on/off metrics such as deploys.

    A zero draws at 0; None and negative values draw nothing.
    """
    return _flagged(seriesList, "drawAsInfinite")


_DEFAULT_STACK = "__DEFAULT__"


@collect.function("stacked", "Graph", [SERIES, Param("stack", "string")])
def stacked(ctx: RenderContext, seriesList: list[Series], stack: str | None = None) -> list[Series]:
    """Stacks the series: each one shows the running sum of it and the series before it.

    None points stay None and add nothing. Points are matched by position, as
    in graphite-web. Without a ``stack`` name the series are renamed
    ``stacked(name)``; with one their names are kept. Unlike graphite-web, the
    running sum does not carry over between targets of one request.
    """
    total = np.zeros(0)
    result = []
    for s in seriesList:
        n = len(s.values)
        if n > len(total):
            total = np.concatenate([total, np.zeros(n - len(total))])
        present = ~np.isnan(s.values)
        total[:n] += np.where(present, s.values, 0.0)
        values = np.where(present, total[:n], np.nan)
        if stack is None or stack == _DEFAULT_STACK:
            name, tags = f"stacked({s.name})", {"stacked": _DEFAULT_STACK}
        else:
            name, tags = s.name, {}
        result.append(_derive(s, name, tags, {"stacked": True}, values))
    return result
