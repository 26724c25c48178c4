"""The cube in the engine: counters of transactions and events, kept by materialized views.

Every ``end``, ``atomic`` and ``event`` entry inserted into ``vigil.logs``
feeds ``cube_10`` (10-second buckets) through a materialized view; coarser
tables (``cube_60``, ``cube_3600``) are fed from the finer one. Each row holds
aggregate states over (bucket, dc, cluster, host, app, type, name, status):
count, errors (status != 0), transactions, duration sum/min/max, and the
duration's DDSketch bins (``vigil.sketch``) as a ``sumMap`` state. Every
measure merges by sum, min, max or key-wise sum, so partial cubes (one per
insert, per node, per shard) merge to the same cube in any order: the
aggregator/combiner split, done by the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.query.cubequery import (
    MAX_ROWS,
    QUANTILES,
    STEPS,
    CubeQuery,
    CubeQueryError,
    CubeResult,
)
from vigil.sketch import KEY_BIAS, MAPPING, grouped_quantiles
from vigil.store.schema import MERGE_TREE_SETTINGS, in_conditions

DB = "vigil"
_DIMS = "dc, cluster, host, app, type, name, status"
_LOW = "LowCardinality(String)"
# The sketch key of a duration, as ``sketch.keys_of`` computes it (durations are >= 0).
_LOG_GAMMA = math.log1p(2 * MAPPING.relative_accuracy / (1 - MAPPING.relative_accuracy))
_KEY_SQL = (
    f"toInt32(if(duration_ms <= {MAPPING.min_possible!r}, 0,"
    f" ceil(log(least(duration_ms, {MAPPING.max_possible!r})) / {_LOG_GAMMA!r})"
    f" + {KEY_BIAS}))"
)


def table(step: int) -> str:
    """The cube table of one step."""
    return f"{DB}.cube_{step}"


def create_statements(enabled: bool = True) -> list[str]:
    """Idempotent DDL: one table per step, then the views (recreated on every start).

    Disabled, the views are dropped: stored cubes stay queryable, new entries
    no longer feed them (what the cube costs at ingest is measured that way).
    """
    stmts = []
    for step in STEPS:
        partition = "toYYYYMMDD(ts)" if step < 3600 else "toYYYYMM(ts)"
        stmts.append(
            f"CREATE TABLE IF NOT EXISTS {table(step)} (ts DateTime CODEC(DoubleDelta, ZSTD),"
            f" dc {_LOW}, cluster {_LOW}, host {_LOW}, app {_LOW}, type {_LOW}, name {_LOW},"
            " status Int32, cnt SimpleAggregateFunction(sum, UInt64),"
            " errors SimpleAggregateFunction(sum, UInt64),"
            " txn SimpleAggregateFunction(sum, UInt64),"
            " dur_sum SimpleAggregateFunction(sum, Float64),"
            " dur_min SimpleAggregateFunction(min, Float64),"
            " dur_max SimpleAggregateFunction(max, Float64),"
            " bins AggregateFunction(sumMap, Array(Int32), Array(UInt64)))"
            f" ENGINE = AggregatingMergeTree PARTITION BY {partition}"
            f" ORDER BY (ts, app, name, dc, cluster, host, type, status) {MERGE_TREE_SETTINGS}"
        )
    for step in STEPS:
        stmts.append(f"DROP VIEW IF EXISTS {table(step)}_mv")
    if not enabled:
        return stmts
    finest = STEPS[0]
    txn = "kind != 'event'"
    stmts.append(
        f"CREATE MATERIALIZED VIEW {table(finest)}_mv TO {table(finest)} AS"
        f" SELECT bucket AS ts, {_DIMS}, count() AS cnt, countIf(status != 0) AS errors, countIf({txn}) AS txn,"
        f" sumIf(duration_ms, {txn}) AS dur_sum,"
        f" min(if({txn}, duration_ms, inf)) AS dur_min,"
        f" max(if({txn}, duration_ms, -inf)) AS dur_max,"
        f" sumMapState(if({txn}, [{_KEY_SQL}], []), if({txn}, [toUInt64(1)], []))"
        f" AS bins FROM (SELECT toDateTime(intDiv(toUInt32(toDateTime(ts)), {finest}) * {finest})"
        f" AS bucket, {_DIMS}, kind, duration_ms FROM {DB}.logs"
        f" WHERE kind IN ('end', 'atomic', 'event')) GROUP BY bucket, {_DIMS}"
    )
    for finer, step in zip(STEPS, STEPS[1:]):
        stmts.append(
            f"CREATE MATERIALIZED VIEW {table(step)}_mv TO {table(step)} AS"
            f" SELECT bucket AS ts, {_DIMS}, sum(cnt) AS cnt, sum(errors) AS errors,"
            " sum(txn) AS txn, sum(dur_sum) AS dur_sum, min(dur_min) AS dur_min,"
            " max(dur_max) AS dur_max, sumMapMergeState(bins) AS bins"
            f" FROM (SELECT toDateTime(intDiv(toUInt32(ts), {step}) * {step}) AS bucket,"
            f" {_DIMS}, cnt, errors, txn, dur_sum, dur_min, dur_max, bins FROM {table(finer)})"
            f" GROUP BY bucket, {_DIMS}"
        )
    return stmts


class CubeStore:
    """Queries of the cube tables over the engine connections of a ``SqlStore``."""

    def __init__(self, query: Callable[[str], pa.Table]) -> None:
        self._query = query

    def query(self, q: CubeQuery) -> CubeResult:
        """The measures of ``q`` per group (and per step bucket), roll-up totals after."""
        columns = (["ts"] if q.step else []) + list(q.group_by) + list(q.measures)
        if q.rollup:
            columns.append("rollup")
        rows: list[list[Any]] = []
        for level in q.hierarchy_levels():
            for row in self._level(q, level):
                if q.rollup:
                    row.append(None if level == q.group_by else _rollup_name(q, level))
                rows.append(row)
        return CubeResult(columns, rows)

    def _level(self, q: CubeQuery, dims: tuple[str, ...]) -> list[list[Any]]:
        """Rows grouped by ``dims``: group columns as ``q.group_by`` lays them out, then measures."""
        step = q.table_step
        start, end = q.bounds
        conds = [f"ts >= toDateTime({start})", f"ts < toDateTime({end})"]
        conds += in_conditions(q.filters)
        keys = list(dims)
        if q.step:
            keys.insert(0, f"toUInt32(intDiv(toUInt32(ts), {q.step}) * {q.step}) AS bucket")
        quantiles = [m for m in q.measures if m in QUANTILES]
        sketch = ", sumMapMerge(bins) AS merged" if quantiles else ""
        group = f" GROUP BY {', '.join(k.split(' AS ')[-1] for k in keys)}" if keys else ""
        order = f" ORDER BY {', '.join(k.split(' AS ')[-1] for k in keys)}" if keys else ""
        sql = (
            f"SELECT {''.join(k + ', ' for k in keys)}sum(cnt) AS cnt, sum(errors) AS errors,"
            " sum(txn) AS txn, sum(dur_sum) AS dur_sum, min(dur_min) AS dur_min,"
            f" max(dur_max) AS dur_max{sketch} FROM {table(step)} WHERE {' AND '.join(conds)}"
            f"{group} HAVING cnt > 0{order} LIMIT {MAX_ROWS + 1}"
        )
        result = self._query(sql)
        if result.num_rows > MAX_ROWS:
            raise CubeQueryError(
                f"more than {MAX_ROWS} rows: group by fewer dimensions, filter, or use a"
                " coarser step"
            )
        return _rows(q, dims, result, quantiles)


def _rollup_name(q: CubeQuery, level: tuple[str, ...]) -> str:
    """What a total row sums over: the location dimensions the level dropped."""
    dropped = [d for d in q.group_by if d not in level]
    return "total over " + ", ".join(dropped)


def _rows(
    q: CubeQuery, dims: tuple[str, ...], t: pa.Table, quantiles: list[str]
) -> list[list[Any]]:
    """Result rows laid out as ``q``'s columns; totals leave dropped dimensions null."""
    values = measure_values(t, q.measures)
    n = t.num_rows
    columns: list[list[Any]] = [t.column("bucket").to_pylist()] if q.step else []
    columns += [t.column(d).to_pylist() if d in dims else [None] * n for d in q.group_by]
    columns += [values[m] for m in q.measures]
    return [list(row) for row in zip(*columns)]


def measure_values(t: pa.Table, measures: Sequence[str]) -> dict[str, list[float | None]]:
    """Each measure per row of a grouped result (``cnt`` ... ``merged`` columns)."""
    cnt = t.column("cnt").to_numpy().astype(np.float64)
    errors = t.column("errors").to_numpy().astype(np.float64)
    txn = t.column("txn").to_numpy().astype(np.float64)
    dur_sum = t.column("dur_sum").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        arrays = {
            "count": cnt,
            "errors": errors,
            "transactions": txn,
            "error_rate": errors / cnt,
            "sum": np.where(txn > 0, dur_sum, np.nan),
            "avg": dur_sum / txn,
            "min": _finite(t.column("dur_min").to_numpy()),
            "max": _finite(t.column("dur_max").to_numpy()),
        }
    quantiles = [m for m in measures if m in QUANTILES]
    if quantiles:
        merged = t.column("merged").combine_chunks()
        keys, counts = merged.field(0), merged.field(1)
        qs = grouped_quantiles(
            keys.offsets.to_numpy(),
            keys.values.to_numpy(),
            counts.values.to_numpy().astype(np.float64),
            [QUANTILES[m] for m in quantiles],
        )
        arrays.update({m: qs[:, i] for i, m in enumerate(quantiles)})
    out: dict[str, list[float | None]] = {}
    for m in measures:
        if m in ("count", "errors", "transactions"):
            out[m] = arrays[m].astype(np.int64).tolist()
        else:
            out[m] = _nan_none(arrays[m])
    return out


def _finite(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.where(np.isfinite(a), a, np.nan)


def _nan_none(a: np.ndarray[Any, Any]) -> list[float | None]:
    return [None if math.isnan(x) else float(x) for x in a.tolist()]
