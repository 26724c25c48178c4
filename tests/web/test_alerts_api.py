"""The alerts API of a real in-process node, fed over the Graphite plaintext protocol."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alert.receivers import Webhook, webhook
from tests.nodes import node_settings
from vigil.node import Node

RULES = """
[[rule]]
name = "api-load"
target = "servers.*.load"
warning = 3
critical = 5
interval = "1s"
notify = ["hook"]

[notifier.hook]
type = "webhook"
url = "{url}"
"""


@pytest.fixture
async def hook() -> AsyncIterator[Webhook]:
    async with webhook() as h:
        yield h


@pytest.fixture
async def node(tmp_path: Path, hook: Webhook) -> AsyncIterator[Node]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "api.toml").write_text(RULES.format(url=hook.url))
    n = Node(node_settings(tmp_path / "data", rules_dir=str(rules)))
    await n.start()
    yield n
    await n.stop()


async def send_points(node: Node, lines: list[str]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", node.ports["graphite"])
    writer.write("".join(f"{line} {int(time.time())}\n" for line in lines).encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def poll(client: httpx.AsyncClient, path: str, ready: Any, timeout: float = 15) -> Any:
    deadline = time.time() + timeout
    while True:
        doc = (await client.get(path)).json()
        if ready(doc) or time.time() > deadline:
            return doc
        await asyncio.sleep(0.1)


async def test_a_point_over_the_threshold_pages_and_shows_in_the_api(
    node: Node, hook: Webhook
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.ports['http']}") as client:
        started = time.time()
        await send_points(node, ["servers.web1.load 7", "servers.web2.load 1"])
        doc = await poll(
            client, "/api/alerts", lambda d: any(a["state"] == "CRITICAL" for a in d["alerts"])
        )
        alerts = {a["target"]: a for a in doc["alerts"]}
        assert alerts["servers.web1.load"]["state"] == "CRITICAL"
        assert alerts["servers.web2.load"]["state"] == "OK"
        assert set(alerts["servers.web1.load"]) >= {
            "rule",
            "target",
            "state",
            "since",
            "message",
            "healing",
        }
        (notice,) = await hook.wait(1)
        assert notice["alerts"][0]["target"] == "servers.web1.load"
        assert time.time() - started < 10
        history = await poll(
            client, "/api/alerts/history?from=-5min", lambda d: len(d["history"]) >= 3
        )
        assert {r["kind"] for r in history["history"]} >= {"state", "notification", "delivery"}
        report = (await client.get("/api/alerts/report", params={"since": "1d"})).json()
        assert report["rules"][0]["rule"] == "api-load" and report["rules"][0]["woke"] == 1
        check = (await client.get("/api/alerts/check", params={"rule": "api-load"})).json()
        assert {c["target"] for c in check["checks"]} == {"servers.web1.load", "servers.web2.load"}
        assert (await client.get("/api/alerts/check", params={"rule": "nope"})).status_code == 404


async def test_silence_and_acknowledge_from_the_api(node: Node) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.ports['http']}") as client:
        await send_points(node, ["servers.web1.load 7"])
        await poll(
            client, "/api/alerts", lambda d: any(a["state"] == "CRITICAL" for a in d["alerts"])
        )
        r = await client.post(
            "/api/alerts/silences",
            json={"matchers": {"rule": "api-*"}, "duration": "2h", "reason": "deploy"},
        )
        assert r.status_code == 201
        silence = r.json()
        assert silence["until"] > time.time() + 7000
        listed = (await client.get("/api/alerts/silences")).json()["silences"]
        assert [s["id"] for s in listed] == [silence["id"]]
        assert (await client.get("/api/alerts")).json()["alerts"][0]["silenced"]
        bad = await client.post(
            "/api/alerts/silences", json={"matchers": {}, "duration": "1h", "reason": "x"}
        )
        assert bad.status_code == 400 and "matcher" in bad.json()["error"]
        assert (await client.delete(f"/api/alerts/silences/{silence['id']}")).status_code == 200
        assert (await client.get("/api/alerts/silences")).json()["silences"] == []
        ack = await client.post(
            "/api/alerts/ack",
            json={"rule": "api-load", "target": "servers.web1.load", "reason": "on it"},
        )
        assert ack.status_code == 200
        assert (await client.get("/api/alerts")).json()["alerts"][0]["acknowledged"]
        missing = await client.post(
            "/api/alerts/ack", json={"rule": "x", "target": "y", "reason": "z"}
        )
        assert missing.status_code == 404


async def test_reload_rejects_a_bad_file_naming_its_line(node: Node, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.ports['http']}") as client:
        (tmp_path / "rules" / "bad.toml").write_text(
            '[[rule]]\nname = "x"\ntarget = "a.b"\ncritical = "high"\n'
        )
        r = await client.post("/api/alerts/reload")
        assert r.status_code == 400
        assert r.json()["line"] == 4 and "critical must be a number" in r.json()["error"]
        assert [x["name"] for x in (await client.get("/api/alerts/rules")).json()["rules"]] == [
            "api-load"
        ]
        (tmp_path / "rules" / "bad.toml").write_text('[[rule]]\nname = "x"\nheartbeat = "web*"\n')
        r = await client.post("/api/alerts/reload")
        assert r.status_code == 200 and r.json()["rules"] == 2
