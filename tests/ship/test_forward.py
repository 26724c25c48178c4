"""Forwarding: points to a Graphite port and log entries to another Vigil, acknowledged."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from tests.nodes import entry, node_settings, send_eventlog
from tests.test_cli_e2e import start_server, stop_server, wait_for
from vigil.model import POINTS_SCHEMA, logs_from_rows
from vigil.node import Node
from vigil.settings import SettingsError
from vigil.ship.forward import jsonlines, parse_address, plaintext


def test_points_become_plaintext_lines() -> None:
    batch = pa.table(
        {"path": ["a.b", "c"], "ts": pa.array([1, 2], pa.uint32()), "value": [1.5, 42.0]},
        schema=POINTS_SCHEMA,
    )
    assert plaintext(batch) == b"a.b 1.5 1\nc 42 2\n"


def test_entries_become_event_log_lines_without_uid() -> None:
    batch = logs_from_rows(
        [{"ts": 1_700_000_000_250, "uid": 9, "message": "hi", "data": {"k": "v"}}]
    )
    (line,) = jsonlines(batch).splitlines()
    doc = orjson.loads(line)
    assert "uid" not in doc and doc["ts"] == 1_700_000_000.25 and doc["data"] == {"k": "v"}


def test_a_bad_address_is_a_settings_error(tmp_path: Path) -> None:
    assert parse_address("", "x") is None and parse_address("h:1", "x") == ("h", 1)
    with pytest.raises(SettingsError, match="forward_eventlog = 'nowhere': expected HOST:PORT"):
        Node(node_settings(tmp_path, forward_eventlog="nowhere"))


@pytest.mark.integration
async def test_a_node_forwards_points_and_entries_to_another_vigil(tmp_path: Path) -> None:
    receiver = start_server(tmp_path / "receiver")
    try:
        forward = {
            "forward_graphite": f"127.0.0.1:{receiver.ports['graphite']}",
            "forward_eventlog": f"127.0.0.1:{receiver.ports['eventlog']}",
        }
        node = Node(node_settings(tmp_path / "relay", **forward))
        await node.start()
        try:
            now = int(time.time())
            with socket.create_connection(("127.0.0.1", node.ports["graphite"])) as sock:
                sock.sendall(f"relayed.metric 7 {now}\n".encode())
            await send_eventlog(node, entry(host="relay1", message="passed along"), 1)

            def arrived() -> bool:
                series = receiver.render("relayed.metric", **{"from": "-5min"})
                found = receiver.get("/api/logs/search", **{"from": "-1h", "host": "relay1"})
                return bool(series) and bool(found.json()["entries"])

            assert await asyncio.to_thread(wait_for, arrived)
            (hit,) = receiver.get("/api/logs/search", **{"from": "-1h", "host": "relay1"}).json()[
                "entries"
            ]
            assert hit["message"] == "passed along"
            assert node.status()["destinations"]["forward"]["overflow"] == "spill"
        finally:
            await node.stop()
    finally:
        stop_server(receiver)
