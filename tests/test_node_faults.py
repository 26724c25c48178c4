"""Fault domains under load: a failing or hanging store, and SIGKILL, lose no acknowledged entry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.nodes import node_settings
from vigil.node import Node
from vigil.query.logquery import LogQuery, decode_cursor
from vigil.store.interface import StorageError

pytestmark = pytest.mark.integration


class Sender:
    """Streams numbered entries over one event-log connection and tracks the acks."""

    def __init__(self, port: int, host: str) -> None:
        self.port = port
        self.host = host
        self.sent = 0
        self.acked = 0
        self.stop = False

    def payload(self, first: int, n: int) -> bytes:
        now = time.time()
        return b"".join(
            orjson.dumps({"ts": now, "host": self.host, "app": "load", "name": f"e{i}"}) + b"\n"
            for i in range(first, first + n)
        )

    async def run(self, batch: int = 200, pause: float = 0.01) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def read_acks() -> None:
            while line := await reader.readline():
                reply = orjson.loads(line)
                assert "error" not in reply, reply
                self.acked = reply.get("ack", self.acked)

        acks = asyncio.create_task(read_acks())
        try:
            while not self.stop:
                writer.write(self.payload(self.sent, batch))
                self.sent += batch
                await writer.drain()
                await asyncio.sleep(pause)
            while self.acked < self.sent:
                await asyncio.sleep(0.05)
        finally:
            writer.close()
            acks.cancel()


async def stored_names(node: Node, host: str) -> list[str]:
    def read() -> list[str]:
        names: list[str] = []
        cursor = None
        while True:
            now = int(time.time() * 1000)
            page = node.storage.logs.search(
                LogQuery(now - 3_600_000, now + 1000, {"host": (host,)}, limit=1000, cursor=cursor)
            )
            names += [e["name"] for e in page.entries]
            if page.next_cursor is None:
                return names
            cursor = decode_cursor(page.next_cursor)

    return await asyncio.to_thread(read)


def broken(write: Callable[..., int], mode: str, healed: threading.Event) -> Callable[..., int]:
    """``write`` that raises or hangs until ``healed`` is set."""

    def failing(batch: Any, replay: bool = False) -> int:
        if not healed.is_set():
            if mode == "raise":
                raise StorageError("injected: disk on fire")
            healed.wait()
        return write(batch, replay)

    return failing


@pytest.mark.parametrize("mode", ["raise", "hang"])
async def test_a_failing_store_loses_nothing_and_stalls_nobody(tmp_path: Path, mode: str) -> None:
    node = Node(node_settings(tmp_path, store_queue_bytes=64 << 10))
    await node.start()
    healed = threading.Event()
    try:
        logs = node.storage.logs
        logs.write = broken(logs.write, mode, healed)  # type: ignore[method-assign]
        tail_url = f"ws://127.0.0.1:{node.ports['http']}/api/logs/tail?host=outage"
        async with websockets.connect(tail_url) as ws:
            await asyncio.sleep(0.1)
            sender = Sender(node.ports["eventlog"], "outage")
            task = asyncio.create_task(sender.run())
            tailed = 0
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:  # the store is down all this time
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 2))
                tailed += len(message.get("entries", []))
            assert sender.acked > 1000, "ingest must go on while the store is down"
            assert tailed > 1000, "the tail must keep flowing while the store is down"
            assert node.status()["destinations"]["store"]["spool_bytes"] > 0
            healed.set()
            sender.stop = True
            await asyncio.wait_for(task, 30)
        for _ in range(200):
            names = await stored_names(node, "outage")
            if len(names) >= sender.acked:
                break
            await asyncio.sleep(0.1)
        assert len(names) == len(set(names)) == sender.acked
    finally:
        healed.set()
        await node.stop()


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ports_file = data_dir / "ports.json"
    ports_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve", "--data-dir", str(data_dir),
         "--http-port", "0", "--graphite-port", "0", "--statsd-port", "0",
         "--eventlog-port", "0", "--syslog-port", "0", "--batch-seconds", "0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ports_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"vigil serve did not start: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.05)
    return proc, json.loads(ports_file.read_text())


async def test_sigkill_mid_load_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    proc, ports = start_server(tmp_path)
    try:
        sender = Sender(ports["eventlog"], "killed")
        task = asyncio.create_task(sender.run(batch=500, pause=0))
        while sender.acked < 20_000:
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        acked = sender.acked
        with pytest.raises((ConnectionError, OSError, AssertionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(task, 10)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    proc, ports = start_server(tmp_path)
    try:
        url = f"http://127.0.0.1:{ports['http']}/api/logs/search"
        names: list[str] = []
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                names, cursor = [], None
                while True:
                    params = {"from": "-1h", "host": "killed", "limit": 1000}
                    if cursor:
                        params["cursor"] = cursor
                    page = (await client.get(url, params=params)).json()
                    names += [e["name"] for e in page["entries"]]
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                if len(set(names)) >= acked:
                    break
                await asyncio.sleep(0.1)
        assert {f"e{i}" for i in range(acked)} <= set(names)
        assert len(names) == len(set(names)), "a replay stored an entry twice"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        proc.stderr.close()  # type: ignore[union-attr]
