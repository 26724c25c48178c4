"""Importing log files over HTTP: batching, retries, rejects, the command line."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from vigil.ship.importer import ImportFailed, add_arguments, import_files, run

T0 = 1763899200.0  # 2025-11-23 12:00:00 UTC


def recording(
    answer: Callable[[list[dict[str, Any]]], httpx.Response],
) -> tuple[httpx.MockTransport, list[list[dict[str, Any]]]]:
    """A transport that answers posts with ``answer`` and keeps the bodies it saw."""
    bodies: list[list[dict[str, Any]]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/api/logs")
        entries = [orjson.loads(line) for line in request.content.splitlines()]
        bodies.append(entries)
        return answer(entries)

    return httpx.MockTransport(handle), bodies


def accept_all(entries: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(200, json={"accepted": len(entries), "rejected": []})


def write_log(path: Path, count: int, *, start: float = T0) -> None:
    text = "".join(
        f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(start + i))}Z INFO line {i}\n"
        for i in range(count)
    )
    path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())


def test_files_are_posted_in_batches_with_source_defaults(tmp_path: Path) -> None:
    write_log(tmp_path / "api.log", 7)
    write_log(tmp_path / "api.log.1.gz", 5)
    transport, bodies = recording(accept_all)
    report = import_files(
        "http://vigil:8080/",
        [tmp_path / "api.log.1.gz", tmp_path / "api.log"],
        host="web01",
        app="",
        batch_entries=3,
        progress=False,
        transport=transport,
    )
    assert [len(b) for b in bodies] == [3, 2, 3, 3, 1]
    assert (report.files, report.entries, report.accepted, report.rejected) == (2, 12, 12, 0)
    first = bodies[0][0]
    assert (first["host"], first["app"], first["message"], first["ts"]) == (
        "web01",
        "api",
        "INFO line 0",
        T0,
    )


def test_rejects_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text('{"kind": "nope", "ts": 1}\n2025-11-23T12:00:00Z ok\n  continued\n{"ts": 1}\n')

    def answer(entries: list[dict[str, Any]]) -> httpx.Response:
        rejected = [
            {"line": i, "error": "kind: unknown"}
            for i, e in enumerate(entries, 1)
            if e.get("kind") == "nope"
        ]
        rejected += [{"line": 3, "error": "ts: too old"}]
        return httpx.Response(200, json={"accepted": len(entries) - 2, "rejected": rejected})

    transport, _ = recording(answer)
    report = import_files(
        "http://vigil", [path], host="h", app="a", progress=False, transport=transport
    )
    assert (report.entries, report.accepted, report.rejected) == (3, 1, 2)
    assert report.errors == [f"{path}:1: kind: unknown", f"{path}:4: ts: too old"]


def test_a_node_busy_for_good_fails_the_import(tmp_path: Path) -> None:
    write_log(tmp_path / "app.log", 1)
    transport, bodies = recording(lambda entries: httpx.Response(503, text="bus full"))
    with pytest.raises(ImportFailed, match=r"stayed busy \(503: bus full\) for 12 attempts"):
        import_files(
            "http://vigil", [tmp_path / "app.log"], host="h", app="a", progress=False,
            retry_delay=0.0, transport=transport,
        )  # fmt: skip
    assert len(bodies) == 12


def test_a_busy_node_is_retried(tmp_path: Path) -> None:
    write_log(tmp_path / "app.log", 2)
    answers = iter([503, 503, 200])

    def answer(entries: list[dict[str, Any]]) -> httpx.Response:
        status = next(answers)
        if status == 503:
            return httpx.Response(503, json={"error": "bus full; retry later"})
        return accept_all(entries)

    transport, bodies = recording(answer)
    report = import_files(
        "http://vigil",
        [tmp_path / "app.log"],
        host="h",
        app="a",
        progress=False,
        retry_delay=0.0,
        transport=transport,
    )
    assert len(bodies) == 3 and report.accepted == 2


def test_a_batch_too_large_is_split(tmp_path: Path) -> None:
    write_log(tmp_path / "app.log", 5)

    def answer(entries: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(413) if len(entries) > 2 else accept_all(entries)

    transport, bodies = recording(answer)
    report = import_files(
        "http://vigil", [tmp_path / "app.log"], host="h", app="a", progress=False,
        transport=transport,
    )  # fmt: skip
    assert [len(b) for b in bodies] == [5, 2, 3, 1, 2]
    assert report.accepted == 5


def test_an_unreachable_node_fails_the_import_with_a_hint(tmp_path: Path) -> None:
    write_log(tmp_path / "app.log", 1)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(
        ImportFailed, match=r"cannot reach http://vigil/api/logs: .*`vigil serve` running"
    ):
        import_files(
            "http://vigil", [tmp_path / "app.log"], host="h", app="a", progress=False,
            retry_delay=0.0, transport=httpx.MockTransport(refuse),
        )  # fmt: skip


def test_unreadable_files_are_reported_and_the_rest_imported(tmp_path: Path) -> None:
    write_log(tmp_path / "good.log", 2)
    (tmp_path / "cut.log.gz").write_bytes(gzip.compress(b"x\n" * 10_000)[:-20])
    transport, _ = recording(accept_all)
    report = import_files(
        "http://vigil",
        [tmp_path / "missing.log", tmp_path / "cut.log.gz", tmp_path / "good.log"],
        host="h",
        app="a",
        progress=False,
        transport=transport,
    )
    assert (report.files, report.unreadable) == (3, 2)
    assert report.accepted == report.entries > 2  # what the damaged file held before the damage
    assert report.errors[0] == f"{tmp_path / 'missing.log'}: No such file or directory"
    assert "Compressed file ended" in report.errors[1]
    assert "2 file(s) not read to the end" in report.summary()


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["a.log", "b.log.gz", "--app", "shop", "--batch", "10"])
    assert args.files == [Path("a.log"), Path("b.log.gz")]
    assert (args.url, args.host, args.app, args.batch, args.no_progress) == (
        "http://127.0.0.1:8080",
        None,
        "shop",
        10,
        False,
    )


# -- integration: a real node ----------------------------------------------


@pytest.fixture
async def node(tmp_path: Path) -> Any:
    from vigil.node import Node
    from vigil.settings import load

    overrides = {
        "data_dir": tmp_path / "data",
        "http_port": 0,
        "graphite_port": 0,
        "statsd_port": 0,
        "eventlog_port": 0,
        "syslog_port": 0,
    }
    n = Node(load(environ={}, overrides=overrides))
    await n.start()
    yield n
    await n.stop()


async def search_until(http_port: int, count: int, **params: Any) -> list[dict[str, Any]]:
    """Entries matching ``params``, polled until ``count`` are found or 15 s pass."""
    params = {"from": int(time.time()) - 86400, "until": "now", "limit": 1000, **params}
    deadline = time.monotonic() + 15
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
        while True:
            r = await http.get("/api/logs/search", params=params)
            r.raise_for_status()
            found: list[dict[str, Any]] = r.json()["entries"]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)


@pytest.mark.integration
async def test_plain_and_rotated_files_are_imported_and_searchable(
    node: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = int(time.time()) - 600  # the node rejects entries older than a week
    write_log(tmp_path / "shop.log.1.gz", 300, start=start)
    with (tmp_path / "shop.log").open("w") as f:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start + 400))
        f.write(f"{stamp},250 ERROR checkout failed\n")
        f.write('Traceback (most recent call last):\n  File "cart.py", line 3\nKeyError: sku\n')
        f.write('{"kind": "bogus", "ts": 1}\n')
        f.write(f"{stamp},500 INFO recovered\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [str(tmp_path / "shop.log.1.gz"), str(tmp_path / "shop.log"), "--no-progress"]
        + ["--url", f"http://127.0.0.1:{node.ports['http']}", "--host", "web07", "--batch", "100"]
    )
    code = await asyncio.to_thread(run, args)
    out = capsys.readouterr().out
    assert code == 1  # the bogus line was rejected
    assert "2 file(s): 303 entries read, 302 accepted, 1 rejected" in out
    assert f"{tmp_path / 'shop.log'}:5: " in out
    found = await search_until(node.ports["http"], 302, host="web07", app="shop")
    assert len(found) == 302
    (failed,) = [e for e in found if e["message"].startswith("ERROR checkout failed")]
    assert failed["message"].endswith("KeyError: sku") and failed["severity"] == 3
    assert abs(failed["ts"] - (start + 400.25)) < 1e-3
    rotated = sorted(e["message"] for e in found if e["message"].startswith("INFO line"))
    assert rotated == sorted(f"INFO line {i}" for i in range(300))
