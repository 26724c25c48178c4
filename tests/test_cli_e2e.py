"""End to end: the real ``vigil serve`` as a subprocess, fed over real sockets."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


class Server:
    def __init__(
        self, data_dir: Path, proc: subprocess.Popen[bytes], ports: dict[str, int]
    ) -> None:
        self.data_dir = data_dir
        self.proc = proc
        self.ports = ports
        self.url = f"http://127.0.0.1:{ports['http']}"

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=30)

    def render(self, target: str, **params: Any) -> list[dict[str, Any]]:
        r = self.get("/render", target=target, format="json", **params)
        assert r.status_code == 200, r.text
        result: list[dict[str, Any]] = r.json()
        return result


def start_server(data_dir: Path, *extra: str) -> Server:
    env = {**os.environ, "VIGIL_SELFMETRICS_INTERVAL": "1", "VIGIL_STATSD_FLUSH_INTERVAL": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve", "--data-dir", str(data_dir), "--http-port", "0",
         "--graphite-port", "0", "--statsd-port", "0", "--eventlog-port", "0", "--syslog-port", "0",
         "--node-name", "e2e", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    ports_file = data_dir / "ports.json"
    deadline = time.time() + 60
    while not ports_file.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"vigil serve did not start:\n{out}")
        time.sleep(0.1)
    return Server(data_dir, proc, json.loads(ports_file.read_text()))


def stop_server(server: Server) -> str:
    server.proc.send_signal(signal.SIGTERM)
    out, _ = server.proc.communicate(timeout=60)
    return out.decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("vigil"))
    yield s
    if s.proc.poll() is None:
        stop_server(s)


def wait_for(check: Any, timeout: float = 20) -> Any:
    deadline = time.time() + timeout
    while True:
        result = check()
        if result or time.time() > deadline:
            return result
        time.sleep(0.2)


def test_plaintext_over_tcp_and_udp_is_rendered(server: Server) -> None:
    now = int(time.time()) // 10 * 10
    lines = "".join(
        f"e2e.web{i}.cpu {i}.5 {now - 20}\ne2e.web{i}.cpu {i + 1}.5 {now - 10}\n" for i in range(3)
    )
    with socket.create_connection(("127.0.0.1", server.ports["graphite"])) as sock:
        sock.sendall(lines.encode() + b"garbage line\ne2e.bad nan 1\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(f"e2e.udp.x 7 {now - 10}\n".encode(), ("127.0.0.1", server.ports["graphite"]))

    def rendered() -> list[dict[str, Any]]:
        got = server.render("e2e.*.cpu", **{"from": str(now - 30), "until": str(now)})
        return got if len(got) == 3 and all(d["datapoints"][-1][0] is not None for d in got) else []

    series = wait_for(rendered)
    assert [s["target"] for s in series] == ["e2e.web0.cpu", "e2e.web1.cpu", "e2e.web2.cpu"]
    assert series[1]["datapoints"] == [[None, now - 30], [1.5, now - 20], [2.5, now - 10]]
    udp_series = wait_for(
        lambda: server.render("e2e.udp.x", **{"from": str(now - 10), "until": str(now)})
    )
    assert udp_series[0]["datapoints"] == [[7.0, now - 10]]
    summed = server.render("sumSeries(e2e.*.cpu)", **{"from": str(now - 20), "until": str(now - 1)})
    assert summed[0]["datapoints"] == [[0.5 + 1.5 + 2.5, now - 20], [1.5 + 2.5 + 3.5, now - 10]]

    def rejects() -> str:
        text = server.get("/metrics").text
        return text if "value is NaN or infinite" in text else ""

    metrics = wait_for(rejects)
    assert (
        'vigil_ingest_rejected_total{protocol="graphite",reason="expected 3 fields (path value timestamp), got 2"} 1.0'
        in metrics
    )


def test_statsd_counters_timers_and_gauges_are_flushed(server: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for i in range(100):
            udp.sendto(
                f"e2e.req:1|c\ne2e.lat:{i}|ms\n".encode(), ("127.0.0.1", server.ports["statsd"])
            )
        udp.sendto(b"e2e.temp:20|g\ne2e.temp:+2|g\n", ("127.0.0.1", server.ports["statsd"]))

    def total(target: str) -> float:
        got = server.render(target, **{"from": "-5min"})
        return sum(v for s in got for v, _ in s["datapoints"] if v is not None)

    assert wait_for(lambda: total("stats.counters.e2e.req.count") == 100)
    assert wait_for(lambda: total("stats.timers.e2e.lat.count") == 100)
    upper = server.render("stats.timers.e2e.lat.upper", **{"from": "-5min"})
    assert max(v for v, _ in upper[0]["datapoints"] if v is not None) == 99
    assert wait_for(lambda: server.render("stats.gauges.e2e.temp", **{"from": "-5min"}))
    gauge = server.render("stats.gauges.e2e.temp", **{"from": "-5min"})
    assert [v for v, _ in gauge[0]["datapoints"] if v is not None][-1] == 22


def test_events_from_the_cli_show_in_the_events_api(server: Server) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vigil", "event", "deploy", "--what", "deploy web 1.2", "--tags", "web",
         "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    events = server.get("/events/get_data", **{"from": "-1h", "tags": "deploy"}).json()
    assert [(e["what"], e["tags"]) for e in events] == [("deploy web 1.2", ["deploy", "web"])]
    drawn = server.render("drawAsInfinite(events('deploy'))", **{"from": "-1h"})
    assert any(v for v, _ in drawn[0]["datapoints"])


def vigil(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil", *args], capture_output=True, text=True, timeout=120
    )


def test_logs_import_then_search_from_the_cli(server: Server, tmp_path: Path) -> None:
    rotated = tmp_path / "app.log.1.gz"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 60))
    text = (
        f"{stamp},120 ERROR payment failed for order 17\n"
        "Traceback (most recent call last):\n"
        '  File "pay.py", line 9, in charge\n'
        "ValueError: card declined\n"
        f"{stamp},250 INFO retry scheduled\n"
    )
    rotated.write_bytes(gzip.compress(text.encode()))
    out = vigil(
        "logs", "import", "--url", server.url, "--host", "pay1", "--no-progress", str(rotated)
    )
    assert out.returncode == 0, out.stdout + out.stderr
    args = ("logs", "search", "declined", "--host", "pay1", "--data-dir", str(server.data_dir))
    found = wait_for(lambda: (r := vigil(*args)).stdout and r)
    assert found and found.returncode == 0, found
    (line,) = [x for x in found.stdout.splitlines() if "pay1" in x]
    assert "payment failed for order 17" in line and "ValueError: card declined" in found.stdout
    missing = vigil("logs", "search", "x", "--until=-2d", "--data-dir", str(server.data_dir))
    assert missing.returncode == 1 and "until must be after from" in missing.stderr


def test_cube_and_errors_from_the_cli(server: Server) -> None:
    now = time.time()
    lines = b"".join(
        json.dumps({"ts": now, "kind": "end", "host": f"api{i % 2}", "app": "billing",
                    "name": "charge", "id": f"c{i}", "status": 502 if i % 4 == 0 else 0,
                    "duration_ms": 5.0 + i,
                    "message": "upstream 10.0.0.7 refused" if i % 4 == 0 else ""}).encode() + b"\n"
        for i in range(8)
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.ports["eventlog"])) as sock:
        sock.sendall(lines)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    where = ("--data-dir", str(server.data_dir))
    cube = wait_for(
        lambda: (
            "api1"
            in (r := vigil("cube", "--group-by", "host", "--where", "app=billing", *where)).stdout
            and r
        )
    )
    assert cube, "cube rows never showed"
    header, *rows = cube.stdout.splitlines()
    assert header.split() == ["host", "count", "errors", "p50", "p99"]
    assert sorted(r.split()[:3] for r in rows) == [["api0", "4", "2"], ["api1", "4", "0"]]
    errors = wait_for(lambda: "refused" in (r := vigil("errors", "list", *where)).stdout and r)
    assert errors and "upstream <ip> refused" in errors.stdout


def test_status_and_compact_commands(server: Server) -> None:
    def run(command: str) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "vigil", command, "--data-dir", str(server.data_dir)],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    status = run("status")
    assert (
        status["ports"] == server.ports and status["destinations"]["store"]["overflow"] == "spill"
    )
    assert "points" in run("compact")["compacted"]


def test_self_metrics_are_written_into_vigil(server: Server) -> None:
    assert wait_for(
        lambda: server.render("vigil.e2e.ingest.points_total.graphite", **{"from": "-5min"})
    )
    assert server.get("/metrics/find", query="vigil.e2e.*").json()


def test_api_errors_are_400_with_a_message(server: Server) -> None:
    r = server.get("/render", target="noSuchFunction(a.b)")
    assert r.status_code == 400 and "noSuchFunction" in r.json()["error"]
    r = server.get("/render", target="a.b", **{"from": "yesterdayish"})
    assert r.status_code == 400 and "yesterdayish" in r.json()["error"]
    assert server.get("/version").text == "1.1.10"


def test_sigterm_stores_what_was_received_and_restart_reads_it(tmp_path: Path) -> None:
    s = start_server(tmp_path)
    now = int(time.time()) // 10 * 10
    with socket.create_connection(("127.0.0.1", s.ports["graphite"])) as sock:
        sock.sendall("".join(f"keep.s{i} {i} {now - 10}\n" for i in range(1000)).encode())
    time.sleep(0.5)
    log = stop_server(s)
    assert s.proc.returncode == 0, log
    s = start_server(tmp_path)
    try:
        got = s.render("keep.*", **{"from": str(now - 10), "until": str(now - 1)})
        assert len(got) == 1000 and sum(d["datapoints"][0][0] for d in got) == sum(range(1000))
    finally:
        stop_server(s)
