"""The tables and materialized views of the point store, as SQL for ClickHouse engines.

Points arrive keyed (series id, retention class from storage-schemas,
method from storage-aggregation: ``series_keys`` works them out once per
series) and go to:

- ``points``: every point at full resolution, sorted by (series id, time),
  partitioned by (retention class, day) so that retention drops partitions;
- ``series``: one row per series (path, class, method), read by find and tags;
- ``rollup_<step>``: one table per coarser step, kept by the engine as data
  arrives, holding only the aggregate the series' method needs (the others
  stay zero and compress to nothing), plus the point count for xFilesFactor.

Timer sketches (``vigil.sketch`` bins) take the same route through their own
tables: ``sketches`` at full resolution and ``sketches_<step>`` per coarser
step, each bucket a ``sumMap`` state, so percentiles merge over hosts and time.
"""

from __future__ import annotations

from vigil.store.decimal import value_sql
from vigil.store.dialect import EMBEDDED, Dialect, sql_string
from vigil.store.retention import METHODS, StoragePolicy

DB = "vigil"

__all__ = ["DB", "sql_string"]


def in_conditions(filters: dict[str, tuple[str, ...]]) -> list[str]:
    """``field IN (...)`` per filter, ``status`` as integers, the rest as strings."""
    conds = []
    for field, values in filters.items():
        if field == "status":
            conds.append(f"status IN ({', '.join(str(int(v)) for v in values)})")
        else:
            conds.append(f"{field} IN ({', '.join(sql_string(v) for v in values)})")
    return conds


def partition_key(step: int) -> str:
    """Partitions per retention class and day (month for coarse steps) so retention drops them."""
    return "(cls, toYYYYMMDD(ts))" if step < 3600 else "(cls, toYYYYMM(ts))"


def create_statements(policy: StoragePolicy, d: Dialect = EMBEDDED, db: str = DB) -> list[str]:
    """Idempotent DDL for every table, then the views (recreated: the policy may have changed)."""
    settings = d.merge_tree_settings
    agg = d.aggregate_type
    stmts = [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.points (cls UInt8{d.codec('ZSTD')}, m UInt8{d.codec('ZSTD')},"
        f" id UInt64{d.codec('Delta, ZSTD')}, ts DateTime{d.codec('DoubleDelta, ZSTD')},"
        f" v Int64{d.codec('DoubleDelta, ZSTD')}, e Int8{d.codec('ZSTD')},"
        f" value Float64 ALIAS {value_sql(d)}{_RAW_TS if not d.view_subqueries else ''})"
        f" ENGINE = MergeTree PARTITION BY {partition_key(0)} ORDER BY (id, ts)"
        f" {settings}",
        f"CREATE TABLE IF NOT EXISTS {db}.series (id UInt64, path String, cls UInt8, m UInt8)"
        f" ENGINE = ReplacingMergeTree ORDER BY path {settings}",
        f"CREATE TABLE IF NOT EXISTS {db}.events (id UInt64, when {d.ms_type}, what String,"
        " tags Array(String), data String)"
        f" ENGINE = MergeTree PARTITION BY {d.ms_month('when')} ORDER BY (when, id)",
    ]
    for step in policy.rollup_steps():
        stmts.append(
            f"CREATE TABLE IF NOT EXISTS {db}.rollup_{step} (cls UInt8{d.codec('ZSTD')},"
            f" id UInt64{d.codec('Delta, ZSTD')}, ts DateTime{d.codec('DoubleDelta, ZSTD')},"
            f" cnt {agg('sum', 'UInt64')}{d.codec('T64, ZSTD')},"
            f" sum {agg('sum', 'Float64')}{d.codec('Delta, ZSTD')},"
            f" min {agg('min', 'Float64')}{d.codec('Delta, ZSTD')},"
            f" max {agg('max', 'Float64')}{d.codec('Delta, ZSTD')},"
            " last AggregateFunction(argMax, Float64, UInt32))"
            f" ENGINE = AggregatingMergeTree PARTITION BY {partition_key(step)} ORDER BY (id, ts)"
            f" {settings}"
        )
    for table, step in sketch_tables(policy).items():
        stmts.append(
            f"CREATE TABLE IF NOT EXISTS {db}.{table} (cls UInt8, id UInt64, ts DateTime,"
            " bins AggregateFunction(sumMap, Array(Int32), Array(Float64)))"
            f" ENGINE = AggregatingMergeTree PARTITION BY {partition_key(step)} ORDER BY (id, ts)"
            f" {settings}"
        )
    stmts += [
        f"CREATE TABLE IF NOT EXISTS {db}.sketches_in (cls UInt8, id UInt64, ts UInt32,"
        " keys Array(Int32), counts Array(Float64)) ENGINE = Null",
        f"CREATE TABLE IF NOT EXISTS {db}.sketch_series (id UInt64, path String, cls UInt8, m UInt8)"
        f" ENGINE = ReplacingMergeTree ORDER BY path {settings}",
    ]
    stmts += [d.drop_view(f"{db}.{view}") for view in view_names(policy)]
    stmts += _rollup_views(policy, d, db)
    for table, step in sketch_tables(policy).items():
        classes = policy.rollup_steps().get(step, list(range(len(policy.schemas))))
        bucket = f"toDateTime(intDiv(ts, {step}) * {step})" if step else "toDateTime(ts)"
        where = f"WHERE cls IN ({', '.join(map(str, classes))})"
        if d.view_subqueries:
            body = (
                f"SELECT cls, id, bucket AS ts, sumMapState(keys, counts) AS bins"
                f" FROM (SELECT cls, id, {bucket} AS bucket, keys, counts FROM {db}.sketches_in"
                f" {where}) GROUP BY cls, id, bucket"
            )
        else:
            body = (
                f"SELECT cls, id, {bucket} AS ts, sumMapState(keys, counts) AS bins"
                f" FROM {db}.sketches_in {where} GROUP BY cls, id, ts"
            )
        stmts.append(f"CREATE MATERIALIZED VIEW {db}.{table}_mv TO {db}.{table} AS {body}")
    return stmts


# A flat view cannot rename a bucket of ``ts`` without hiding ``ts``: it reads this copy.
_RAW_TS = ", raw_ts UInt32 MATERIALIZED toUInt32(ts)"


def _rollup_views(policy: StoragePolicy, d: Dialect, db: str) -> list[str]:
    """The view feeding each rollup: from points, or from the finer rollup that divides it."""
    stmts = []
    avg, total, low, high, last = range(len(METHODS))
    # A flat view (``d.view_subqueries`` missing) cannot read the ALIAS column.
    value = "value" if d.view_subqueries else value_sql(d)
    steps = policy.rollup_steps()
    for step, classes in steps.items():
        where = f"WHERE cls IN ({', '.join(map(str, classes))})"
        # 18.16 does not pass a view's rows on to the views of its target: flat views
        # (servers) all read points.
        source = _finer_rollup(steps, step) if d.view_subqueries else None
        if source is None:  # aggregate points
            state = d.aggregate_state
            select = (
                f"{d.aggregate_count()} AS cnt, {state('sum', value, f'm IN ({avg}, {total})')} AS sum,"
                f" {state('min', value, f'm = {low}')} AS min,"
                f" {state('max', value, f'm = {high}')} AS max,"
                f" argMaxStateIf({value}, raw_ts, m = {last}) AS last"
            )
            inner = f"cls, id, m, toUInt32(ts) AS raw_ts, value FROM {db}.points"
            raw_ts = "toUInt32(ts)"
            flat = f"FROM {db}.points", "raw_ts"
        else:  # merge the finer rollup's fresh rows: far fewer than points
            remerge = d.aggregate_remerge
            select = (
                f"{remerge('sum', 'cnt')} AS cnt, {remerge('sum', 'sum')} AS sum,"
                f" {remerge('min', 'min')} AS min, {remerge('max', 'max')} AS max,"
                " argMaxMergeState(last) AS last"
            )
            inner = f"cls, id, cnt, sum, min, max, last FROM {db}.rollup_{source}"
            raw_ts = "toUInt32(ts)"
            flat = f"FROM {db}.rollup_{source}", "toUInt32(ts)"
        if d.view_subqueries:
            body = (
                f"SELECT cls, id, bucket AS ts, {select}"
                f" FROM (SELECT toDateTime(intDiv({raw_ts}, {step}) * {step}) AS bucket, {inner}"
                f" {where}) GROUP BY cls, id, bucket"
            )
        else:
            source_table, seconds = flat
            body = (
                f"SELECT cls, id, toDateTime(intDiv({seconds}, {step}) * {step}) AS ts, {select}"
                f" {source_table} {where} GROUP BY cls, id, ts"
            )
        stmts.append(
            f"CREATE MATERIALIZED VIEW {db}.rollup_{step}_mv TO {db}.rollup_{step} AS {body}"
        )
    return stmts


def _finer_rollup(steps: dict[int, list[int]], step: int) -> int | None:
    """The coarsest finer rollup that can feed ``step`` (divides it, keeps all its classes)."""
    feeders = [
        finer
        for finer, classes in steps.items()
        if finer < step and step % finer == 0 and set(steps[step]) <= set(classes)
    ]
    return max(feeders, default=None)


def stored_tables(policy: StoragePolicy) -> list[str]:
    """Every table that keeps data (what compaction and disk accounting cover)."""
    return [
        "points",
        "series",
        "events",
        "logs",
        "cube_10",
        "cube_60",
        "cube_3600",
        "cube_86400",
        "error_occurrences",
        "error_fingerprints",
        "error_merges",
        "sketch_series",
        *(f"rollup_{step}" for step in policy.rollup_steps()),
        *sketch_tables(policy),
    ]


def sketch_tables(policy: StoragePolicy) -> dict[str, int]:
    """Sketch tables by name, with their bucket step (0: as written)."""
    return {"sketches": 0, **{f"sketches_{step}": step for step in policy.rollup_steps()}}


def view_names(policy: StoragePolicy) -> list[str]:
    """Every materialized view the policy needs."""
    return [f"rollup_{step}_mv" for step in policy.rollup_steps()] + [
        f"{table}_mv" for table in sketch_tables(policy)
    ]


# How each method reads a bucket from raw points.
RAW_AGGREGATE = {
    "average": "avg(value)",
    "sum": "sum(value)",
    "min": "min(value)",
    "max": "max(value)",
    "last": "argMax(value, ts)",
}


def rollup_aggregate(method: str, d: Dialect = EMBEDDED) -> str:
    """How ``method`` reads a bucket from a rollup table."""
    value = d.aggregate_value
    return {
        "average": f"{value('sum', 'sum')} / {value('sum', 'cnt')}",
        "sum": value("sum", "sum"),
        "min": value("min", "min"),
        "max": value("max", "max"),
        "last": "argMaxMerge(last)",
    }[method]
