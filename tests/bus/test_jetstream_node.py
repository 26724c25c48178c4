"""A node with ``bus_nats`` set: its store and tail queues are JetStream streams."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bus.natsservers import NatsServer
from tests.nodes import entry, node_settings, send_eventlog, until
from vigil.bus.spool import Spool
from vigil.model import logs_from_rows
from vigil.node import Node

pytestmark = pytest.mark.integration


async def test_points_and_entries_are_stored_and_forwarded_through_jetstream(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    relayed = bytearray()

    async def carbon(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(1 << 16):
            relayed.extend(chunk)
        writer.close()

    receiver = await asyncio.start_server(carbon, "127.0.0.1", 0)
    port = receiver.sockets[0].getsockname()[1]
    settings = node_settings(
        tmp_path / "data", bus_nats=nats_server.url, forward_graphite=f"127.0.0.1:{port}"
    )
    node = Node(settings)
    await node.start()
    try:
        now = int(time.time())
        with socket.create_connection(("127.0.0.1", node.ports["graphite"])) as sock:
            sock.sendall(f"via.nats 7 {now}\n".encode())
        await send_eventlog(node, entry(host="web07", message="through the stream"), 1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.ports['http']}") as http:

            async def render() -> list[float]:
                params = {"target": "via.nats", "from": "-5min", "format": "json"}
                series = (await http.get("/render", params=params)).json()
                return [v for s in series for v, _ in s["datapoints"] if v is not None]

            async def search() -> Any:
                params = {"from": "-1h", "host": "web07"}
                return (await http.get("/api/logs/search", params=params)).json()["entries"]

            assert await until(render, bool) == [7.0]
            (hit,) = await until(search, bool)
            assert hit["message"] == "through the stream"

        async def forwarded() -> bytes:
            return bytes(relayed)

        assert f"via.nats 7 {now}".encode() in await until(forwarded, bool)
        streams = {name: d["stream"] for name, d in node.status()["destinations"].items()}
        assert streams == {n: f"vigil-{n}" for n in ("store", "tail", "cube", "forward", "alert")}
    finally:
        await node.stop()
        receiver.close()
        await receiver.wait_closed()


async def test_what_the_in_process_bus_spooled_is_stored_after_the_move_to_nats(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    data = tmp_path / "data"
    row = {"ts": int(time.time() * 1000), "uid": 77, "host": "old01", "message": "from the spool"}
    with Spool(data / "spool" / "store", 1 << 20) as spool:  # acknowledged, not yet stored
        spool.append([logs_from_rows([row])])
    node = Node(node_settings(data, bus_nats=nats_server.url))
    await node.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.ports['http']}") as http:

            async def search() -> Any:
                params = {"from": "-1h", "host": "old01"}
                return (await http.get("/api/logs/search", params=params)).json()["entries"]

            (hit,) = await until(search, bool)
            assert hit["message"] == "from the spool"
    finally:
        await node.stop()
    with Spool(data / "spool" / "store", 1 << 20) as spool:
        assert spool.pending() == []


async def test_an_unreachable_nats_is_said_at_start(tmp_path: Path) -> None:
    node = Node(node_settings(tmp_path / "data", bus_nats="nats://127.0.0.1:1"))
    with pytest.raises(ConnectionError, match="cannot connect to NATS at nats://127.0.0.1:1"):
        await node.start()


async def test_two_ingest_processes_feed_a_core_process_that_starts_later_exactly_once(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    def settings(name: str, roles: str) -> Any:
        return node_settings(tmp_path / name, bus_nats=nats_server.url, roles=roles, node_name=name)

    ingests = [Node(settings(f"ingest{i}", "ingest")) for i in (1, 2)]
    core = Node(settings("core", "store,cube,alert,query,web"))
    now = int(time.time())
    try:
        for i, node in enumerate(ingests, 1):
            await node.start()
            with socket.create_connection(("127.0.0.1", node.ports["graphite"])) as sock:
                sock.sendall(
                    b"".join(f"split.in{i}.count 1 {now - k}\n".encode() for k in range(1, 51))
                )
            transactions = b"".join(
                entry(kind="atomic", host=f"in{i}", app="split", name="GET /", id=f"t{i}-{k}",
                      duration_ms=k, message=f"tx {k}")
                for k in range(30)
            )  # fmt: skip
            await send_eventlog(node, transactions, 30)
        # the core process starts after the batches were published: the streams kept them
        await core.start()
        pushed = b"".join(entry(host="in1", app="pushed", message=f"push {k}") for k in range(5))
        async with httpx.AsyncClient() as http:
            push = await http.post(
                f"http://127.0.0.1:{ingests[0].ports['http']}/api/logs", content=pushed
            )
            assert push.json() == {"accepted": 5, "rejected": []}
            ingest_render = await http.get(f"http://127.0.0.1:{ingests[0].ports['http']}/render")
            assert ingest_render.status_code == 404  # ingest serves no queries
            base = f"http://127.0.0.1:{core.ports['http']}"

            async def points() -> float:
                params = {"target": "split.*.count", "from": "-10min", "format": "json"}
                series = (await http.get(f"{base}/render", params=params)).json()
                return sum(v for s in series for v, _ in s["datapoints"] if v is not None)

            async def entries() -> list[str]:
                params = {"from": "-1h", "app": ["split", "pushed"], "limit": 1000}
                found = (await http.get(f"{base}/api/logs/search", params=params)).json()
                return sorted(e["message"] for e in found["entries"])

            async def transactions_counted() -> Any:
                params = {"measures": "count", "group_by": "host", "from": "-10min"}
                return (await http.get(f"{base}/api/cube", params=params)).json()["rows"]

            assert await until(points, lambda total: total >= 100) == 100
            expected = sorted([f"tx {k}" for k in range(30)] * 2 + [f"push {k}" for k in range(5)])
            assert await until(entries, lambda got: len(got) >= len(expected)) == expected
            assert sorted(await until(transactions_counted, lambda rows: len(rows) == 2)) == [
                ["in1", 30], ["in2", 30],
            ]  # fmt: skip
        status = ingests[0].status()
        assert status["consumes"] == [] and "storage" not in status
        assert list(status["destinations"]) == ["store", "tail", "cube", "alert"]
        assert core.status()["consumes"] == ["store", "cube", "alert", "tail"]
    finally:
        for node in (core, *ingests):
            if node.ports:
                await node.stop()
