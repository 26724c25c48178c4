"""The server drivers' common part, and the driver for Vigil; the peers are in peers.py.

Each driver starts its server on loopback free ports with a data directory
of its own, tells when the whole payload is queryable, counts the points the
server holds, offers the three render queries in the server's own query
language, and stops the server gracefully so that its data is flushed
before the data directory is measured.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import procstat
from payload import Payload
from procstat import disk_usage

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


class ServerError(RuntimeError):
    """The server could not be started, fed or queried; the message says why."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, deadline: float) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise ServerError(f"nothing listens on 127.0.0.1:{port}")


def send_chunks(port: int, chunks: list[bytes]) -> None:
    """Send every chunk over one TCP connection with sendall, then close our side."""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)


class Http:
    """A keep-alive HTTP/1.1 client for one loopback server, reconnecting on errors."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str, params: Sequence[tuple[str, str | int]]) -> tuple[int, bytes]:
        """Send GET ``path?params`` and return (status, body); reconnect once if needed."""
        return self.request("GET", f"{path}?{urllib.parse.urlencode(params)}")

    def request(self, method: str, url: str) -> tuple[int, bytes]:
        """Send one request and return (status, body); reconnect once if needed."""
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            try:
                self._conn.request(method, url)
                resp = self._conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection, if any."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class Query:
    """One render query: ``fetch`` sends it and returns the body, ``series`` counts results."""

    label: str
    text: str
    expected_series: int
    fetch: Callable[[], bytes]
    series: Callable[[bytes], int]


QUERY_LABELS = ("one series, 1 day", "sumSeries of 100", "wildcard of 1000")


class Server(ABC):
    """A server under test, started in ``workdir`` and stopped by :meth:`stop`."""

    key: ClassVar[str]
    title: ClassVar[str]
    #: What this server's render latency figures mean, or why there are none.
    query_note: ClassVar[str]
    #: Top-level entries of the data dir that hold rebuildable caches, not data.
    cache_entries: ClassVar[tuple[str, ...]] = ()

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True)
        self.log_path = workdir / f"{self.key}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.graphite_port = 0
        self.http: Http | None = None

    @classmethod
    @abstractmethod
    def missing(cls) -> str | None:
        """Return why the server cannot run here and how to fix it, or None if it can."""

    @abstractmethod
    def command(self) -> tuple[list[str], dict[str, str]]:
        """Return the argv and environment that start the server."""

    @abstractmethod
    def wait_ready(self, deadline: float) -> None:
        """Wait until the server accepts data and queries; set ``graphite_port``."""

    @abstractmethod
    def samples_visible(self, payload: Payload) -> bool:
        """Tell whether the sampled series show their last point."""

    @abstractmethod
    def count_points(self, payload: Payload) -> int:
        """Return how many of the payload's points the server returns."""

    def queries(self, payload: Payload) -> list[Query]:
        """Return the render queries, or an empty list where they do not apply."""
        return []

    def client(self) -> Http:
        """Return the HTTP client of a started server."""
        if self.http is None:
            raise ServerError(f"{self.title} has no HTTP client: start it first")
        return self.http

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU-seconds used so far by every process of the server under test."""
        return procstat.cpu_seconds(self.pid)

    def peak_rss_bytes(self) -> int:
        """Peak resident memory of the server's processes (summed: an upper bound)."""
        return procstat.peak_rss_bytes(self.pid)

    def breakdown(self, points: int) -> dict[str, float]:
        """Figures per process of a server of several (none for one process)."""
        return {}

    def send(self, chunks: list[bytes]) -> None:
        """Send the plaintext payload over one TCP connection to the Graphite port."""
        send_chunks(self.graphite_port, chunks)

    def start(self, timeout: float) -> None:
        """Start the server and wait until it is ready."""
        argv, env = self.command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        try:
            self.wait_ready(deadline)
        except ServerError as exc:
            self.stop(5)
            raise ServerError(f"{self.title} did not start: {exc}\n{self.log_tail()}") from exc

    def check_alive(self) -> None:
        """Raise ServerError with the log's tail if the server has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(
                f"{self.title} exited with code {self.proc.returncode}\n{self.log_tail()}"
            )

    def settle(self) -> int | None:
        """Compact before the stop where the server can; its own count of live bytes, if any."""
        return None

    def stop(self, timeout: float) -> bool:
        """Stop the server with SIGTERM; return True if it exited by itself within ``timeout``.

        A server still running after ``timeout`` seconds is killed and the
        stop counts as not graceful (its data may not have been flushed).
        """
        if self.http is not None:
            self.http.close()
        if self.proc is None:
            return False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False

    def log_tail(self, lines: int = 15) -> str:
        """Return the last lines of the server's log, indented."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join("    " + line for line in text)


def _graphite_json_points(body: bytes, start: int, end: int) -> tuple[int, dict[str, int]]:
    """Count non-null points in [start, end] of a Graphite JSON render; also the last ts per target."""
    total = 0
    last: dict[str, int] = {}
    for s in json.loads(body):
        seen = [int(ts) for v, ts in s["datapoints"] if v is not None and start <= ts <= end]
        total += len(seen)
        last[s["target"]] = max(seen, default=0)
    return total, last


class Vigil(Server):
    """Vigil, started as ``vigil serve`` on port 0; it reports its ports in ports.json."""

    key = "vigil"
    title = "Vigil"
    query_note = "Graphite /render, format=json"
    binary: ClassVar[Path] = REPO / ".venv" / "bin" / "vigil"
    #: More ``vigil serve`` flags (the logs benchmark passes its settings here).
    extra_args: ClassVar[list[str]] = []

    @classmethod
    def missing(cls) -> str | None:
        """Tell whether the vigil command exists."""
        if not cls.binary.exists():
            return f"{cls.binary} not found: pip install -e . in the repository's venv"
        return None

    def command(self) -> tuple[list[str], dict[str, str]]:
        """Return ``vigil serve`` with every listener on port 0."""
        argv = [
            str(self.binary),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--bind",
            "127.0.0.1",
            "--http-port",
            "0",
            "--graphite-port",
            "0",
            "--statsd-port",
            "0",
            "--eventlog-port",
            "0",
            "--syslog-port",
            "0",
            *self.extra_args,
        ]
        return argv, dict(os.environ)

    def wait_ready(self, deadline: float) -> None:
        """Wait for ports.json, then for the HTTP and Graphite ports to accept."""
        ports_file = self.data_dir / "ports.json"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                ports = json.loads(ports_file.read_text())
                http_port, self.graphite_port = int(ports["http"]), int(ports["graphite"])
                break
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        else:
            raise ServerError(f"{ports_file} did not appear")
        self.ports = {str(k): int(v) for k, v in ports.items()}  # eventlog, syslog, ...
        wait_for_port(http_port, deadline)
        wait_for_port(self.graphite_port, deadline)
        self.http = Http(http_port)

    def settle(self) -> int | None:
        """Merge stored parts (``POST /api/compact``), then wait for merged-away parts to go.

        The embedded engine deletes merged-away parts some time later (about
        40 s when idle, longer under writes); ``du`` counts them until then,
        so the bytes of live parts that the engine reports are returned too.
        """
        return self.compact_and_wait(self.client())

    def compact_and_wait(self, http: Http) -> int:
        """``POST /api/compact`` to ``http``, then wait (60 s at most) for merged-away parts to go."""
        status, body = http.request("POST", "/api/compact")
        if status != 200:
            raise ServerError(f"/api/compact -> HTTP {status}: {body[:300]!r}")
        active = sum(t["bytes_on_disk"] for t in json.loads(body)["storage"].values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if disk_usage(self.data_dir, self.cache_entries)[0] <= 1.1 * active + 2**20:
                break
            time.sleep(2)
        return int(active)

    def _render(self, targets: Sequence[str], start: int, end: int) -> bytes:
        params: list[tuple[str, str | int]] = [("target", t) for t in targets]
        params += [("from", start), ("until", end), ("format", "json")]
        status, body = self.client().get("/render", params)
        if status != 200:
            raise ServerError(f"/render {targets[:3]} -> HTTP {status}: {body[:300]!r}")
        return body

    def samples_visible(self, payload: Payload) -> bool:
        """Render the sampled series around the last timestamp and look for it."""
        try:
            body = self._render(
                payload.samples, payload.end - 6 * payload.step, payload.end + payload.step
            )
            _, last = _graphite_json_points(body, payload.start, payload.end)
        except (ServerError, OSError, ValueError, KeyError, TypeError):
            self.check_alive()
            return False
        return all(last.get(name) == payload.end for name in payload.samples)

    def count_points(self, payload: Payload) -> int:
        """Render each cluster's wildcard over the payload's span and count non-null points."""
        total = 0
        for c in range(payload.clusters):
            body = self._render(
                [f"bench.c{c}.*.*"], payload.start - payload.step, payload.end + payload.step
            )
            total += _graphite_json_points(body, payload.start, payload.end)[0]
        return total

    def queries(self, payload: Payload) -> list[Query]:
        """Return the three Graphite render queries."""
        day = payload.end - 86_400
        span = payload.start - payload.step
        specs = [
            (payload.single_target, day, 1),
            ("sumSeries(bench.c0.*.cpu_user)", span, 1),
            ("bench.c0.*.*", span, payload.wildcard_series),
        ]
        out = []
        for label, (target, start, expected) in zip(QUERY_LABELS, specs, strict=True):

            def fetch(t: str = target, s: int = start) -> bytes:
                return self._render([t], s, payload.end)

            out.append(
                Query(
                    label,
                    f"render {target} from={start}",
                    expected,
                    fetch,
                    lambda body: len(json.loads(body)),
                )
            )
        return out
