"""A ClickHouse cluster: local tables on every shard, Distributed tables over them.

The store's SQL names ``vigil.<table>``; on a cluster those are
``Distributed`` tables over ``vigil_local.<table>`` on every server of the
cluster (``remote_servers`` of the server Vigil connects to). Writes go
through them, split by a sharding key chosen so that rows the engine merges
land on one shard (a series' points, rollups and catalogue row by series id,
a cube row by its dimensions, an error group's occurrences and summary by
fingerprint); materialized views run on each shard over its own rows. Reads
go through them too, so each shard aggregates its rows (GROUP BY, -Merge) and
the server Vigil talks to merges the partial results.

Tables are created on each server directly (``ON CLUSTER`` needs ZooKeeper).
"""

from __future__ import annotations

from collections.abc import Callable

from vigil.store.clickhouse_server import ServerAddress, ServerConnection
from vigil.store.connection import Connection, Shards
from vigil.store.schema import DB, sql_string

LOCAL_DB = "vigil_local"
_CUBE_DIMS = "app, name, dc, cluster, host, type, status"


def sharding_key(table: str) -> str:
    """The expression that picks a row's shard in ``table``.

    >>> sharding_key("rollup_60"), sharding_key("logs")
    ('id', 'uid')
    """
    if table.startswith("cube_"):
        return f"cityHash64({_CUBE_DIMS})"
    if table.startswith("error_"):
        return "fingerprint"
    if table == "logs":  # nothing merges entries: spread them evenly
        return "uid"
    return "id"  # points, rollups, sketches, both catalogues, events


def _columns(conn: ServerConnection, table: str) -> str:
    """The columns of a Distributed table over local ``table``.

    MATERIALIZED columns are left out: the shards compute them (a Distributed
    table made ``AS`` the local one would send them, which the shards refuse).
    """
    rows = conn.query_arrow(
        "SELECT name, type, default_kind AS kind, default_expression AS expr FROM system.columns"
        f" WHERE database = '{LOCAL_DB}' AND table = {sql_string(table)}"
    ).to_pylist()
    return ", ".join(
        f"`{r['name']}` {r['type']}" + (f" ALIAS {r['expr']}" if r["kind"] == "ALIAS" else "")
        for r in rows
        if r["kind"] != "MATERIALIZED"
    )


def shard_addresses(conn: ServerConnection, cluster: str) -> list[ServerAddress]:
    """Every server of ``cluster`` in the connected server's ``remote_servers``."""
    rows = conn.query_arrow(
        "SELECT host_address, port FROM system.clusters"
        f" WHERE cluster = {sql_string(cluster)} ORDER BY shard_num, replica_num"
    ).to_pylist()
    if not rows:
        raise ValueError(
            f"clickhouse_cluster = {cluster!r} is not a cluster of the server's remote_servers"
            f" ({conn.address.host}:{conn.address.port}); name one listed in system.clusters"
        )
    return [conn.address.at(str(r["host_address"]), int(r["port"])) for r in rows]


def shards(initiator: ServerAddress, cluster: str, servers: list[ServerAddress]) -> Shards:
    """The ``Shards`` of ``SqlStore`` on ``servers``, spanned by tables on ``initiator``."""

    def connect() -> list[Connection]:
        return [s.connect() for s in servers]

    def install(ddl: Callable[[str], list[str]]) -> None:
        # The initiator too (once, if it is one of the servers): the Distributed
        # tables take their columns from its local ones.
        where = {(a.host, a.port): a for a in [initiator, *servers]}
        for address in where.values():
            conn = address.connect()
            try:
                for stmt in ddl(LOCAL_DB):
                    conn.execute(stmt)
            finally:
                conn.close()
        conn = initiator.connect()
        try:
            conn.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
            tables = conn.query_arrow(
                f"SELECT name FROM system.tables WHERE database = '{LOCAL_DB}'"
                " AND engine NOT LIKE '%View'"
            ).column("name")
            for table in tables.to_pylist():
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {DB}.{table} ({_columns(conn, table)})"
                    f" ENGINE = Distributed({cluster}, {LOCAL_DB}, {table}, {sharding_key(table)})"
                )
        finally:
            conn.close()

    return Shards(LOCAL_DB, connect, install)
