"""The storage contract runs on every backend: embedded chDB, a ClickHouse server, a 2-shard cluster.

``backend`` opens a fresh store on one of them; the servers are started once
per session (``tests.clickhouse``) and emptied for every store opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clickhouse import ClickHouseCluster, ClickHouseServer
from vigil.store.backends import open_server
from vigil.store.chdb_engine import open_embedded
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore


class Backend:
    """Opens stores on one backend: ``backend(path, policy, **options)``."""

    def __init__(self, name: str, servers: ClickHouseServer | ClickHouseCluster | None) -> None:
        self.name = name
        self.servers = servers
        self.shards = len(servers.servers) if isinstance(servers, ClickHouseCluster) else 1

    def __call__(self, path: Path, policy: StoragePolicy, **options: Any) -> SqlStore:
        if self.servers is None:
            return open_embedded(path, policy, **options)
        self.servers.reset()
        cluster = self.servers.name if isinstance(self.servers, ClickHouseCluster) else ""
        return open_server(self.servers.address, policy, cluster=cluster, **options)

    def __repr__(self) -> str:
        return self.name


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """One clickhouse-server for the session."""
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def clickhouse_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseCluster]:
    """Two clickhouse-servers, the shards of cluster ``vigil``, for the session."""
    cluster = ClickHouseCluster(tmp_path_factory.mktemp("clickhouse-cluster"), shards=2)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(
    scope="session",
    params=[
        "embedded",
        pytest.param("server", marks=pytest.mark.integration),
        pytest.param("cluster", marks=pytest.mark.integration),
    ],
)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn; the servers start when first needed."""
    fixture = {"server": "clickhouse_server", "cluster": "clickhouse_cluster"}.get(request.param)
    return Backend(request.param, request.getfixturevalue(fixture) if fixture else None)
