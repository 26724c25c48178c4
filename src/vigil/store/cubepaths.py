"""Cube measures in the Graphite namespace: ``cube.<app>.<name>.<dc>.<cluster>.<host>.<measure>``.

So the cube can be browsed in ``/metrics/find``, graphed, combined with
render functions and alerted on like any metric. Dimension values become
path components the way self-metrics do (``telemetry.path_part``: runs of
characters other than letters, digits, ``_`` and ``-`` become ``_``), so
``GET /cart`` is ``GET_cart``; globs match those components.

>>> fetch_sql_dims(["cube.shop.*.ams.*.web01.p99"])[0]
['shop', '*', 'ams', '*', 'web01']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from vigil.query.cubequery import QUANTILES, STEPS
from vigil.query.pathglob import glob_body
from vigil.query.series import Series
from vigil.query.source import MetricNode
from vigil.store.cubestore import (
    COUNTERS,
    measure_values,
    merged_counters,
    merged_quantiles,
    table,
)
from vigil.store.dialect import EMBEDDED, Dialect

ROOT = "cube"
PATH_DIMS = ("app", "name", "dc", "cluster", "host")
MEASURES = ("count", "errors", "error_rate", "avg", "min", "max", "p50", "p90", "p99", "p999")
DEPTH = 1 + len(PATH_DIMS) + 1
# How far back /metrics/find looks for dimension values (the coarsest table).
FIND_SECONDS = 30 * 86400


def _safe(column: str, d: Dialect) -> str:
    """``column`` as a path component, as ``telemetry.path_part`` makes one."""
    cleaned = d.trim_underscores(f"replaceRegexpAll({column}, '[^A-Za-z0-9_-]+', '_')")
    return f"if({cleaned} = '', '_', {cleaned})"


def _regex(glob: str) -> str:
    return "'" + ("^" + glob_body(glob) + "$").replace("\\", "\\\\").replace("'", "\\'") + "'"


def _matches(glob: str, text: str) -> bool:
    return re.fullmatch(glob_body(glob), text) is not None


def fetch_sql_dims(patterns: Sequence[str]) -> list[list[str]]:
    """The dimension globs of each cube path pattern (those of full depth)."""
    return [p.split(".")[1:-1] for p in patterns if p.count(".") + 1 == DEPTH]


def find(
    query: Callable[[str], pa.Table], pattern: str, now: int, d: Dialect = EMBEDDED
) -> list[MetricNode]:
    """Nodes of the cube's subtree matching ``pattern`` one level deep."""
    parts = pattern.split(".")
    if not _matches(parts[0], ROOT):
        return []
    depth = len(parts)
    if depth == 1:
        has_rows = query(f"SELECT count() AS n FROM {table(STEPS[-1])}").column("n")[0].as_py()
        return [MetricNode(ROOT, False)] if has_rows else []
    if depth == DEPTH:
        return [
            MetricNode(f"{parent.path}.{m}", True)
            for parent in find(query, ".".join(parts[:-1]), now, d)
            for m in MEASURES
            if _matches(parts[-1], m)
        ]
    if depth > DEPTH:
        return []
    dims = PATH_DIMS[: depth - 1]
    conds = [f"ts >= toDateTime({now - FIND_SECONDS})"]
    conds += [f"match({_safe(dim, d)}, {_regex(g)})" for dim, g in zip(dims, parts[1:])]
    sql = (
        f"SELECT DISTINCT {', '.join(f'{_safe(dim, d)} AS {dim}' for dim in dims)}"
        f" FROM {table(STEPS[-1])} WHERE {' AND '.join(conds)} ORDER BY {', '.join(dims)}"
    )
    result = query(sql)
    columns = [result.column(d).to_pylist() for d in dims]
    return [MetricNode(".".join([ROOT, *values]), False) for values in zip(*columns)]


def fetch(
    query: Callable[[str], pa.Table],
    patterns: Sequence[str],
    start: int,
    end: int,
    now: int,
    d: Dialect = EMBEDDED,
) -> list[Series]:
    """Series of the cube paths matching ``patterns`` over ``[start, end)``.

    The step is the finest the engine keeps for the range's start (10 s for
    a week, 1 min for 90 days, 1 h beyond), as for points.
    """
    age = now - start
    step = STEPS[0] if age <= 7 * 86400 else STEPS[1] if age <= 90 * 86400 else STEPS[2]
    first = start - start % step
    n = max(0, -(-(end - first) // step))
    out: dict[str, Series] = {}
    for pattern in patterns:
        parts = pattern.split(".")
        if len(parts) != DEPTH or not _matches(parts[0], ROOT):
            continue
        measures = [m for m in MEASURES if _matches(parts[-1], m)]
        if not measures:
            continue
        conds = [f"ts >= toDateTime({first})", f"ts < toDateTime({end})"]
        conds += [f"match({_safe(dim, d)}, {_regex(g)})" for dim, g in zip(PATH_DIMS, parts[1:-1])]
        keys = ", ".join(f"{_safe(dim, d)} AS {dim}" for dim in PATH_DIMS)
        levels = [QUANTILES[m] for m in measures if m in QUANTILES]
        sketch = f", {d.aggregate_value('sumMap', 'bins')} AS merged" if levels else ""
        sql = (
            f"SELECT {keys}, toUInt32(ts) AS bucket, {merged_counters(d)}{sketch} FROM {table(step)}"
            f" WHERE {' AND '.join(conds)} GROUP BY {', '.join(PATH_DIMS)}, bucket"
        )
        result = query(sql)
        if not result.num_rows:
            continue
        counters = {c: result.column(c).to_numpy() for c in COUNTERS}
        quantiles = merged_quantiles(result.column("merged"), levels) if levels else None
        values = measure_values(counters, quantiles, measures)
        names = [
            ".".join([ROOT, *row])
            for row in zip(*(result.column(d).to_pylist() for d in PATH_DIMS))
        ]
        slots = (result.column("bucket").to_numpy().astype(np.int64) - first) // step
        for m in measures:
            for i, (name, slot) in enumerate(zip(names, slots.tolist())):
                path = f"{name}.{m}"
                series = out.get(path)
                if series is None:
                    series = out[path] = Series(path, first, step, np.full(n, np.nan))
                if 0 <= slot < n and values[m][i] is not None:
                    series.values[slot] = values[m][i]
    return sorted(out.values(), key=lambda s: s.name)
