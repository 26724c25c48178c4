"""End to end, roles as processes: 2 ingest, 1 store, 1 query, on NATS and a 2-shard ClickHouse.

The real ``vigil serve`` runs four times with layered configuration (one
environment file, one file per node, flags), as docs/cluster.md lays it out;
metrics and logs go to both ingest processes over every protocol, and the
query process must see each point and entry exactly once: in render, log
search, the cube and its live tail.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.bus.natsservers import NatsServer
from tests.clickhouse import ClickHouseCluster
from tests.nodes import entry, send_eventlog, until
from tests.test_cli_e2e import Server, start_server, stop_server

pytestmark = pytest.mark.integration

PROCESSES = {  # node name -> roles, in start order: the store process creates the tables
    "store1": "store,cube,alert",
    "query1": "query",
    "ingest1": "ingest",
    "ingest2": "ingest",
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Server]]:
    """NATS, a 2-shard ClickHouse and the four Vigil processes, all on loopback."""
    nats = NatsServer(tmp_path)
    nats.start()
    shards = ClickHouseCluster(tmp_path / "clickhouse", shards=2)
    servers: dict[str, Server] = {}
    try:
        shards.start()
        environment = tmp_path / "cluster.toml"
        environment.write_text(
            f'[bus]\nbus_nats = "{nats.url}"\n'
            f'[store]\nclickhouse = "127.0.0.1:{shards.address.port}"\n'
            f'clickhouse_cluster = "{shards.name}"\n'
        )
        for name, roles in PROCESSES.items():
            node_file = tmp_path / f"{name}.toml"
            node_file.write_text(f'[node]\nroles = "{roles}"\n')
            servers[name] = start_server(
                tmp_path / name, "--config", str(environment), "--config", str(node_file),
                "--node-name", name,
            )  # fmt: skip
        yield servers
    finally:
        # ingest first, so that the store process stores what they published
        stuck = [name for name, server in reversed(servers.items()) if not stopped(server)]
        shards.stop()
        nats.stop()
        assert not stuck, f"did not stop within a minute: {stuck}"


def stopped(server: Server) -> bool:
    """Stop ``server``; False if it had to be killed."""
    if server.proc.poll() is not None:
        return True
    try:
        stop_server(server)
        return True
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.communicate()
        return False


async def send_everything(ingest: Server, n: int, now: int) -> list[str]:
    """Points over Graphite plaintext, logs over syslog, event-log and HTTP; the log messages sent."""
    with socket.create_connection(("127.0.0.1", ingest.ports["graphite"])) as sock:
        sock.sendall(b"".join(f"e2e.in{n}.count 1 {now - k}\n".encode() for k in range(1, 51)))
    syslog = [f"syslog {n}-{k}" for k in range(10)]
    with socket.create_connection(("127.0.0.1", ingest.ports["syslog"])) as sock:
        sock.sendall(b"".join(f"<13>1 - in{n} e2e - - - {m}\n".encode() for m in syslog))
    transactions = [f"tx {n}-{k}" for k in range(30)]
    payload = b"".join(
        entry(kind="atomic", host=f"in{n}", app="e2e", name="GET /", id=f"t{n}-{k}",
              duration_ms=k + 1, message=m)
        for k, m in enumerate(transactions)
    )  # fmt: skip
    await send_eventlog(ingest, payload, len(transactions))  # type: ignore[arg-type]
    pushed = [f"push {n}-{k}" for k in range(5)]
    body = b"".join(entry(host=f"in{n}", app="e2e", message=m) for m in pushed)
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{ingest.url}/api/logs", content=body)
        assert r.json() == {"accepted": 5, "rejected": []}
    return syslog + transactions + pushed


async def test_two_ingest_nodes_one_store_one_query_see_everything_exactly_once(
    cluster: dict[str, Server],
) -> None:
    query = cluster["query1"]
    now = int(time.time())
    async with websockets.connect(
        f"ws://127.0.0.1:{query.ports['http']}/api/logs/tail?app=e2e"
    ) as tail:
        sent = [m for n in (1, 2) for m in await send_everything(cluster[f"ingest{n}"], n, now)]
        tailed: list[str] = []
        while len(tailed) < len(sent):
            message = orjson.loads(await asyncio.wait_for(tail.recv(), 30))
            tailed += [e["message"] for e in message.get("entries", [])]
    assert sorted(tailed) == sorted(sent)

    async with httpx.AsyncClient(base_url=query.url, timeout=30) as http:

        async def points() -> float:
            params = {"target": "e2e.*.count", "from": "-10min", "format": "json"}
            series = (await http.get("/render", params=params)).json()
            return sum(v for s in series for v, _ in s["datapoints"] if v is not None)

        async def entries() -> list[str]:
            params = {"from": "-1h", "app": "e2e", "limit": 1000}
            found = (await http.get("/api/logs/search", params=params)).json()
            return sorted(e["message"] for e in found["entries"])

        async def transactions() -> Any:
            params = {"measures": "count", "group_by": "host", "from": "-10min"}
            return sorted((await http.get("/api/cube", params=params)).json()["rows"])

        assert await until(points, lambda total: total >= 100, timeout=30) == 100
        assert await until(entries, lambda got: len(got) >= len(sent), timeout=30) == sorted(sent)
        expected_cube = [["in1", 30], ["in2", 30]]
        assert (
            await until(transactions, lambda rows: rows == expected_cube, timeout=30)
            == expected_cube
        )
        await asyncio.sleep(2)  # a late duplicate would show now
        assert (await points(), await entries(), await transactions()) == (
            100, sorted(sent), expected_cube,
        )  # fmt: skip

    ingest_status = cluster["ingest1"].get("/api/status").json()
    assert (ingest_status["stages"], ingest_status["consumes"]) == (["ingest"], [])
    assert "storage" not in ingest_status and cluster["ingest1"].get("/render").status_code == 404
    assert query.get("/api/status").json()["consumes"] == ["tail"]
    store_status = cluster["store1"].get("/api/status").json()
    assert store_status["consumes"] == ["store", "cube", "alert"]
