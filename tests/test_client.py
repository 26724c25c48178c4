"""The event-log client: entries, nesting, acks and resends.

Entries, nesting and rejects are checked against a real node, read back
through its search API. Network faults a real node does not produce on
demand (a connection cut after N lines, an error reply mid-stream, a peer
that never answers) use ``FaultyPeer``, a socket that plays them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from vigil.client import Client


class FaultyPeer:
    """A TCP peer on a free port that speaks the ack protocol and fails on cue.

    ``reject`` names the reason to reject an entry (or None to accept it);
    ``drop_after`` closes each of the first ``drop_times`` connections,
    without acknowledging, once it has read that many lines; ``error_after``
    does the same with an ``{"error": ...}`` reply first; ``silent`` never
    reads nor acknowledges.
    """

    def __init__(
        self,
        reject: Callable[[dict[str, Any]], str | None] = lambda e: None,
        drop_after: int | None = None,
        error_after: int | None = None,
        drop_times: int = 1,
        silent: bool = False,
    ) -> None:
        self.reject = reject
        self.drop_after = drop_after
        self.error_after = error_after
        self.drop_times = drop_times
        self.silent = silent
        self.entries: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        if self.silent:
            return
        with contextlib.suppress(OSError):  # closed by the client or by close()
            self._exchange(conn, number)

    def _exchange(self, conn: socket.socket, number: int) -> None:
        failing = number <= self.drop_times
        line_no = 0
        rest = b""
        with conn:
            while data := conn.recv(65536):
                *lines, rest = (rest + data).split(b"\n")
                replies = []
                for raw in lines:
                    line_no += 1
                    if failing and line_no > (self.error_after or self.drop_after or 1 << 60):
                        # Rejects are final even when the acknowledgement never comes.
                        if self.error_after:
                            replies.append(b'{"error": "spool full"}')
                        conn.sendall(b"".join(r + b"\n" for r in replies))
                        return
                    entry = orjson.loads(raw)
                    self.received.append(entry)
                    reason = self.reject(entry)
                    if reason:
                        replies.append(orjson.dumps({"line": line_no, "error": reason}))
                    else:
                        self.entries.append(entry)
                replies.append(orjson.dumps({"ack": line_no}))
                conn.sendall(b"\n".join(replies) + b"\n")

    def close(self) -> None:
        self.listener.close()
        for conn in self._open:
            conn.close()


def client_for(server: FaultyPeer, **kwargs: Any) -> Client:
    return Client(
        "127.0.0.1", server.port, source_host="web01", app="shop", flush_interval=0.01, **kwargs
    )


def by_kind(entries: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == kind]


async def emitted(node: Any, client: Client, count: int, app: str) -> list[dict[str, Any]]:
    """Close ``client`` (all acked) and read back ``app``'s entries from the node, oldest first.

    The node runs on this event loop, so the client's blocking calls go to a thread.
    """
    assert await asyncio.to_thread(client.close, 10)
    found = await search_until(node.ports["http"], count, app=app)
    return sorted(found, key=lambda e: int(e["uid"]))


def client_of(node: Any, app: str, **kwargs: Any) -> Client:
    port = node.ports["eventlog"]
    kwargs.setdefault("source_host", "web01")
    return Client("127.0.0.1", port, app=app, flush_interval=0.01, **kwargs)


@pytest.mark.integration
async def test_each_kind_carries_its_fields(node: Any) -> None:
    c = client_of(node, "kinds", cluster="c1", dc="ams")
    c.atomic("select cart", "SQL", 4.2, data={"rows": 3})
    c.event("deploy", type="release", status=2, message="v1.2", data={"v": "1.2"})
    c.heartbeat({"load": 0.5})
    c.line("hello", severity=6)
    entries = await emitted(node, c, 4, "kinds")
    atomic, event, heartbeat, line = entries
    assert {k: atomic[k] for k in ("kind", "type", "name", "duration_ms", "status", "data")} == {
        "kind": "atomic",
        "type": "SQL",
        "name": "select cart",
        "duration_ms": 4.2,
        "status": 0,
        "data": {"rows": "3"},  # data values are stored as text
    }
    assert (event["type"], event["status"], event["message"]) == ("release", 2, "v1.2")
    assert heartbeat["data"] == {"load": "0.5"}
    assert (line["message"], line["severity"]) == ("hello", 6)
    for entry in entries:
        assert (entry["host"], entry["app"], entry["cluster"], entry["dc"]) == (
            "web01",
            "kinds",
            "c1",
            "ams",
        )
        assert abs(entry["ts"] - time.time()) < 5
        assert entry["parent"] == ""


@pytest.mark.integration
async def test_source_host_defaults_to_the_machine_name(node: Any) -> None:
    c = Client("127.0.0.1", node.ports["eventlog"], app="hostname", flush_interval=0.01)
    c.line("x")
    (entry,) = await emitted(node, c, 1, "hostname")
    assert entry["host"] == socket.gethostname()
    assert entry["cluster"] == ""


@pytest.mark.integration
async def test_transactions_nest_by_id(node: Any) -> None:
    c = client_of(node, "nesting")
    with c.transaction("GET /cart", data={"user": "u1"}) as outer:
        with c.transaction("load cart", "SQL") as inner:
            time.sleep(0.02)
            c.line("inside")
        c.atomic("render", "TPL", 1.5)
        outer.status = 404
    c.line("outside")
    entries = await emitted(node, c, 7, "nesting")
    begins, ends = by_kind(entries, "begin"), by_kind(entries, "end")
    assert [b["id"] for b in begins] == [outer.id, inner.id]
    assert begins[0]["parent"] == "" and begins[1]["parent"] == outer.id
    assert [e["id"] for e in ends] == [inner.id, outer.id]
    assert by_kind(entries, "atomic")[0]["parent"] == outer.id
    inside, outside = by_kind(entries, "line")
    assert inside["parent"] == inner.id and outside["parent"] == ""
    assert ends[0]["duration_ms"] >= 20 and ends[1]["duration_ms"] >= ends[0]["duration_ms"]
    assert (ends[0]["status"], ends[1]["status"]) == (0, 404)
    assert begins[0]["data"] == ends[1]["data"] == {"user": "u1"}
    assert outer.id != inner.id and all(c in "0123456789abcdef" for c in outer.id)


@pytest.mark.integration
async def test_an_exception_ends_the_transaction_with_status_1_and_is_reraised(
    node: Any,
) -> None:
    c = client_of(node, "exception")
    with pytest.raises(KeyError), c.transaction("POST /pay") as tx:
        raise KeyError("sku")
    assert c.current_transaction() is None
    (end,) = by_kind(await emitted(node, c, 2, "exception"), "end")
    assert end["id"] == tx.id and end["status"] == 1
    assert end["data"] == {"exception": "KeyError"}
    assert end["message"].startswith("Traceback (most recent call last):")
    assert end["message"].endswith("KeyError: 'sku'")


@pytest.mark.integration
async def test_an_explicit_status_survives_an_exception(node: Any) -> None:
    c = client_of(node, "status")
    with pytest.raises(ValueError), c.transaction("x") as tx:
        tx.status = 503
        raise ValueError
    assert by_kind(await emitted(node, c, 2, "status"), "end")[0]["status"] == 503


@pytest.mark.integration
async def test_threads_do_not_share_the_current_transaction(node: Any) -> None:
    c = client_of(node, "threads")
    started, done = threading.Event(), threading.Event()

    def other_thread() -> None:
        started.wait(5)
        c.line("from the other thread")
        done.set()

    threading.Thread(target=other_thread).start()
    with c.transaction("main work"):
        started.set()
        done.wait(5)
    assert by_kind(await emitted(node, c, 3, "threads"), "line")[0]["parent"] == ""


@pytest.mark.integration
async def test_asyncio_tasks_have_their_own_transactions(node: Any) -> None:
    c = client_of(node, "tasks")

    async def handler(name: str) -> str:
        with c.transaction(name) as tx:
            await asyncio.sleep(0.01)  # let the other task's transaction interleave
            c.line(name)
            await asyncio.gather(asyncio.create_task(child(name)))
            return tx.id

    async def child(name: str) -> None:
        await asyncio.sleep(0.01)
        c.atomic(f"{name} child", "SQL", 1.0)

    ids = dict(zip("ab", await asyncio.gather(handler("a"), handler("b")), strict=True))
    entries = await emitted(node, c, 8, "tasks")
    for entry in by_kind(entries, "line"):
        assert entry["parent"] == ids[entry["message"]]
    for entry in by_kind(entries, "atomic"):
        assert entry["parent"] == ids[entry["name"][0]]


@pytest.mark.integration
async def test_rejected_entries_are_counted_with_their_reason(node: Any) -> None:
    c = client_of(node, "rejects")
    for message in ("ok", "bad", "ok", "bad"):
        c.line(message, severity=9 if message == "bad" else None)  # the node takes 0..7
    assert await asyncio.to_thread(c.flush, 5)
    stats = c.stats
    entries = await emitted(node, c, 2, "rejects")
    assert (stats["acked"], stats["rejected"], stats["pending"]) == (2, 2, 0)
    assert stats["last_errors"][-1].startswith("rejected: severity: outside 0..7: {")
    assert [e["message"] for e in entries] == ["ok", "ok"]


@pytest.mark.parametrize("failure", ["drop_after", "error_after"])
def test_unacknowledged_entries_are_resent_after_a_reconnect(failure: str) -> None:
    after = {"drop_after": None, "error_after": None, failure: 30}
    server = FaultyPeer(
        drop_after=after["drop_after"], error_after=after["error_after"], drop_times=2
    )
    with client_for(server) as c:
        for i in range(100):
            c.line(str(i))
        assert c.flush(10)
        stats = c.stats
    server.close()
    # At least once: nothing lost, in order, duplicates only of what was not acked.
    messages = [int(e["message"]) for e in server.entries]
    assert sorted(set(messages)) == list(range(100))
    assert stats["acked"] == 100 and stats["reconnects"] == 2 and stats["pending"] == 0
    if failure == "error_after":
        assert "server: spool full" in stats["last_errors"]


def test_a_rejected_entry_is_not_resent() -> None:
    server = FaultyPeer(reject=lambda e: "bad" if e["message"] == "0" else None, drop_after=2)
    with client_for(server) as c:
        for i in range(3):
            c.line(str(i))
        assert c.flush(10)
        stats = c.stats
    server.close()
    assert (stats["rejected"], stats["acked"], stats["reconnects"]) == (1, 2, 1)
    assert [e["message"] for e in server.received].count("0") == 1


def test_a_full_buffer_drops_new_entries_without_blocking() -> None:
    server = FaultyPeer(silent=True)  # accepts the connection, never acknowledges
    c = client_for(server, buffer_entries=50)
    started = time.monotonic()
    for i in range(10_000):
        c.line(str(i))
    assert time.monotonic() - started < 2
    stats = c.stats
    assert (stats["dropped"], stats["pending"]) == (9_950, 50)
    assert not c.flush(0.1)
    assert not c.close(0.1)
    server.close()


def test_emitting_never_raises_without_a_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    c = Client("127.0.0.1", port, flush_interval=0.01, max_backoff=0.05)
    c.line("lost", data={"odd": object()})
    time.sleep(0.3)
    stats = c.stats
    assert stats["pending"] == 1 and not stats["connected"]
    assert stats["last_errors"][-1].startswith(f"connect to 127.0.0.1:{port}")
    assert not c.close(0.1)


# -- integration: a real node ----------------------------------------------


@pytest.fixture
async def node(tmp_path: Path) -> Any:
    from vigil.node import Node
    from vigil.settings import load

    n = Node(load(environ={}, overrides=node_overrides(tmp_path)))
    await n.start()
    yield n
    await n.stop()


def node_overrides(data_dir: Path, eventlog_port: int = 0) -> dict[str, Any]:
    return {
        "data_dir": data_dir,
        "http_port": 0,
        "graphite_port": 0,
        "statsd_port": 0,
        "eventlog_port": eventlog_port,
        "syslog_port": 0,
    }


async def search(http_port: int, **params: Any) -> list[dict[str, Any]]:
    """Every entry the node finds for ``params``, following cursors."""
    found: list[dict[str, Any]] = []
    params = {"from": time.time() - 3600, "until": time.time() + 60, "limit": 1000, **params}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
        while True:
            r = await http.get("/api/logs/search", params=params)
            r.raise_for_status()
            body = r.json()
            found += body["entries"]
            if not body.get("next_cursor"):
                return found
            params["cursor"] = body["next_cursor"]


async def search_until(http_port: int, count: int, **params: Any) -> list[dict[str, Any]]:
    """Search until ``count`` entries are found (the store flushes in the background)."""
    deadline = time.monotonic() + 15
    while True:
        found = await search(http_port, **params)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


@pytest.mark.integration
async def test_transactions_reach_a_node_with_their_parents(node: Any) -> None:
    c = Client("127.0.0.1", node.ports["eventlog"], app="it-client", flush_interval=0.01)
    with c.transaction("GET /cart") as outer:
        with c.transaction("select", "SQL") as inner:
            c.line("inside")
        with pytest.raises(RuntimeError), c.transaction("pay", "RPC"):
            raise RuntimeError("card declined")
    assert await asyncio.to_thread(c.close, 10)
    found = await search_until(node.ports["http"], 7, app="it-client")
    assert len(found) == 7
    begins = {e["name"]: e for e in found if e["kind"] == "begin"}
    ends = {e["name"]: e for e in found if e["kind"] == "end"}
    assert begins["select"]["parent"] == outer.id and begins["pay"]["parent"] == outer.id
    assert not begins["GET /cart"].get("parent")
    assert [e["parent"] for e in found if e["kind"] == "line"] == [inner.id]
    assert ends["pay"]["status"] == 1 and "card declined" in ends["pay"]["message"]
    assert ends["pay"]["data"]["exception"] == "RuntimeError"
    assert ends["GET /cart"]["status"] == 0 and ends["GET /cart"]["id"] == outer.id


@pytest.mark.integration
async def test_entries_survive_a_node_restart(tmp_path: Path) -> None:
    from vigil.node import Node
    from vigil.settings import load

    first = Node(load(environ={}, overrides=node_overrides(tmp_path)))
    await first.start()
    port = first.ports["eventlog"]
    c = Client("127.0.0.1", port, app="it-restart", flush_interval=0.01, max_backoff=0.2)
    for i in range(500):
        c.line(f"before {i}")
    assert await asyncio.to_thread(c.flush, 10)  # connected and acknowledged
    for i in range(500):
        c.line(f"stopping {i}")  # some in flight, unacknowledged, when the node stops
    await asyncio.sleep(0.005)
    await first.stop()
    for i in range(500):
        c.line(f"during {i}")  # buffered while no node listens
    second = Node(load(environ={}, overrides=node_overrides(tmp_path, port)))
    await second.start()
    try:
        for i in range(500):
            c.line(f"after {i}")
        assert await asyncio.to_thread(c.close, 20)
        stats = c.stats
        found = await search_until(second.ports["http"], 2000, app="it-restart")
    finally:
        await second.stop()
    assert stats["acked"] >= 2000 and stats["reconnects"] >= 1
    phases = ("before", "stopping", "during", "after")
    expected = {f"{phase} {i}" for phase in phases for i in range(500)}
    assert {e["message"] for e in found} == expected


@pytest.mark.integration
async def test_a_full_buffer_drops_and_counts_without_blocking(node: Any) -> None:
    # A long flush interval lets a burst outrun the sender, which waits to batch.
    c = Client("127.0.0.1", node.ports["eventlog"], app="it-drops", buffer_entries=100)
    c.flush_interval = 1.0
    started = time.monotonic()
    for i in range(5000):
        c.line(str(i))
    assert time.monotonic() - started < 2
    assert await asyncio.to_thread(c.close, 10)
    stats = c.stats
    assert stats["dropped"] > 0 and stats["dropped"] + stats["acked"] == 5000
    found = await search_until(node.ports["http"], stats["acked"], app="it-drops")
    assert len(found) == stats["acked"]
