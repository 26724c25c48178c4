"""Cube on a ClickHouse server: table rows and query latency after many batches of the same keys.

Run from the repository root (needs ``clickhouse-server``, as ``make test`` installs)::

    .venv/bin/python bench/cube_server.py               # 20 batches, ~1 minute
    .venv/bin/python bench/cube_server.py --batches 5 --hosts 20

Stores ``--batches`` batches of log entries on a fresh clickhouse-server,
each batch one ``end`` transaction per host, name and minute of one hour
(so every batch adds to the same cube keys), then times ``/api/cube``
shapes over that hour (host x name: counters, then with p99) before and
after ``compact()``, and counts the rows of the cube tables
(``system.parts``). The embedded engine gets the same run for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from servers import REPO

sys.path.insert(0, str(REPO))  # the real-server helpers of the tests: one way to start them
from tests.clickhouse import ClickHouseServer

from vigil.model import LOG_DEFAULTS, LOGS_SCHEMA
from vigil.query.cubequery import CubeQuery
from vigil.store.backends import open_server
from vigil.store.chdb_engine import open_embedded
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore

HOUR = 1_763_899_200  # a whole hour (UTC)
SHAPES = {
    "host x name, counters": CubeQuery(
        HOUR, HOUR + 3600, measures=("count", "errors", "max"), group_by=("host", "name")
    ),
    "host x name, p99": CubeQuery(
        HOUR, HOUR + 3600, measures=("count", "p99"), group_by=("host", "name")
    ),
    "per minute, p99": CubeQuery(HOUR, HOUR + 3600, measures=("count", "p99"), step=60),
}


def batch(seed: int, hosts: int, names: int) -> pa.Table:
    """One ``end`` entry per host, name and minute of the hour, random second and duration."""
    rng = np.random.default_rng(seed)
    host, name, minute = (a.ravel() for a in np.meshgrid(
        np.arange(hosts), np.arange(names), np.arange(60), indexing="ij"
    ))  # fmt: skip
    n = len(host)
    ts = (HOUR + minute * 60 + rng.integers(0, 60, n)) * 1000
    columns = {
        "ts": pa.array(ts, pa.timestamp("ms")),
        "uid": pa.array(seed * 10**9 + np.arange(n), pa.uint64()),
        "kind": pa.array(["end"] * n),
        "app": pa.array(["shop"] * n),
        "dc": pa.array(["ams"] * n),
        "cluster": pa.array(["c1"] * n),
        "host": pa.array([f"web{h}" for h in host]),
        "type": pa.array(["URL"] * n),
        "name": pa.array([f"GET /r{i}" for i in name]),
        "status": pa.array(np.where(rng.random(n) < 0.01, 500, 0).astype(np.int32)),
        "duration_ms": pa.array(rng.lognormal(3, 1, n)),
    }
    return pa.table(
        {f.name: columns.get(f.name) or pa.array([LOG_DEFAULTS.get(f.name, [])] * n, f.type)
         for f in LOGS_SCHEMA}  # fmt: skip
    ).cast(LOGS_SCHEMA)


def cube_rows(store: SqlStore) -> dict[str, int]:
    """Active rows per cube table, summed over the parts."""
    result = store.cube.read(
        "SELECT table, sum(rows) AS n FROM system.parts WHERE active"
        " AND database = 'vigil' AND table LIKE 'cube_%' GROUP BY table ORDER BY table"
    )
    return dict(zip(result.column("table").to_pylist(), map(int, result.column("n").to_pylist())))


def time_shapes(store: SqlStore, reps: int) -> dict[str, float]:
    """Median milliseconds of each shape over ``reps`` runs (after one warm-up)."""
    out = {}
    for label, q in SHAPES.items():
        store.cube.query(q)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            store.cube.query(q)
            times.append((time.perf_counter() - t) * 1000)
        out[label] = statistics.median(times)
    return out


def run(store: SqlStore, args: argparse.Namespace) -> None:
    t = time.perf_counter()
    for i in range(args.batches):
        store.logs.write(batch(i + 1, args.hosts, args.names))
    store.cube.settle()
    print(f"  stored {args.batches} batches in {time.perf_counter() - t:.1f} s")
    for phase in ("before compact", "after compact"):
        if phase == "after compact":
            store.compact()
        print(f"  {phase}: rows {cube_rows(store)}")
        for label, ms in time_shapes(store, args.reps).items():
            print(f"    {label:24} {ms:8.1f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--batches", type=int, default=20, help="batches stored (20)")
    p.add_argument("--hosts", type=int, default=50, help="hosts (50)")
    p.add_argument("--names", type=int, default=20, help="transaction names (20)")
    p.add_argument("--reps", type=int, default=10, help="timed runs per shape (10)")
    args = p.parse_args()
    policy = StoragePolicy.from_files("", "")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.batches} batches of {args.hosts * args.names * 60} entries, same keys")
        print("embedded:")
        store = open_embedded(Path(tmp) / "embedded", policy)
        try:
            run(store, args)
        finally:
            store.close()
        server = ClickHouseServer(Path(tmp) / "clickhouse")
        server.start()
        try:
            print("clickhouse-server:")
            store = open_server(server.address, policy)
            try:
                print(f"  {store.dialect.describe()[:40]}")
                run(store, args)
            finally:
                store.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
