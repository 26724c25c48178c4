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
from tests.nodes import entry, node_settings, send_eventlog
from vigil.node import Node

pytestmark = pytest.mark.integration


async def until(get: Any, ready: Any, timeout: float = 10.0) -> Any:
    """Poll ``get()`` until ``ready(result)``; the last result either way."""
    deadline = time.monotonic() + timeout
    while True:
        result = await get()
        if ready(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


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


async def test_an_unreachable_nats_is_said_at_start(tmp_path: Path) -> None:
    node = Node(node_settings(tmp_path / "data", bus_nats="nats://127.0.0.1:1"))
    with pytest.raises(ConnectionError, match="cannot connect to NATS at nats://127.0.0.1:1"):
        await node.start()
