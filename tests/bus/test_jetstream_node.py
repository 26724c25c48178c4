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


async def test_points_and_entries_are_stored_through_jetstream(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    node = Node(node_settings(tmp_path / "data", bus_nats=nats_server.url))
    await node.start()
    try:
        now = int(time.time())
        with socket.create_connection(("127.0.0.1", node.ports["graphite"])) as sock:
            sock.sendall(f"via.nats 7 {now}\n".encode())
        await send_eventlog(node, entry(host="web07", message="through the stream"), 1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.ports['http']}") as http:

            async def render() -> Any:
                params = {"target": "via.nats", "from": "-5min", "format": "json"}
                return (await http.get("/render", params=params)).json()

            async def search() -> Any:
                params = {"from": "-1h", "host": "web07"}
                return (await http.get("/api/logs/search", params=params)).json()["entries"]

            series = await until(render, bool)
            assert [v for v, _ in series[0]["datapoints"] if v is not None] == [7.0]
            (hit,) = await until(search, bool)
            assert hit["message"] == "through the stream"
        destinations = node.status()["destinations"]
        assert destinations["store"]["stream"] == "vigil-store"
        assert destinations["tail"]["stream"] == "vigil-tail"
        assert "stream" not in destinations["cube"]  # in-process, so far
    finally:
        await node.stop()


async def test_an_unreachable_nats_is_said_at_start(tmp_path: Path) -> None:
    node = Node(node_settings(tmp_path / "data", bus_nats="nats://127.0.0.1:1"))
    with pytest.raises(ConnectionError, match="cannot connect to NATS at nats://127.0.0.1:1"):
        await node.start()
