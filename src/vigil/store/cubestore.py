"""The cube in the engine: partial cubes of every insert, merged by the engine and at query time.

The log entries stored are also gathered over a few batches
(``cubewriter``) and aggregated (``cube.aggregate``) into one partial cube
per step, inserted into ``cube_10``, ``cube_60``,
``cube_3600`` and ``cube_86400``. Each row holds, per (bucket, app, name,
dc, cluster, host, type, status): count, errors (status != 0),
transactions, duration sum/min/max, and the duration's DDSketch bins
(``vigil.sketch``) as plain sorted (keys, counts) arrays. The tables are
``AggregatingMergeTree`` with ``SimpleAggregateFunction`` columns, so the
engine merges rows of the same bucket and dimensions by sum, min, max and
key-wise sum: partial cubes (one per insert, per node, per shard) merge to
the same cube in any order, the aggregator/combiner split with the engine
as combiner.

Servers without ``SimpleAggregateFunction`` (18.16) keep ``AggregateFunction``
states instead: partial cubes go into ``cube_<step>_in`` (engine ``Null``),
whose materialized view turns each row into states (``sumState``,
``sumMapState`` ...) for the table, and reads take -Merge of them.

Queries without quantiles sum the counters in the engine. Quantiles read
every row in range as it lies (plain arrays, no aggregate state to build,
no sort) and group and merge them in numpy, or on servers with states take the
``sumMapMerge`` of each group; whole days of a range come from the 1-day
table, so a day of a group is one row (``CubeQuery.segments``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vigil.query.cubequery import (
    MAX_ROWS,
    QUANTILES,
    STEPS,
    CubeQuery,
    CubeQueryError,
    CubeResult,
)
from vigil.sketch import grouped_quantiles, run_quantiles
from vigil.store.cubewriter import CubeWriter
from vigil.store.dialect import EMBEDDED, Dialect
from vigil.store.interface import StorageError
from vigil.store.schema import in_conditions

log = logging.getLogger(__name__)

DB = "vigil"
_DIMS = "app, name, dc, cluster, host, type, status"
_BINS_TYPE = "Tuple(Array(Int32), Array(UInt64))"
# The measures of a cube row: how the engine merges each, and its type in a partial cube.
_MERGED = {
    "cnt": ("sum", "UInt64"),
    "errors": ("sum", "UInt64"),
    "txn": ("sum", "UInt64"),
    "dur_sum": ("sum", "Float64"),
    "dur_min": ("min", "Float64"),
    "dur_max": ("max", "Float64"),
    "bins": ("sumMap", _BINS_TYPE),
}
# The summed columns of a cube row, as query results name them too.
COUNTERS = tuple(c for c in _MERGED if c != "bins")
_COLUMNS = f"ts, {_DIMS}, {', '.join(_MERGED)}"
# Quantiles merge the bins of every row read; past this many rows a query is refused.
MAX_SKETCH_ROWS = 10_000_000
_ONE_BLOCK = f"max_block_size = {MAX_SKETCH_ROWS + 1}, preferred_block_size_bytes = {1 << 40}"


def table(step: int, db: str = DB) -> str:
    """The cube table of one step."""
    return f"{db}.cube_{step}"


def input_table(step: int, d: Dialect = EMBEDDED, db: str = DB) -> str:
    """Where partial cubes of one step are inserted: the table, or its states' view's input."""
    return table(step, db) if d.simple_aggregates else f"{table(step, db)}_in"


def _create(name: str, step: int, d: Dialect = EMBEDDED) -> str:
    partition = "toYYYYMMDD(ts)" if step < 3600 else "toYYYYMM(ts)"
    measures = ", ".join(f"{c} {d.aggregate_type(f, kind)}" for c, (f, kind) in _MERGED.items())
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ({_dimensions(d)}, {measures})"
        f" ENGINE = AggregatingMergeTree PARTITION BY {partition}"
        f" ORDER BY (ts, {_DIMS}) {d.merge_tree_settings}"
    )


def _dimensions(d: Dialect) -> str:
    low = d.short_string
    return (
        f"ts DateTime{d.codec('DoubleDelta, ZSTD')}, dc {low}, cluster {low}, host {low},"
        f" app {low}, type {low}, name {low}, status Int32"
    )


def _create_input(step: int, d: Dialect, db: str) -> list[str]:
    """A ``Null`` table taking partial cubes, and the view making them states of ``step``'s table."""
    measures = ", ".join(f"{c} {kind}" for c, (_, kind) in _MERGED.items())
    states = ", ".join(f"{d.aggregate_state(f, c)} AS {c}" for c, (f, _) in _MERGED.items())
    source = input_table(step, d, db)
    return [
        f"CREATE TABLE IF NOT EXISTS {source} ({_dimensions(d)}, {measures}) ENGINE = Null",
        # A partial cube has one row per key already; GROUP BY is what -State needs.
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {source}_mv TO {table(step, db)} AS"
        f" SELECT ts, {_DIMS}, {states} FROM {source} GROUP BY ts, {_DIMS}",
    ]


def create_statements(d: Dialect = EMBEDDED, db: str = DB) -> list[str]:
    """Idempotent DDL: one table per step (and its input on servers without simple aggregates).

    The views that fed older versions from the log table are dropped.
    """
    stmts = [_create(table(step, db), step, d) for step in STEPS]
    if not d.simple_aggregates:
        stmts += [stmt for step in STEPS for stmt in _create_input(step, d, db)]
    return stmts + [d.drop_view(f"{table(step, db)}_mv") for step in STEPS]


def merged_counters(d: Dialect = EMBEDDED) -> str:
    """The counters of the rows read, merged per group, named as ``COUNTERS``."""
    return ", ".join(f"{d.aggregate_value(_MERGED[c][0], c)} AS {c}" for c in COUNTERS)


class CubeStore:
    """Writes and queries of the cube tables over the engine connections of a ``SqlStore``.

    Batches are gathered, aggregated and inserted by a thread of their own
    (``cubewriter``), so the log table's next insert need not wait for the
    cube of the last one. Reads first wait for every batch written before
    them: a query sees all the entries stored before it began.
    """

    def __init__(
        self,
        query: Callable[[str], pa.Table],
        execute: Callable[[str], None],
        insert: Callable[[str, pa.Table], None],
        enabled: bool = True,
        dialect: Dialect = EMBEDDED,
    ) -> None:
        self._query = query
        self._d = dialect
        self._execute = execute
        self.enabled = enabled
        self._writer = CubeWriter(
            lambda step, rows: insert(input_table(step, dialect), rows), self._prepare_writes
        )

    def upgrade(self) -> None:
        """Bring tables of older versions to this layout, saying so in the log.

        Tables that kept the bins as a ``sumMap`` aggregate state are rebuilt
        with plain arrays (the same sums); a 1-day table created next to
        existing hours is filled from them. On a server that keeps states,
        plain rows of an earlier version are refused (they cannot take states).
        """
        for step in STEPS:
            sql = (
                "SELECT type FROM system.columns"
                f" WHERE database = '{DB}' AND table = 'cube_{step}' AND name = 'bins'"
            )
            kind = self._query(sql).column("type").to_pylist()
            states = bool(kind) and str(kind[0]).startswith("AggregateFunction")
            if self._d.simple_aggregates and states:
                self._rebuild(step)
            elif kind and not self._d.simple_aggregates and not states:
                raise StorageError(
                    f"{table(step)} holds plain rows of an earlier Vigil, which this server"
                    " (without SimpleAggregateFunction) keeps as aggregate states: drop the"
                    " cube tables (DROP TABLE vigil_local.cube_* on every server of a cluster,"
                    " vigil.cube_* on one server; the cube starts empty) and start again"
                )
        day, hour = table(STEPS[-1]), table(STEPS[-2])
        if self._count(day) == 0 and (rows := self._count(hour)):
            log.warning("cube: filling %s from the %d rows of %s", day, rows, hour)
            bucket = f"toDateTime(intDiv(toUInt32(ts), {STEPS[-1]}) * {STEPS[-1]})"
            self._execute(
                f"INSERT INTO {input_table(STEPS[-1], self._d)} ({_COLUMNS}) SELECT {bucket} AS day,"
                f" {_DIMS}, {merged_counters(self._d)}, {self._d.aggregate_value('sumMap', 'bins')}"
                f" FROM {hour} GROUP BY day, {_DIMS}"
            )

    def _count(self, name: str) -> int:
        return int(self._query(f"SELECT count() AS n FROM {name}").column("n")[0].as_py())

    def _rebuild(self, step: int) -> None:
        old, new = table(step), f"{table(step)}_rebuild"
        log.warning("cube: rebuilding %s with plain sketch bins (%d rows)", old, self._count(old))
        self._execute(f"DROP TABLE IF EXISTS {new} SYNC")
        self._execute(_create(new, step, self._d))
        self._execute(
            f"INSERT INTO {new} ({_COLUMNS}) SELECT ts, {_DIMS}, {', '.join(COUNTERS)},"
            f" finalizeAggregation(bins) FROM {old}"
        )
        self._execute(f"RENAME TABLE {old} TO {old}_old, {new} TO {old}")
        self._execute(self._d.drop_table(f"{old}_old"))

    def _prepare_writes(self) -> None:
        # A partial cube has one row per sort key already: merging each insert
        # as if by a merge (the engine's default) tripled the insert's cost.
        # Set on the writer thread's own connection, which only writes the cube.
        if self._d.optimize_on_insert:
            self._execute("SET optimize_on_insert = 0")

    @property
    def failures(self) -> int:
        """Gatherings of entries the cube could not count (each logged)."""
        return self._writer.failures

    def write(self, entries: pa.Table) -> None:
        """Add the transactions and events of stored ``LOGS_SCHEMA`` entries to the cube."""
        if self.enabled:
            self._writer.write(entries)

    def settle(self) -> None:
        """Wait until every batch written so far is in the cube."""
        self._writer.settle()

    def read(self, sql: str) -> pa.Table:
        """Run a query over the cube tables once the batches written so far are in them."""
        self.settle()
        return self._query(sql)

    def close(self) -> None:
        """Count what is pending, then stop the writer thread."""
        self._writer.close()

    def query(self, q: CubeQuery) -> CubeResult:
        """The measures of ``q`` per group (and per step bucket), roll-up totals after."""
        self.settle()
        columns = (["ts"] if q.step else []) + list(q.group_by) + list(q.measures)
        if q.rollup:
            columns.append("rollup")
        rows: list[tuple[Any, ...]] = []
        for level in q.hierarchy_levels():
            n, values = self._level(q, level)
            if q.rollup:
                values.append([None if level == q.group_by else _rollup_name(q, level)] * n)
            rows += zip(*values)
        return CubeResult(columns, rows)

    def _level(self, q: CubeQuery, dims: tuple[str, ...]) -> tuple[int, list[list[Any]]]:
        """Groups by ``dims``, and their columns: group keys as ``q.group_by`` lays them out, then measures."""
        keys = list(dims)
        if q.step:
            keys.insert(0, f"toUInt32(intDiv(toUInt32(ts), {q.step}) * {q.step}) AS bucket")
        names = [k.split(" AS ")[-1] for k in keys]
        levels = [QUANTILES[m] for m in q.measures if m in QUANTILES]
        source = _source(q)
        select = "".join(k + ", " for k in keys)
        order = f" ORDER BY {', '.join(names)}" if keys else ""
        if not levels or not self._d.simple_aggregates:
            # Bins kept as states merge per group in the engine (sumMapMerge).
            bins = f", {self._d.aggregate_value('sumMap', 'bins')} AS bins" if levels else ""
            group = f" GROUP BY {', '.join(names)}" if keys else ""
            sql = (
                f"SELECT {select}{merged_counters(self._d)}{bins} FROM {source}{group}"
                f" HAVING cnt > 0{order}"
            )
            result = self._query(f"{sql} LIMIT {MAX_ROWS + 1}")
            groups = {k: _values(result.column(k)) for k in names}
            n, counters = result.num_rows, _counters(result)
            quantiles = merged_quantiles(result.column("bins"), levels) if levels else None
        else:
            # Grouped here, not by the engine's ORDER BY: sorting rows that carry
            # their bins cost the engine more than the whole merge costs numpy.
            # One block, so one Arrow chunk: the columns are used whole, and
            # chunks (of ~1 MB) would be copied together.
            read = "".join(c + ", " for c in counters_read(q.measures))
            sql = f"SELECT {select}{read}bins FROM {source} LIMIT {MAX_SKETCH_ROWS + 1}"
            result = self._query(f"SELECT * FROM ({sql} SETTINGS {_ONE_BLOCK})")
            if result.num_rows > MAX_SKETCH_ROWS:
                raise CubeQueryError(
                    f"quantiles over more than {MAX_SKETCH_ROWS} cube rows: filter, shorten"
                    " the range, or ask for measures without quantiles"
                )
            n, groups, counters, quantiles = _merge_groups(result, names, levels)
        if n > MAX_ROWS:
            raise CubeQueryError(
                f"more than {MAX_ROWS} rows: group by fewer dimensions, filter, or use a"
                " coarser step"
            )
        values = measure_values(counters, quantiles, q.measures)
        columns: list[list[Any]] = [groups["bucket"]] if q.step else []
        columns += [groups[d] if d in dims else [None] * n for d in q.group_by]
        columns += [values[m] for m in q.measures]
        return n, columns


def _source(q: CubeQuery) -> str:
    """The cube rows of ``q``'s range and filters, from each table of its segments."""
    filters = in_conditions(q.filters)
    parts = []
    for step, start, end in q.segments():
        conds = [f"ts >= toDateTime({start})", f"ts < toDateTime({end})", *filters]
        parts.append(f"SELECT {_COLUMNS} FROM {table(step)} WHERE {' AND '.join(conds)}")
    return f"({' UNION ALL '.join(parts)})"


def _rollup_name(q: CubeQuery, level: tuple[str, ...]) -> str:
    """What a total row sums over: the location dimensions the level dropped."""
    dropped = [d for d in q.group_by if d not in level]
    return "total over " + ", ".join(dropped)


Counters = dict[str, npt.NDArray[Any]]
_REDUCE = {"dur_min": np.minimum, "dur_max": np.maximum}


def _counters(t: pa.Table) -> Counters:
    return {m: t.column(m).to_numpy() for m in COUNTERS}


def _merge_groups(
    t: pa.Table, keys: list[str], levels: list[float]
) -> tuple[int, dict[str, list[Any]], Counters, npt.NDArray[np.float64]]:
    """Rows merged per group of ``keys``: (groups, key values, counters, quantiles per level).

    Groups come in the order of their keys, as ``ORDER BY keys`` gives them.
    """
    n = t.num_rows
    ranks, distinct = zip(*(_ranks(t.column(k)) for k in keys)) if keys else ((), ())
    rows = np.lexsort(ranks[::-1]) if keys else np.arange(n)
    changed = np.zeros(n, dtype=bool)
    changed[:1] = True
    for rank in ranks:
        ordered = rank[rows]
        changed[1:] |= ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(changed)
    counters = {
        m: _REDUCE.get(m, np.add).reduceat(t.column(m).to_numpy()[rows], starts)
        if n
        else np.empty(0)
        for m in COUNTERS
        if m in t.column_names
    }
    bins = _whole(t.column("bins"))
    keys_list, counts_list = bins.field(0), bins.field(1)
    offsets = keys_list.offsets.to_numpy()
    quantiles = run_quantiles(
        offsets - offsets[0],
        pc.list_flatten(keys_list).to_numpy(),
        pc.list_flatten(counts_list).to_numpy(),
        rows,
        starts,
        levels,
    )
    first = rows[starts]
    groups = {k: values[rank[first]].tolist() for k, rank, values in zip(keys, ranks, distinct)}
    return len(starts), groups, counters, quantiles


def _ranks(column: pa.ChunkedArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """Each row's rank among the column's distinct values (in the engine's order), and those values.

    >>> rank, values = _ranks(pa.chunked_array([["b", "a", "b"]]))
    >>> rank.tolist(), values.tolist()
    ([1, 0, 1], ['a', 'b'])
    """
    encoded = pc.dictionary_encode(_whole(column))
    order = pc.array_sort_indices(encoded.dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    values = np.array(encoded.dictionary.take(order).to_pylist(), dtype=object)
    return rank[encoded.indices.to_numpy()], values


def _whole(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is (combining copies even one)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _values(column: pa.ChunkedArray) -> list[Any]:
    """A result column as Python values (strings through their distinct values: faster)."""
    rank, values = _ranks(column)
    result: list[Any] = values[rank].tolist()
    return result


def merged_quantiles(merged: pa.ChunkedArray, levels: Sequence[float]) -> npt.NDArray[np.float64]:
    """Quantiles per row of a ``sumMap(bins)`` result column (sorted keys, their counts)."""
    column = merged.combine_chunks()
    keys, counts = column.field(0), column.field(1)
    return grouped_quantiles(
        keys.offsets.to_numpy(),
        keys.values.to_numpy(),
        counts.values.to_numpy().astype(np.float64),
        list(levels),
    )


# Each measure other than quantiles: the counters it reads, and how it follows from them.
_MEASURES: dict[str, tuple[tuple[str, ...], Callable[[Counters], npt.NDArray[Any]]]] = {
    "count": (("cnt",), lambda c: c["cnt"]),
    "errors": (("errors",), lambda c: c["errors"]),
    "transactions": (("txn",), lambda c: c["txn"]),
    "error_rate": (("cnt", "errors"), lambda c: c["errors"] / c["cnt"]),
    "sum": (("txn", "dur_sum"), lambda c: np.where(c["txn"] > 0, c["dur_sum"], np.nan)),
    "avg": (("txn", "dur_sum"), lambda c: c["dur_sum"] / c["txn"]),
    "min": (("dur_min",), lambda c: _finite(c["dur_min"])),
    "max": (("dur_max",), lambda c: _finite(c["dur_max"])),
}
_COUNTS = ("count", "errors", "transactions")


def counters_read(measures: Sequence[str]) -> list[str]:
    """The counters that ``measures`` are computed from, in ``COUNTERS`` order."""
    read = {c for m in measures if m in _MEASURES for c in _MEASURES[m][0]}
    return [c for c in COUNTERS if c in read]


def measure_values(
    counters: Counters, quantiles: npt.NDArray[np.float64] | None, measures: Sequence[str]
) -> dict[str, list[float | None]]:
    """Each measure per group, from summed counters and quantiles (a column per quantile asked).

    ``counters`` needs those of ``counters_read(measures)`` only.
    """
    asked = [m for m in measures if m in QUANTILES]
    out: dict[str, list[float | None]] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for m in measures:
            if m in QUANTILES:
                assert quantiles is not None, "quantiles asked but not given"
                out[m] = _nan_none(quantiles[:, asked.index(m)])
            elif m in _COUNTS:
                out[m] = _MEASURES[m][1](counters).astype(np.int64).tolist()
            else:
                out[m] = _nan_none(_MEASURES[m][1](counters))
    return out


def _finite(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.where(np.isfinite(a), a, np.nan)


def _nan_none(a: npt.NDArray[Any]) -> list[float | None]:
    values: list[float | None] = a.astype(np.float64).tolist()
    if np.isnan(a).any():
        values = [None if math.isnan(x) else x for x in values]  # type: ignore[arg-type]
    return values
