"""The cube kept by the engine: measures, roll-ups, time series, and the merge laws."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.model import logs_from_rows
from vigil.query.cubequery import CubeQuery, CubeQueryError
from vigil.query.source import MetricNode
from vigil.store.cubestore import CubeStore
from vigil.store.dialect import EMBEDDED
from vigil.store.interface import StorageError
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore

from .conftest import Backend

T0 = 1_763_900_000  # s, a multiple of 10
_windows = itertools.count(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[SqlStore]:
    s = backend(tmp_path_factory.mktemp("cube"), StoragePolicy.from_files("", ""))
    rows: list[dict[str, Any]] = []
    for i in range(1200):
        host = f"web{i % 4}"
        rows.append(
            {
                "ts": (T0 + i) * 1000,
                "uid": i + 1,
                "kind": "end" if i % 2 else "atomic",
                "dc": "ams" if i % 4 < 2 else "fra",
                "cluster": "c1",
                "host": host,
                "app": "shop",
                "type": "URL",
                "name": "GET /cart" if i % 3 else "POST /pay",
                "status": 500 if i % 10 == 0 else 0,
                "duration_ms": float(i % 100 + 1),
            }
        )
    rows.append({"ts": T0 * 1000, "uid": 9999, "kind": "event", "host": "web0", "dc": "ams",
                 "cluster": "c1", "app": "shop", "type": "deploy", "name": "release"})  # fmt: skip
    rows.append({"ts": T0 * 1000, "uid": 9998, "kind": "begin", "host": "web0", "app": "shop"})
    s.logs.write(logs_from_rows(rows))
    yield s
    s.close()


def table(store: SqlStore, **kw: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
    q = CubeQuery(T0, T0 + 1200, **kw)
    result = store.cube.query(q)
    out = {}
    keys = len(result.columns) - len(q.measures) - (1 if q.rollup else 0)
    for row in result.rows:
        out[tuple(row[:keys]) + ((row[-1],) if q.rollup else ())] = dict(
            zip(q.measures, row[keys : keys + len(q.measures)])
        )
    return out


def test_counts_errors_and_durations_by_host(store: SqlStore) -> None:
    got = table(store, measures=("count", "errors", "min", "max", "avg"), group_by=("host",),
                filters={"type": ("URL",)})  # fmt: skip
    assert set(got) == {("web0",), ("web1",), ("web2",), ("web3",)}
    web0 = got[("web0",)]
    assert web0["count"] == 300 and web0["errors"] == 60  # i % 20 == 0
    assert web0["min"] == 1 and web0["max"] == 97


def test_quantiles_are_within_one_percent(store: SqlStore) -> None:
    (row,) = table(store, measures=("p50", "p99", "transactions")).values()
    durations = np.array([i % 100 + 1 for i in range(1200)], dtype=float)
    assert row["transactions"] == 1200
    assert row["p50"] == pytest.approx(np.quantile(durations, 0.5, method="lower"), rel=0.02)
    assert row["p99"] == pytest.approx(np.quantile(durations, 0.99, method="lower"), rel=0.02)


def test_events_count_but_have_no_duration(store: SqlStore) -> None:
    got = table(store, measures=("count", "transactions", "avg"), group_by=("type",))
    assert got[("deploy",)] == {"count": 1, "transactions": 0, "avg": None}


def test_rollup_totals_follow_the_location_hierarchy(store: SqlStore) -> None:
    got = table(store, measures=("count",), group_by=("dc", "host", "name"), rollup=True)
    assert got[("ams", "web0", "POST /pay", None)]["count"] == 100
    assert got[("ams", None, "POST /pay", "total over host")]["count"] == 200
    assert got[(None, None, "POST /pay", "total over dc, host")]["count"] == 400


def test_time_series_per_step(store: SqlStore) -> None:
    result = store.cube.query(
        CubeQuery(T0, T0 + 1200, measures=("count",), step=600, filters={"host": ("web1",)})
    )
    assert result.columns == ["ts", "count"]
    first = T0 - T0 % 600  # T0 is 200 s into a 600 s bucket
    assert result.rows == [(first, 100), (first + 600, 150), (first + 1200, 50)]


def test_a_range_is_read_in_whole_buckets_of_the_coarsest_fitting_table() -> None:
    day = CubeQuery(1_000_000_123, 1_000_000_123 + 86_400)  # "-24h": not whole hours
    assert day.table_step == 3600 and day.bounds == (999_997_200, 1_000_087_200)
    assert CubeQuery(0, 600).table_step == 10 and CubeQuery(0, 3600).table_step == 60
    assert CubeQuery(0, 86_400, step=7200).table_step == 3600


def test_bad_queries_name_the_problem() -> None:
    with pytest.raises(CubeQueryError, match="unknown measure 'p42'"):
        CubeQuery(0, 10, measures=("p42",))
    with pytest.raises(CubeQueryError, match="unknown dimension 'colour'"):
        CubeQuery(0, 10, group_by=("colour",))
    with pytest.raises(CubeQueryError, match="step must be a multiple of 10"):
        CubeQuery(0, 100, step=15)


_entry = st.fixed_dictionaries(
    {
        "second": st.integers(0, 59),
        "host": st.sampled_from(["a", "b", "c"]),
        "name": st.sampled_from(["x", "y"]),
        "status": st.sampled_from([0, 0, 500]),
        "duration_ms": st.floats(0, 10_000, allow_nan=False),
        "kind": st.sampled_from(["end", "atomic", "event"]),
    }
)


@settings(max_examples=25)
@given(st.lists(_entry, min_size=1, max_size=40), st.data())
def test_any_split_of_the_entries_gives_the_same_cube(
    store: SqlStore, entries: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Merge law: one insert, or the same entries split over inserts in any order."""
    whole, split = next(_windows) * 100_000 + T0, next(_windows) * 100_000 + T0

    def rows(base: int, part: list[tuple[int, dict[str, Any]]]) -> Any:
        return logs_from_rows(
            [
                {
                    **{k: v for k, v in e.items() if k != "second"},
                    "ts": (base + e["second"]) * 1000,
                    "uid": base * 100 + i,
                    "app": "merge",
                }
                for i, e in part
            ]  # fmt: skip
        )

    numbered = list(enumerate(entries))
    store.logs.write(rows(whole, numbered))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(numbered)), max_size=4)))
    parts = [numbered[a:b] for a, b in zip([0, *cuts], [*cuts, len(numbered)])]
    for part in data.draw(st.permutations(parts)):
        if part:
            store.logs.write(rows(split, part))
    measures = ("count", "errors", "transactions", "min", "max", "sum", "p50", "p99")

    def cube(base: int) -> list[tuple[Any, ...]]:
        q = CubeQuery(base, base + 60, measures=measures, group_by=("host", "name", "status"))
        return store.cube.query(q).rows

    one, many = cube(whole), cube(split)
    assert len(one) == len(many)
    for a, b in zip(one, many):
        assert a[:6] == b[:6]  # keys and exact counts; float sums may round differently
        for x, y in zip(a[6:], b[6:]):
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-9, abs=1e-9)


def test_cube_measures_are_graphite_paths(store: SqlStore) -> None:
    now = int(time.time())
    base = now - now % 10 - 60
    rows = [
        {
            "ts": (base + i) * 1000,
            "uid": 10**9 + i,
            "kind": "end",
            "app": "paths",
            "dc": "ams",
            "cluster": "c1",
            "host": f"h{i % 2}",
            "name": "GET /cart",
            "id": f"p{i}",
            "status": 0,
            "duration_ms": 10.0 * (i + 1),
        }  # fmt: skip
        for i in range(6)
    ]
    store.logs.write(logs_from_rows(rows))
    assert MetricNode("cube", False) in store.find("*")
    assert [n.path for n in store.find("cube.paths.*")] == ["cube.paths.GET_cart"]
    assert [n.path for n in store.find("cube.paths.GET_cart.ams.c1.*")] == [
        "cube.paths.GET_cart.ams.c1.h0",
        "cube.paths.GET_cart.ams.c1.h1",
    ]
    leaves = store.find("cube.paths.GET_cart.ams.c1.h0.p*")
    assert [n.path for n in leaves] == [
        f"cube.paths.GET_cart.ams.c1.h0.p{q}" for q in (50, 90, 99, 999)
    ]
    series = store.fetch(["cube.paths.GET_cart.ams.*.*.count"], base - 60, base + 60)
    assert [s.name for s in series] == [
        "cube.paths.GET_cart.ams.c1.h0.count",
        "cube.paths.GET_cart.ams.c1.h1.count",
    ]
    assert series[0].step == 10 and np.nansum(series[0].values) == 3
    (mx,) = store.fetch(["cube.paths.GET_cart.ams.c1.h1.max"], base - 60, base + 60)
    assert np.nanmax(mx.values) == 60.0


def test_retention_drops_old_cube_days(store: SqlStore) -> None:
    old = T0 - 30 * 86400  # past the 10 s cube's 7 days, within the 1 min cube's 90
    store.logs.write(logs_from_rows([{"ts": old * 1000, "uid": 77, "kind": "end", "id": "o"}]))
    q10 = CubeQuery(old - old % 10, old - old % 10 + 10, measures=("count",), step=10)
    q60 = CubeQuery(old - old % 60, old - old % 60 + 60, measures=("count",), step=60)
    assert store.cube.query(q10).rows == [(old - old % 10, 1)]
    assert store.cube.query(q60).rows == [(old - old % 60, 1)]
    store.sweep_retention(T0)
    assert store.cube.query(q10).rows == [] and store.cube.query(q60).rows == [(old - old % 60, 1)]


def test_a_failed_cube_insert_is_counted_and_later_batches_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inserted: list[str] = []

    def insert(table: str, rows: Any) -> None:
        if table == "vigil.cube_60" and "failed" not in inserted:
            inserted.append("failed")
            raise StorageError("engine down")
        inserted.append(table)

    cube = CubeStore(lambda sql: pa.table({}), lambda sql: None, insert)
    entries = logs_from_rows([{"ts": T0 * 1000, "uid": 1, "kind": "end", "duration_ms": 1.0}])
    cube.write(entries)
    cube.settle()
    cube.write(entries)
    cube.settle()
    assert cube.failures == 1 and "1 entries could not be counted" in caplog.text
    # The steps' inserts are independent: the others of the failed gathering are stored.
    tables = ["vigil.cube_10", "vigil.cube_60", "vigil.cube_3600", "vigil.cube_86400"]
    assert sorted(inserted) == sorted(["failed", *tables, *tables[:1], *tables[2:]])
    cube.close()


def test_whole_days_come_from_the_day_table_and_the_edges_from_hours() -> None:
    day = 1_763_856_000  # a UTC midnight
    assert CubeQuery(day, day + 86_400).segments() == [(86_400, day, day + 86_400)]
    assert CubeQuery(day + 3_600, day + 90_000).segments() == [(3_600, day + 3_600, day + 90_000)]
    assert CubeQuery(day - 7_200, day + 2 * 86_400 + 3_600).segments() == [
        (3_600, day - 7_200, day),
        (86_400, day, day + 2 * 86_400),
        (3_600, day + 2 * 86_400, day + 2 * 86_400 + 3_600),
    ]
    assert CubeQuery(day, day + 86_400, step=3_600).segments() == [(3_600, day, day + 86_400)]


def test_a_day_from_the_day_table_equals_the_same_entries_from_hours(store: SqlStore) -> None:
    day = T0 - T0 % 86_400
    measures = ("count", "errors", "min", "max", "p50", "p99")
    whole = CubeQuery(day, day + 86_400, measures=measures, group_by=("host", "name"))
    hours = CubeQuery(T0 - 3_600, T0 + 3_600, measures=measures, group_by=("host", "name"))
    assert whole.segments()[0][0] == 86_400
    assert {step for step, _, _ in hours.segments()} == {60, 3_600}
    assert store.cube.query(whole).rows == store.cube.query(hours).rows


def test_batches_of_the_same_keys_merge_to_one_row_per_key(store: SqlStore) -> None:
    """Every backend merges partial cubes of the same key (18.16 through states): one row each."""
    base = T0 - 2 * 86_400  # a day of its own, whole hours before and after
    entries = [
        {"host": f"h{h}", "name": f"n{n}", "second": 60 * m + h, "duration_ms": 1.5 + 7 * h + n * m}
        for h in range(4) for n in range(2) for m in range(3)
    ]  # fmt: skip
    for batch in range(5):
        store.logs.write(logs_from_rows([
            {"ts": (base + e["second"]) * 1000, "uid": 10**8 * (batch + 1) + i, "kind": "end",
             "app": "rows", "host": e["host"], "name": e["name"], "duration_ms": e["duration_ms"]}
            for i, e in enumerate(entries)
        ]))  # fmt: skip
    store.cube.settle()
    store.compact()

    def rows(step: int) -> int:
        sql = f"SELECT count() AS n FROM vigil.cube_{step} WHERE app = 'rows'"
        return int(store.cube.read(sql).column("n")[0].as_py())

    # Keys: 3 minutes (and 10 s buckets) x 4 hosts x 2 names; one hour, one day.
    counted = {step: rows(step) for step in (10, 60, 3_600, 86_400)}
    assert counted == {10: 24, 60: 24, 3_600: 8, 86_400: 8}
    measures = ("count", "min", "max", "sum", "p50", "p99")
    minutes = CubeQuery(base, base + 180, measures=measures, step=60,
                        filters={"app": ("rows",), "host": ("h0", "h3")})  # fmt: skip
    day = CubeQuery(base - base % 86_400, base - base % 86_400 + 86_400, measures=measures,
                    group_by=("name",), filters={"app": ("rows",)})  # fmt: skip
    assert day.segments()[0][0] == 86_400
    assert (store.cube.query(minutes).rows, store.cube.query(day).rows) == GOLDEN_MERGED
    empty = CubeQuery(base + 600, base + 660, measures=measures, filters={"app": ("rows",)})
    assert store.cube.query(empty).rows == []


# The queries of the test above as the embedded engine answers them: every backend must.
GOLDEN_MERGED = (
    [
        (1_763_727_180, 20, 1.5, 22.5, 240.0, 1.5067630358630413, 22.42224777916764),
        (1_763_727_240, 20, 1.5, 23.5, 250.0, 2.4842736738327003, 23.337348188479655),
        (1_763_727_300, 20, 1.5, 24.5, 260.0, 3.4903138713917636, 24.289795823965004),
    ],
    [
        ("n0", 60, 1.5, 22.5, 720.0, 8.415043540310299, 22.42224777916764),
        ("n1", 60, 1.5, 24.5, 780.0, 10.485866843149289, 24.289795823965004),
    ],
)


def test_plain_cube_rows_of_an_earlier_version_are_refused_where_states_are_kept() -> None:
    plain = pa.table({"type": ["Tuple(Array(Int32), Array(UInt64))"]})
    old_server = dataclasses.replace(EMBEDDED, simple_aggregates=False)
    cube = CubeStore(lambda sql: plain, lambda sql: None, lambda t, r: None, dialect=old_server)
    with pytest.raises(StorageError, match=r"vigil.cube_10 holds plain rows .*\(DROP TABLE"):
        cube.upgrade()
