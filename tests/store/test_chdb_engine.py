"""The embedded engine's connection: results that stay whole after the engine moves on."""

from __future__ import annotations

import gc
from pathlib import Path

from vigil.store.chdb_engine import ChdbConnection
from vigil.store.dialect import EMBEDDED


def test_a_result_read_after_later_queries_is_intact(tmp_path: Path) -> None:
    """Uncompressed results once pointed into memory chDB freed: strings came back corrupt."""
    conn = ChdbConnection(tmp_path)
    sql = (
        "SELECT number, repeat(toString(number), 20) AS s FROM numbers(200000)"
        + EMBEDDED.read_settings
    )
    try:
        for _ in range(5):
            first = conn.query_arrow(sql)
            gc.collect()
            later = [conn.query_arrow(sql) for _ in range(2)]
            numbers, strings = first.column("number").to_pylist(), first.column("s").to_pylist()
            assert strings == [str(n) * 20 for n in numbers]
            assert later[0].num_rows == later[1].num_rows == 200_000
        assert conn.query_arrow("SELECT 1 AS x WHERE 0").num_rows == 0
    finally:
        conn.close()
