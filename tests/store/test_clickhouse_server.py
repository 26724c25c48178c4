"""The ClickHouse server backend beyond the shared contract: login, TLS, the start log, sharding."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tests.clickhouse import ClickHouseCluster, ClickHouseServer
from tests.tlsfiles import issue
from vigil.model import POINTS_SCHEMA
from vigil.settings import Settings, StoreSettings
from vigil.store.backends import open_server, open_storage
from vigil.store.clickhouse_server import ServerAddress, ServerLoginError, arrow_type
from vigil.store.retention import StoragePolicy

POLICY = StoragePolicy.from_files("", "")


@pytest.mark.parametrize(
    ("text", "secure", "host", "port"),
    [("ch1", False, "ch1", 9000), ("ch1:19000", False, "ch1", 19000), ("ch1", True, "ch1", 9440),
     ("clickhouse://10.0.0.1:9001", False, "10.0.0.1", 9001)],
)  # fmt: skip
def test_address_defaults_the_native_port(text: str, secure: bool, host: str, port: int) -> None:
    address = ServerAddress.parse(text, secure=secure)
    assert (address.host, address.port, address.user) == (host, port, "default")


def test_a_bad_address_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        ServerAddress.parse("ch1:http")


def test_result_types_are_those_chdb_gives() -> None:
    assert arrow_type("LowCardinality(String)") == pa.string()
    assert arrow_type("DateTime") == pa.uint32()
    assert arrow_type("Array(Tuple(String, String))") == pa.map_(pa.string(), pa.string())
    assert arrow_type("Tuple(Array(Int32), Array(UInt64))") == pa.struct(
        [("1", pa.list_(pa.int32())), ("2", pa.list_(pa.uint64()))]
    )


@pytest.mark.integration
def test_start_logs_version_and_features_and_a_password_login_works(
    clickhouse_server: ClickHouseServer, caplog: pytest.LogCaptureFixture
) -> None:
    clickhouse_server.reset()
    address = ServerAddress.parse(
        f"127.0.0.1:{clickhouse_server.tcp_port}", "vigil", "vigil-secret"
    )
    with caplog.at_level(logging.INFO, logger="vigil.store.backends"):
        store = open_server(address, POLICY)
    store.close()
    [line] = [r.getMessage() for r in caplog.records if "ClickHouse" in r.getMessage()]
    assert store.dialect.version in line and "missing" in line and "using" in line
    wrong = ServerAddress.parse(f"127.0.0.1:{clickhouse_server.tcp_port}", "vigil", "nope")
    with pytest.raises(Exception, match="(?i)password"):
        open_server(wrong, POLICY)


@pytest.mark.integration
def test_a_series_lives_on_one_shard_and_reads_merge_all_shards(
    clickhouse_cluster: ClickHouseCluster,
) -> None:
    clickhouse_cluster.reset()
    store = open_server(clickhouse_cluster.address, POLICY, cluster=clickhouse_cluster.name)
    paths = [f"shard.s{i}" for i in range(20)]
    rows = [(p, 1_800_000_000 - 10 * t, float(t)) for p in paths for t in range(1, 7)]
    store.write_points(pa.table([pa.array(c) for c in zip(*rows)], schema=POINTS_SCHEMA))
    per_shard = []
    for server in clickhouse_cluster.servers:
        client = server.client()
        per_shard.append(
            dict(client.execute("SELECT id, count() FROM vigil_local.points GROUP BY id"))
        )
        client.disconnect()
    assert all(per_shard) and not set(per_shard[0]) & set(per_shard[1])
    assert {n for shard in per_shard for n in shard.values()} == {6}
    store.clock = lambda: 1_800_000_000.0
    series = store.fetch(["shard.*"], 1_800_000_000 - 60, 1_800_000_000)
    assert len(series) == 20 and all(s.as_list() == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0] for s in series)
    store.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """A clickhouse-server with a TLS port, its certificate signed by a CA made for the test."""
    directory = tmp_path_factory.mktemp("clickhouse-tls")
    server = ClickHouseServer(directory / "ch", tls=issue(directory / "tls"))
    server.start()
    yield server
    server.stop()


def tls_settings(server: ClickHouseServer, **store: object) -> Settings:
    """Settings storing on ``server``'s TLS port as user vigil, verifying with the test CA."""
    assert server.tls is not None
    login: dict[str, object] = {
        "clickhouse": f"127.0.0.1:{server.tls_port}", "clickhouse_user": "vigil",
        "clickhouse_password": "vigil-secret", "clickhouse_secure": True,
        "clickhouse_ca_file": str(server.tls.ca),
    }  # fmt: skip
    return Settings(store=StoreSettings(**(login | store)))  # type: ignore[arg-type]


@pytest.mark.integration
def test_a_store_over_tls_with_a_password_writes_and_reads_points(
    tls_server: ClickHouseServer, tmp_path: Path
) -> None:
    tls_server.reset()
    store = open_storage(tls_settings(tls_server), tmp_path)
    store.write_points(
        pa.table([pa.array(["tls.a"] * 3), pa.array([1_800_000_000 - 10 * t for t in (3, 2, 1)],
                  pa.uint32()), pa.array([1.0, 2.0, 3.0])], schema=POINTS_SCHEMA)
    )  # fmt: skip
    store.clock = lambda: 1_800_000_000.0
    [series] = store.fetch(["tls.*"], 1_800_000_000 - 30, 1_800_000_000)
    store.close()
    assert series.as_list() == [1.0, 2.0, 3.0]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("wrong", "named"),
    [("clickhouse_ca_file", "clickhouse_ca_file"), ("clickhouse_password", "clickhouse_password"),
     ("missing_ca_file", "clickhouse_ca_file"), ("clickhouse_secure", "clickhouse_secure")],
)  # fmt: skip
def test_a_refused_tls_login_names_the_setting_to_fix(
    tls_server: ClickHouseServer, tmp_path: Path, wrong: str, named: str
) -> None:
    assert tls_server.tls is not None
    change = {
        "clickhouse_ca_file": {"clickhouse_ca_file": str(tls_server.tls.wrong_ca)},
        "clickhouse_password": {"clickhouse_password": "nope"},
        "missing_ca_file": {"clickhouse_ca_file": str(tmp_path / "missing.pem")},
        "clickhouse_secure": {"clickhouse_secure": False},  # plain text to the TLS port
    }[wrong]
    with pytest.raises(ServerLoginError, match=named):
        open_storage(tls_settings(tls_server, **change), tmp_path)
