"""The embedded storage engine: chDB (ClickHouse in the process).

One process owns a data directory (chDB locks it); each thread gets its own
connection, as the engine requires for concurrent reads during inserts.
"""

from __future__ import annotations

from pathlib import Path

import chdb
import numpy as np
import pyarrow as pa

from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore


class ChdbConnection:
    """A chDB connection speaking the ``connection.Connection`` protocol."""

    def __init__(self, path: Path) -> None:
        self._conn = chdb.connect(str(path))  # type: ignore[no-untyped-call]

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing."""
        self._conn.query(sql)

    def query_arrow(self, sql: str) -> pa.Table:
        """Run a query and return an Arrow table that owns its memory.

        chDB's own "ArrowTable" reads the result in place: uncompressed (our
        read settings), its arrays then point into memory chDB frees with the
        result, and strings read later came back corrupt. Here the buffer
        the arrays point into keeps the result alive: no copy, nothing freed.
        """
        result = self._conn.query(sql, "Arrow")
        if not result.size():
            return pa.table({})
        view = result.get_memview().view()
        address = np.frombuffer(view, dtype=np.uint8).ctypes.data
        buffer = pa.foreign_buffer(address, len(view), base=(result, view))
        return pa.ipc.open_file(buffer).read_all()

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        """Insert an Arrow table without serialising it (chDB reads the Python object)."""
        columns = ", ".join(f"`{name}`" for name in batch.column_names)
        # The Python() table function finds ``batch`` among this frame's locals.
        self._conn.query(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM Python(batch)")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def open_embedded(
    data_dir: Path,
    policy: StoragePolicy,
    *,
    max_points: int = 20_000_000,
    log_max_scan_rows: int = 50_000_000,
    log_retention_days: int = 30,
    cube: bool = True,
) -> SqlStore:
    """The store in ``data_dir/engine``, created on first use."""
    path = data_dir / "engine"
    path.mkdir(parents=True, exist_ok=True)
    return SqlStore(
        lambda: ChdbConnection(path),
        policy,
        max_points=max_points,
        log_max_scan_rows=log_max_scan_rows,
        log_retention_days=log_retention_days,
        cube=cube,
    )
