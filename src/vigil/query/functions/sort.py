"""Graphite's sorting functions: reorder a series list, by name or by an aggregated value.

Sorts are stable, so series that tie keep their input order, and a series
without any value sorts below every number, as in graphite-web.
"""

from __future__ import annotations

import re

from vigil.query.functions.filter import SERIES, rank_key, summary
from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.series import Series

collect = Collector()

_DIGITS = re.compile(r"\d+")


def _by(series_list: list[Series], func: str, reverse: bool) -> list[Series]:
    return sorted(series_list, key=rank_key(func), reverse=reverse)


@collect.function(
    "sortBy",
    "Sorting",
    [
        SERIES,
        Param("func", "aggFunc", default="average"),
        Param("reverse", "boolean", default=False),
    ],
)
def sort_by(
    ctx: RenderContext, seriesList: list[Series], func: str = "average", reverse: bool = False
) -> list[Series]:
    """Sorts the series by an aggregated value, ascending unless ``reverse``.

    Example: ``sortBy(server*.threads.busy,'max')``.
    """
    return _by(seriesList, func, reverse)


@collect.function("sortByMaxima", "Sorting", [SERIES])
def sort_by_maxima(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Sorts the series by their maximum, highest first, so that low lines stay visible in area mode."""
    return _by(seriesList, "max", reverse=True)


@collect.function("sortByTotal", "Sorting", [SERIES])
def sort_by_total(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Sorts the series by the sum of their values, highest first."""
    return _by(seriesList, "sum", reverse=True)


@collect.function("sortByMinima", "Sorting", [SERIES])
def sort_by_minima(ctx: RenderContext, seriesList: list[Series]) -> list[Series]:
    """Sorts the series by their minimum, lowest first, dropping those whose maximum is not above 0.

    Series without any value count as a maximum of 0 and are dropped too.
    """
    positive = [s for s in seriesList if summary(s, "max") > 0]
    return _by(positive, "min", reverse=False)


def natural_key(name: str) -> str:
    """A sort key that orders runs of digits by number: ``server2`` before ``server11``.

    Digit runs are zero-padded to ten places, graphite-web's rule.

    >>> sorted(["server11", "server2", "server1"], key=natural_key)
    ['server1', 'server2', 'server11']
    """
    return _DIGITS.sub(lambda m: f"{int(m.group()):010d}", name)


@collect.function(
    "sortByName",
    "Sorting",
    [
        SERIES,
        Param("natural", "boolean", default=False),
        Param("reverse", "boolean", default=False),
    ],
)
def sort_by_name(
    ctx: RenderContext, seriesList: list[Series], natural: bool = False, reverse: bool = False
) -> list[Series]:
    """Sorts the series by name, alphabetically or ``natural``-ly (``server2`` before ``server11``)."""
    if natural:
        return sorted(seriesList, key=lambda s: natural_key(s.name), reverse=reverse)
    return sorted(seriesList, key=lambda s: s.name, reverse=reverse)
