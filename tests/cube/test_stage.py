"""The cube stage in a real node: error groups and extraction rules from entries sent over TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import entry, node_settings, send_eventlog
from vigil.node import Node

pytestmark = pytest.mark.integration

TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/srv/shop/cart.py", line {line}, in add\n'
    "    item = stock[sku]\n"
    "KeyError: 'sku-{n}'"
)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "latency"\nmatch = "took (?P<ms>[0-9.]+) ms"\n'
        'metric = "logs.{app}.{host}.took"\nvalue = "ms"\n'
    )
    n = Node(node_settings(tmp_path / "data", extract_rules_file=str(rules)))
    await n.start()
    yield n
    await n.stop()


async def poll(url: str, ready: Any, **params: Any) -> Any:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            doc = (await client.get(url, params=params)).json()
            if ready(doc):
                return doc
            await asyncio.sleep(0.05)
    return doc


async def test_the_same_error_from_two_hosts_is_one_group(node: Node) -> None:
    payload = entry(host="web1", kind="end", id="a", status=500, message=TRACE.format(line=12, n=1))
    payload += entry(
        host="web2", kind="end", id="b", status=500, message=TRACE.format(line=12, n=2)
    )
    payload += entry(host="web2", kind="line", severity=3, message="disk /dev/sda1 is 97% full")
    await send_eventlog(node, payload, 3)
    base = f"http://127.0.0.1:{node.ports['http']}/api/errors"
    doc = await poll(base, lambda d: len(d.get("groups", [])) == 2, **{"from": "-1h"})
    by_count = {g["count"]: g for g in doc["groups"]}
    key_error = by_count[2]
    assert sorted(key_error["hosts"]) == ["web1", "web2"] and "KeyError" in key_error["title"]
    # The sample is read from the log table, which its own writer may fill a moment later.
    one = await poll(f"{base}/{key_error['id']}", lambda d: d.get("sample"), **{"from": "-1h"})
    assert "KeyError: 'sku-" in one["sample"]["message"]


async def test_rules_from_the_file_and_the_api_make_metrics(node: Node) -> None:
    http = f"http://127.0.0.1:{node.ports['http']}"
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{http}/api/rules",
            json={"name": "timeouts", "match": "timeout", "metric": "logs.{app}.timeouts"},
        )
        assert r.status_code == 201, r.text
    payload = entry(message="GET /cart took 12.5 ms") + entry(message="upstream timeout")
    await send_eventlog(node, payload, 2)
    now = int(time.time())
    for target, want in (("logs.shop.web01.took", 12.5), ("logs.shop.timeouts", 1.0)):
        doc = await poll(
            f"{http}/render",
            lambda d: bool(d) and any(v is not None for v, _ in d[0]["datapoints"]),
            target=target, format="json", **{"from": str(now - 60)},
        )  # fmt: skip
        assert [v for v, _ in doc[0]["datapoints"] if v is not None] == [want]


async def test_a_backfill_applies_a_new_rule_to_stored_lines(node: Node) -> None:
    http = f"http://127.0.0.1:{node.ports['http']}"
    await send_eventlog(node, entry(message="cache miss key=1") + entry(message="cache miss"), 2)
    await poll(f"{http}/api/logs/search", lambda d: len(d["entries"]) == 2, q="miss",
               **{"from": "-1h"})  # fmt: skip
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{http}/api/rules", json={"name": "misses", "match": "cache miss", "metric": "m.x"}
        )
        assert r.status_code == 201
        r = await client.post(f"{http}/api/rules/misses/backfill", json={"from": "-1h"})
        job = r.json()["job"]
    done = await poll(f"{http}/api/rules/backfill/{job}", lambda d: d["state"] != "running")
    assert done["state"] == "done" and done["points"] >= 1
