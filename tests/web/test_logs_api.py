"""Live tail over a real node: a subscriber that reconnects resumes where it was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from tests.nodes import entry, node_settings, send_eventlog
from vigil.node import Node

pytestmark = pytest.mark.integration


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    # The hub keeps only its last batch: older entries a resume gets must come from the store.
    n = Node(node_settings(tmp_path, tail_subscriber_entries=1))
    await n.start()
    yield n
    await n.stop()


async def messages(ws: Any, until: Any) -> list[dict[str, Any]]:
    """Messages from ``ws`` until ``until(messages)`` holds."""
    got: list[dict[str, Any]] = []
    while not until(got):
        got.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))
    return got


def messages_of(got: list[dict[str, Any]]) -> list[str]:
    return [e["message"] for m in got for e in m.get("entries", [])]


async def test_a_reconnecting_subscriber_gets_what_it_missed_once(node: Node) -> None:
    url = f"ws://127.0.0.1:{node.ports['http']}/api/logs/tail?app=shop"
    async with websockets.connect(url + "&after=now") as ws:
        first = await messages(ws, lambda got: got)
        assert "cursor" in first[0]
        await send_eventlog(node, entry(message="before"), 1)
        got = await messages(ws, lambda got: "before" in messages_of(got))
        cursor = got[-1]["cursor"]
    # Disconnected: one entry waits in the store, one only in the hub (not stored yet).
    await send_eventlog(node, entry(message="while away 1") + entry(message="other", app="x"), 2)
    await asyncio.sleep(0.5)
    await send_eventlog(node, entry(message="while away 2"), 1)
    async with websockets.connect(f"{url}&after={cursor}") as ws:
        got = await messages(ws, lambda got: "while away 2" in messages_of(got))
        await send_eventlog(node, entry(message="after"), 1)
        got += await messages(ws, lambda got: "after" in messages_of(got))
    assert messages_of(got) == ["while away 1", "while away 2", "after"]


async def test_a_bad_cursor_is_refused(node: Node) -> None:
    url = f"ws://127.0.0.1:{node.ports['http']}/api/logs/tail?after=zz"
    async with websockets.connect(url) as ws:
        assert "cursor" in orjson.loads(await ws.recv())["error"]
