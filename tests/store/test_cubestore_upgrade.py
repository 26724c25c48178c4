"""A data directory whose cube an older version kept (sumMap states, views) opens and answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import chdb
import pytest

from vigil.query.cubequery import CubeQuery
from vigil.sketch import keys_of
from vigil.store.chdb_engine import open_embedded
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore

HOUR = 1_763_899_200  # a whole hour
DAY = HOUR - HOUR % 86400
DURATIONS = [10.0, 20.0, 20.0, 400.0]


def old_cube(engine: Path) -> None:
    """The cube tables, a view and a row per step as the version before the 1-day table kept them."""
    conn = chdb.connect(str(engine))  # type: ignore[no-untyped-call]
    conn.query("CREATE DATABASE IF NOT EXISTS vigil")
    keys = ", ".join(str(k) for k in sorted(set(keys_of(DURATIONS).tolist())))
    counts = "1, 2, 1"
    for step in (10, 60, 3600):
        conn.query(
            f"CREATE TABLE vigil.cube_{step} (ts DateTime, dc LowCardinality(String),"
            " cluster LowCardinality(String), host LowCardinality(String),"
            " app LowCardinality(String), type LowCardinality(String), name LowCardinality(String),"
            " status Int32, cnt SimpleAggregateFunction(sum, UInt64),"
            " errors SimpleAggregateFunction(sum, UInt64), txn SimpleAggregateFunction(sum, UInt64),"
            " dur_sum SimpleAggregateFunction(sum, Float64),"
            " dur_min SimpleAggregateFunction(min, Float64),"
            " dur_max SimpleAggregateFunction(max, Float64),"
            " bins AggregateFunction(sumMap, Array(Int32), Array(UInt64)))"
            " ENGINE = AggregatingMergeTree PARTITION BY toYYYYMMDD(ts)"
            " ORDER BY (ts, app, name, dc, cluster, host, type, status)"
        )
        conn.query(
            f"INSERT INTO vigil.cube_{step} SELECT toDateTime({HOUR}), 'ams', 'c1', 'web1', 'shop',"
            " 'URL', 'GET /cart', 0, 4, 0, 4, 450.0, 10.0, 400.0,"
            f" sumMapState(CAST([{keys}], 'Array(Int32)'), CAST([{counts}], 'Array(UInt64)'))"
            " FROM numbers(1)"
        )
    conn.query(
        "CREATE MATERIALIZED VIEW vigil.cube_60_mv TO vigil.cube_60 AS SELECT * FROM vigil.cube_10"
    )
    conn.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    data = tmp_path_factory.mktemp("old")
    (data / "engine").mkdir()
    old_cube(data / "engine")
    s = open_embedded(data, StoragePolicy.from_files("", ""))
    yield s
    s.close()


def test_old_tables_are_rebuilt_with_the_same_sums_and_sketches(store: SqlStore) -> None:
    for start, end, step in [
        (HOUR, HOUR + 10, 10),
        (HOUR, HOUR + 60, 60),
        (HOUR, HOUR + 3600, 3600),
    ]:
        q = CubeQuery(start, end, measures=("count", "max", "p50", "p99"), step=step)
        ((ts, count, mx, p50, p99),) = store.cube.query(q).rows
        assert (ts, count, mx) == (HOUR, 4, 400.0)
        # DDSketch ranks: p50 and p99 of 4 values are the 2nd and 3rd smallest
        assert p50 == pytest.approx(20.0, rel=0.01) and p99 == pytest.approx(20.0, rel=0.01)
    types = store._query(
        "SELECT name, type FROM system.columns WHERE database = 'vigil' AND name = 'bins'"
        " AND table LIKE 'cube_%' ORDER BY name"
    )
    assert all(
        str(t).startswith("SimpleAggregateFunction(sumMap")
        for t in types.column("type").to_pylist()
    )


def test_the_day_table_is_filled_from_the_hours(store: SqlStore) -> None:
    q = CubeQuery(DAY, DAY + 86400, measures=("count", "p50"), step=86400)
    ((ts, count, p50),) = store.cube.query(q).rows
    assert (ts, count) == (DAY, 4) and p50 == pytest.approx(20.0, rel=0.01)


def test_the_old_views_are_gone(store: SqlStore) -> None:
    views = store._query(
        "SELECT name FROM system.tables WHERE database = 'vigil' AND engine = 'MaterializedView'"
        " AND name LIKE 'cube%'"
    )
    assert views.num_rows == 0
