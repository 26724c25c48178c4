"""The point store on the real embedded engine: writes, rollups, reads, find, tags, events, retention."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vigil.model import POINTS_SCHEMA
from vigil.store.retention import StoragePolicy, parse_aggregation, parse_schemas
from vigil.store.sqlstore import SqlStore

from .conftest import Backend

NOW = 1_800_000_000  # a fixed "now", on a day boundary + 0 (divisible by 3600)

SCHEMAS = """
[short]
pattern = ^short\\.
retentions = 10s:1d,1m:7d

[default]
pattern = .*
retentions = 10s:7d,1m:90d,1h:5y
"""
AGGREGATION = """
[max]
pattern = \\.max$
aggregationMethod = max

[sum]
pattern = \\.count$
aggregationMethod = sum

[last]
pattern = \\.last$
aggregationMethod = last

[default]
pattern = .*
aggregationMethod = average
"""


def points(rows: list[tuple[str, int, float]]) -> pa.Table:
    paths, ts, values = zip(*rows) if rows else ((), (), ())
    return pa.table(
        [pa.array(paths, pa.string()), pa.array(ts, pa.uint32()), pa.array(values, pa.float64())],
        schema=POINTS_SCHEMA,
    )


@pytest.fixture
def store(tmp_path: Path, backend: Backend) -> Iterator[SqlStore]:
    policy = StoragePolicy(parse_schemas(SCHEMAS), parse_aggregation(AGGREGATION))
    s = backend(tmp_path, policy)
    s.clock = lambda: float(NOW)
    yield s
    s.close()


def test_fetch_reads_points_at_the_first_archive_step(store: SqlStore) -> None:
    store.write_points(
        points([("a.b", NOW - 60, 1.0), ("a.b", NOW - 50, 2.0), ("a.b", NOW - 20, 4.0)])
    )
    [s] = store.fetch(["a.b"], NOW - 60, NOW)
    assert (s.name, s.start, s.step) == ("a.b", NOW - 60, 10)
    assert s.as_list() == [1.0, 2.0, None, None, 4.0, None]


def test_points_within_one_step_are_aggregated_by_the_method(store: SqlStore) -> None:
    store.write_points(
        points(
            [
                ("x.max", NOW - 10, 1.0),
                ("x.max", NOW - 5, 7.0),
                ("x.avg", NOW - 10, 1.0),
                ("x.avg", NOW - 5, 2.0),
            ]
        )
    )
    by_name = {s.name: s.as_list() for s in store.fetch(["x.*"], NOW - 10, NOW)}
    assert by_name == {"x.avg": [1.5], "x.max": [7.0]}


def test_old_ranges_read_the_rollup_with_each_method(store: SqlStore) -> None:
    base = NOW - 30 * 86400  # beyond the 7 d of the 10 s archive
    rows = []
    for name in ("m.max", "m.count", "m.avg", "m.last"):
        rows += [(name, base + i * 10, float(i)) for i in range(12)]  # two minutes
    store.write_points(points(rows))
    got = {s.name: (s.step, s.as_list()) for s in store.fetch(["m.*"], base, base + 120)}
    assert got == {
        "m.avg": (60, [2.5, 8.5]),
        "m.count": (60, [15.0, 51.0]),
        "m.last": (60, [5.0, 11.0]),
        "m.max": (60, [5.0, 11.0]),
    }


def test_late_points_merge_into_the_rollup(store: SqlStore) -> None:
    base = NOW - 30 * 86400
    store.write_points(points([("late.count", base, 1.0)]))
    store.write_points(points([("late.count", base + 30, 2.0)]))
    [s] = store.fetch(["late.count"], base, base + 60)
    assert s.as_list() == [3.0]


def test_schema_decides_the_step(store: SqlStore) -> None:
    start = NOW - 2 * 86400  # past short's 1 d, within default's 7 d
    store.write_points(points([("short.a", start, 1.0), ("long.a", start, 1.0)]))
    steps = {s.name: s.step for s in store.fetch(["short.a", "long.a"], start, start + 600)}
    assert steps == {"short.a": 60, "long.a": 10}


def test_find_lists_branches_and_leaves_one_level_deep(store: SqlStore) -> None:
    store.write_points(
        points(
            [(p, NOW - 10, 1.0) for p in ("s.web1.cpu", "s.web2.cpu", "s.web2", "s.db1.cpu", "t.x")]
        )
    )
    nodes = [(n.path, n.is_leaf) for n in store.find("s.*")]
    assert nodes == [("s.db1", False), ("s.web1", False), ("s.web2", False), ("s.web2", True)]
    assert [n.path for n in store.find("s.web{1,2}.cpu")] == ["s.web1.cpu", "s.web2.cpu"]
    assert [n.path for n in store.find("s.web[2-9]")] == ["s.web2", "s.web2"]
    assert [n.path for n in store.find("*")] == ["s", "t"]


def test_tagged_series_are_normalised_and_queried_by_tags(store: SqlStore) -> None:
    store.write_points(
        points([("cpu;host=b;dc=x", NOW - 10, 1.0), ("cpu;dc=y;host=a", NOW - 10, 2.0)])
    )
    assert store.tagged(["dc=x"]) == ["cpu;dc=x;host=b"]
    assert store.tagged(["name=cpu", "host=~[ab]"]) == ["cpu;dc=x;host=b", "cpu;dc=y;host=a"]
    assert store.tagged(["host!=a"]) == ["cpu;dc=x;host=b"]
    assert store.tag_names("", [], 10) == ["dc", "host", "name"]
    assert store.tag_values("host", "", ["dc=y"], 10) == ["a"]
    [s] = store.fetch(["cpu;host=b;dc=x"], NOW - 10, NOW)
    assert s.tags == {"name": "cpu", "dc": "x", "host": "b"}


def test_events_round_trip_and_filter_by_tag(store: SqlStore) -> None:
    store.write_event(NOW - 100, "deploy web 1.2", ["deploy", "web"], "sha abc")
    store.write_event(NOW - 50, "incident", ["incident"], "")
    [e] = store.events(NOW - 200, NOW, ["deploy"])
    assert (e.when, e.what, e.tags, e.data) == (
        NOW - 100,
        "deploy web 1.2",
        ("deploy", "web"),
        "sha abc",
    )
    assert [e.what for e in store.events(NOW - 200, NOW)] == ["deploy web 1.2", "incident"]
    assert store.events(NOW - 40, NOW) == []


def test_retention_drops_whole_partitions_that_expired(store: SqlStore) -> None:
    old = NOW - 3 * 86400  # past short's 1 d raw retention, within default's 7 d
    store.write_points(
        points([("short.a", old, 1.0), ("long.a", old, 1.0), ("short.a", NOW - 10, 2.0)])
    )
    assert store.sweep_retention(NOW) >= 1
    got = {s.name: np.nansum(s.values) for s in store.fetch(["short.a", "long.a"], old, old + 10)}
    # short.a's raw day is gone but its 1 m rollup (kept 7 d) still answers.
    assert got["long.a"] == 1.0
    [recent] = store.fetch(["short.a"], NOW - 10, NOW)
    assert recent.as_list() == [2.0]


def test_a_range_wider_than_every_retention_reads_the_coarsest_archive(store: SqlStore) -> None:
    store.write_points(points([("w.a", NOW - 3600, 5.0)]))
    [s] = store.fetch(["w.a"], NOW - 10 * 365 * 86400, NOW)
    assert s.step == 3600
    assert np.nanmax(s.values) == 5.0


def test_writes_are_visible_to_readers_on_other_threads(store: SqlStore) -> None:
    import threading

    store.write_points(points([("t.a", NOW - 10, 3.0)]))
    seen: list[list[float | None]] = []
    thread = threading.Thread(
        target=lambda: seen.append(store.fetch(["t.a"], NOW - 10, NOW)[0].as_list())
    )
    thread.start()
    thread.join()
    assert seen == [[3.0]]


def test_compression_keeps_points_small(store: SqlStore) -> None:
    if not store.dialect.codecs or store._shards:
        pytest.skip("column codecs decide the size; measured on one engine that has them")
    n_series, n_steps = 200, 360
    rng = np.random.default_rng(1)
    walk = np.round(np.cumsum(rng.normal(0, 1, (n_series, n_steps)), axis=1), 2)
    paths = np.repeat([f"c.s{i}" for i in range(n_series)], n_steps)
    ts = np.tile(NOW - 3600 + 10 * np.arange(n_steps), n_series)
    store.write_points(
        pa.table(
            [pa.array(paths), pa.array(ts, pa.uint32()), pa.array(walk.ravel())],
            schema=POINTS_SCHEMA,
        )
    )
    store._conn().execute("OPTIMIZE TABLE vigil.points FINAL")
    t = store._query(
        "SELECT sum(data_compressed_bytes) AS b, sum(rows) AS r FROM system.parts"
        " WHERE database = 'vigil' AND table = 'points' AND active"
    ).to_pylist()[0]
    assert t["r"] == n_series * n_steps
    # Decimal mantissas take ~1.7 B/point here; float64 bits with Delta+ZSTD took ~2.7.
    assert t["b"] / t["r"] < 2.2


del time


def test_timer_percentiles_merge_sketches_over_hosts_and_coarser_steps(store: SqlStore) -> None:
    from vigil.sketch import SKETCH_SCHEMA, bins_of

    rng = np.random.default_rng(7)
    base = NOW - 3600
    rows, samples = [], []
    for host in range(3):
        for t in range(6):
            values = rng.exponential(100, 500) * (host + 1)
            samples.append(values)
            keys, counts = bins_of(values, np.ones(len(values)))
            rows.append(
                (f"stats.timers.web{host}.lat", base + 10 * t, keys.tolist(), counts.tolist())
            )
    paths, ts, keys, counts = zip(*rows)
    store.write_sketches(pa.table(
        [pa.array(paths), pa.array(ts, pa.uint32()), pa.array(keys, pa.list_(pa.int32())),
         pa.array(counts, pa.list_(pa.float64()))], schema=SKETCH_SCHEMA,
    ))  # fmt: skip
    exact = np.quantile(np.concatenate(samples), 0.99, method="lower")
    # A range old enough to read the 1-minute sketch rollup: one bucket holds all six flushes.
    store.clock = lambda: float(NOW + 30 * 86400)
    coarse = store.timer_quantile("stats.timers.*.lat", base, base + 60, 0.99)
    assert coarse is not None and coarse.step == 60
    assert abs(coarse.values[0] - exact) / exact < 0.01
    store.clock = lambda: float(NOW)
    fine = store.timer_quantile("stats.timers.web0.lat", base, base + 60, 0.5)
    assert fine is not None and fine.step == 10 and not np.isnan(fine.values).any()
    assert store.timer_quantile("stats.timers.nothing", base, base + 60, 0.5) is None


def test_compact_merges_parts_and_usage_reports_them(store: SqlStore, backend: Backend) -> None:
    for i in range(3):
        store.write_points(points([(f"u.s{j}", NOW - 100 + 10 * i, float(j)) for j in range(50)]))
    # Each insert makes a part on every shard (50 series reach them all); compaction one each.
    assert store.usage()["points"]["parts"] == 3 * backend.shards
    assert "points" in store.compact()
    usage = store.usage()
    assert usage["points"] == {
        "rows": 150,
        "parts": backend.shards,
        "bytes_on_disk": usage["points"]["bytes_on_disk"],
    }
    assert usage["series"]["rows"] == 50


def test_many_globs_in_one_fetch_match_as_each_glob_alone(store: SqlStore) -> None:
    # an alert round fetches thousands of patterns at once; past MANY_GLOBS they are one scan
    paths = [f"svc{i}.host{j}.{m}" for i in range(6) for j in range(4) for m in ("cpu", "mem")]
    store.write_points(
        points([(p, NOW - 10, 1.0) for p in paths] + [("svc1.x;dc=a", NOW - 10, 1.0)])
    )
    globs = [f"svc{i}.host{{0,1}}.cpu" for i in range(6)] + [f"svc{i}.*.m?m" for i in range(6)]
    globs += ["svc[23].host3.*", "svc5.host[!0].cpu", "nothing.*", "svc1.x;dc=a"] * 2
    one_by_one = sorted({s.name for g in globs for s in store.fetch([g], NOW - 60, NOW)})
    together = [s.name for s in store.fetch(globs, NOW - 60, NOW)]
    assert len(globs) > 16 and together == one_by_one
