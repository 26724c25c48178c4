"""GET /api/cube on a real node: transactions sent over the event-log protocol become a cube."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import entry, node_settings, send_eventlog
from vigil.node import Node

pytestmark = pytest.mark.integration


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(node_settings(tmp_path))
    await n.start()
    payload = b"".join(
        entry(kind="end", host=f"web{i % 2}", dc="ams", cluster="c1", app="shop", type="URL",
              name="GET /cart", id=f"t{i}", status=500 if i % 5 == 0 else 0, duration_ms=i + 1)
        for i in range(20)
    )  # fmt: skip
    await send_eventlog(n, payload, 20)
    for _ in range(100):  # stored: the cube answers from the engine
        if (await cube(n, measures="count")).json()["rows"] == [[20]]:
            break
        await asyncio.sleep(0.05)
    yield n
    await n.stop()


async def cube(node: Node, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{node.ports['http']}/api/cube"
        for _ in range(100):
            r = await client.get(url, params=params)
            if r.status_code != 200 or r.json()["rows"]:
                return r
            await asyncio.sleep(0.05)
    return r


async def test_group_by_with_rollup_totals(node: Node) -> None:
    r = await cube(node, measures="count,errors,max", group_by="datacenter,host", rollup="1")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["columns"] == ["datacenter", "host", "count", "errors", "max", "rollup"]
    rows = {tuple(row[:2]) + (row[-1],): row[2:5] for row in doc["rows"]}
    assert rows[("ams", "web0", None)] == [10, 2, 19.0]
    assert rows[("ams", None, "total over host")] == [20, 4, 20.0]


async def test_time_series_and_filters(node: Node) -> None:
    r = await cube(node, measures="count", step="10s", host="web1", **{"from": "-5min"})
    doc = r.json()
    assert doc["columns"] == ["ts", "count"] and sum(row[1] for row in doc["rows"]) == 10


async def test_a_bad_query_is_a_400_naming_the_problem(node: Node) -> None:
    r = await cube(node, measures="count,p42")
    assert r.status_code == 400 and "unknown measure 'p42'" in r.json()["error"]
