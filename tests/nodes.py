"""Helpers for tests that run a real node in-process: settings on free ports, event-log I/O."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from vigil.node import Node
from vigil.settings import Settings, load


def node_settings(data_dir: Path, **extra: Any) -> Settings:
    """Settings of a node in ``data_dir`` with every port free-picked and quick store flushes."""
    ports = ("http_port", "graphite_port", "statsd_port", "eventlog_port", "syslog_port")
    overrides = {"data_dir": data_dir, "batch_seconds": 0.1, **{p: 0 for p in ports}, **extra}
    return load(environ={}, overrides=overrides)


def entry(**fields: Any) -> bytes:
    """One event-log line: a ``line`` entry from web01/shop now, with ``fields`` on top."""
    base = {"ts": time.time(), "host": "web01", "app": "shop", "kind": "line"}
    return orjson.dumps({**base, **fields}) + b"\n"


async def send_eventlog(node: Node, payload: bytes, lines: int) -> list[dict[str, Any]]:
    """Send ``payload`` and read replies until the ack covers ``lines`` lines."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.ports["eventlog"])
    writer.write(payload)
    await writer.drain()
    replies: list[dict[str, Any]] = []
    while not replies or replies[-1].get("ack", 0) < lines:
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line, f"connection closed after {replies}"
        replies.append(orjson.loads(line))
    writer.close()
    await writer.wait_closed()
    return replies


async def until(get: Any, ready: Any, timeout: float = 10.0) -> Any:
    """Poll ``get()`` until ``ready(result)``; the last result either way."""
    deadline = time.monotonic() + timeout
    while True:
        result = await get()
        if ready(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)
