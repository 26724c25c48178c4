"""Which storage backend a node opens, from its settings."""

from __future__ import annotations

from pathlib import Path

from vigil.settings import Settings
from vigil.store.chdb_engine import open_embedded
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore


def open_storage(settings: Settings, data_dir: Path) -> SqlStore:
    """The store the settings name: the embedded engine in ``data_dir`` by default."""
    s = settings
    policy = StoragePolicy.from_files(s.store.storage_schemas, s.store.storage_aggregation)
    return open_embedded(
        data_dir,
        policy,
        max_points=s.query.max_points,
        log_max_scan_rows=s.query.log_max_scan_rows,
        log_retention_days=s.store.log_retention_days,
        cube=s.store.cube,
    )
