"""Which storage backend a node opens, from its settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vigil.settings import Settings
from vigil.store import clickhouse_cluster
from vigil.store.chdb_engine import open_embedded
from vigil.store.clickhouse_server import PROBE_DB, ServerAddress, detect_dialect
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore

log = logging.getLogger(__name__)


def open_storage(settings: Settings, data_dir: Path) -> SqlStore:
    """The store the settings name: the embedded engine in ``data_dir`` by default."""
    s = settings
    policy = StoragePolicy.from_files(s.store.storage_schemas, s.store.storage_aggregation)
    options: dict[str, Any] = {
        "max_points": s.query.max_points,
        "log_max_scan_rows": s.query.log_max_scan_rows,
        "log_retention_days": s.store.log_retention_days,
        "cube": s.store.cube,
    }
    if s.store.clickhouse:
        address = ServerAddress.parse(
            s.store.clickhouse,
            s.store.clickhouse_user,
            s.store.clickhouse_password,
            s.store.clickhouse_secure,
            s.store.clickhouse_ca_file,
        )
        return open_server(address, policy, cluster=s.store.clickhouse_cluster, **options)
    return open_embedded(data_dir, policy, **options)


def open_server(
    address: ServerAddress,
    policy: StoragePolicy,
    *,
    cluster: str = "",
    max_points: int = 20_000_000,
    log_max_scan_rows: int = 50_000_000,
    log_retention_days: int = 30,
    cube: bool = True,
) -> SqlStore:
    """The store on a ClickHouse server, or on ``cluster`` (a name in its ``remote_servers``)."""
    conn = address.connect()
    try:
        conn.login()
        dialect = detect_dialect(conn, PROBE_DB)
        servers = clickhouse_cluster.shard_addresses(conn, cluster) if cluster else []
    finally:
        conn.close()
    where = f"{address.host}:{address.port}"
    if cluster:
        where += f", cluster {cluster} of {len(servers)} servers"
    log.info("storage on %s; %s", where, dialect.describe())
    return SqlStore(
        address.connect,
        policy,
        max_points=max_points,
        log_max_scan_rows=log_max_scan_rows,
        log_retention_days=log_retention_days,
        cube=cube,
        dialect=dialect,
        shards=clickhouse_cluster.shards(address, cluster, servers) if cluster else None,
    )
