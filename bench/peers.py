"""Drivers for the peers: Graphite carbon-cache 1.1.10 and VictoriaMetrics 1.79.

Both are installed by bench/setup-peers.sh; a driver whose peer is missing
says how to install it instead of failing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import struct
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from payload import Payload
from servers import (
    BENCH_DIR,
    QUERY_LABELS,
    Http,
    Query,
    Server,
    ServerError,
    free_port,
    wait_for_port,
)

PEERS_VENV = BENCH_DIR / ".peers" / "venv"
SETUP_HINT = "install it with: bash bench/setup-peers.sh"


class Carbon(Server):
    """Graphite carbon-cache 1.1.10 writing whisper files; it has no render API of its own."""

    key = "carbon"
    title = "carbon-cache"
    query_note = "n/a: carbon has no render API without graphite-web"
    #: Whisper preallocates each file for its whole retention, so this sets bytes on disk.
    retention: ClassVar[str] = "10s:1d"
    _whisper: ClassVar[types.ModuleType | None] = None

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self._pending: set[str] | None = None
        self._next_scan = 0.0

    @classmethod
    def script(cls) -> Path:
        """Return the carbon-cache.py entry point in the peers venv."""
        return PEERS_VENV / "bin" / "carbon-cache.py"

    @classmethod
    def missing(cls) -> str | None:
        """Tell whether carbon and whisper are installed in bench/.peers/venv."""
        if not cls.script().exists() or not list(
            PEERS_VENV.glob("lib/python*/site-packages/whisper.py")
        ):
            return f"carbon 1.1.10 is not installed in {PEERS_VENV}: {SETUP_HINT}"
        return None

    @classmethod
    def whisper(cls) -> types.ModuleType:
        """Load whisper.py from the peers venv (a single pure-Python module)."""
        if cls._whisper is None:
            path = next(PEERS_VENV.glob("lib/python*/site-packages/whisper.py"))
            spec = importlib.util.spec_from_file_location("whisper", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            cls._whisper = module
        return cls._whisper

    def command(self) -> tuple[list[str], dict[str, str]]:
        """Write carbon.conf and storage-schemas.conf, and run carbon-cache in the foreground."""
        conf = self.workdir / "conf"
        conf.mkdir()
        self.graphite_port = free_port()
        settings = {
            "STORAGE_DIR": self.workdir / "storage",
            "LOCAL_DATA_DIR": self.data_dir,
            "WHITELISTS_DIR": self.workdir / "storage" / "lists",
            "LOG_DIR": self.workdir / "log",
            "PID_DIR": self.workdir,
            "DATABASE": "whisper",
            "USER": "",
            "ENABLE_LOGROTATION": "False",
            # The stock limits (50 creates/min, 500 updates/s) make carbon drop
            # most of a benchmark's points silently: lift them.
            "MAX_CACHE_SIZE": "inf",
            "MAX_UPDATES_PER_SECOND": "inf",
            "MAX_UPDATES_PER_SECOND_ON_SHUTDOWN": "inf",
            "MAX_CREATES_PER_MINUTE": "inf",
            "LINE_RECEIVER_INTERFACE": "127.0.0.1",
            "LINE_RECEIVER_PORT": self.graphite_port,
            "ENABLE_UDP_LISTENER": "False",
            "PICKLE_RECEIVER_INTERFACE": "127.0.0.1",
            "PICKLE_RECEIVER_PORT": free_port(),
            "CACHE_QUERY_INTERFACE": "127.0.0.1",
            "CACHE_QUERY_PORT": free_port(),
            "USE_FLOW_CONTROL": "True",
            "CACHE_WRITE_STRATEGY": "sorted",
            "WHISPER_AUTOFLUSH": "False",
            "WHISPER_FALLOCATE_CREATE": "True",
            "LOG_LISTENER_CONNECTIONS": "False",
        }
        (conf / "carbon.conf").write_text(
            "[cache]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        )
        (conf / "storage-schemas.conf").write_text(
            f"[bench]\npattern = .*\nretentions = {self.retention}\n"
        )
        env = dict(os.environ, GRAPHITE_ROOT=str(self.workdir), GRAPHITE_NO_PREFIX="True")
        env.pop("PYTHONPATH", None)
        argv = [
            str(PEERS_VENV / "bin" / "python"),
            str(self.script()),
            f"--config={conf / 'carbon.conf'}",
            "--nodaemon",
            f"--logdir={self.workdir / 'log'}",
            f"--pidfile={self.workdir / 'carbon-cache.pid'}",
            "start",
        ]
        return argv, env

    def wait_ready(self, deadline: float) -> None:
        """Wait for the line receiver to accept connections."""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                socket.create_connection(("127.0.0.1", self.graphite_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise ServerError(f"line receiver on 127.0.0.1:{self.graphite_port} did not open")

    def _path(self, name: str) -> Path:
        return self.data_dir.joinpath(*name.split(".")).with_suffix(".wsp")

    def _values(self, name: str, start: int, end: int) -> list[tuple[int, Any]]:
        """Return (ts, value) pairs of one whisper file between start and end inclusive."""
        whisper = self.whisper()
        try:
            (t0, _, step), values = whisper.fetch(str(self._path(name)), start - 1, end)
        except (OSError, ValueError, struct.error, whisper.WhisperException):
            return []  # not created yet, or still being created

        return [(t0 + i * step, v) for i, v in enumerate(values)]

    def _has_last(self, name: str, payload: Payload) -> bool:
        values = self._values(name, payload.end - payload.step, payload.end)
        return any(ts == payload.end and v is not None for ts, v in values)

    def samples_visible(self, payload: Payload) -> bool:
        """Tell whether every whisper file holds the payload's last point.

        Carbon's writer reaches each series at its own time, so the samples
        say little about the rest: once they are written, check every file,
        dropping those already done from later scans. A scan of 5,000 files
        takes ~0.1 s of the benchmark's own CPU, which competes with carbon
        for the cores: scans are spaced to use at most a quarter of a core.
        """
        self.check_alive()
        if self._pending is None:
            if not all(self._has_last(name, payload) for name in payload.samples):
                return False
            self._pending = set(payload.names)
        now = time.monotonic()
        if now < self._next_scan:
            return False
        self._pending = {n for n in self._pending if not self._has_last(n, payload)}
        self._next_scan = now + 4 * (time.monotonic() - now)
        return not self._pending

    def count_points(self, payload: Payload) -> int:
        """Count the non-null points of every whisper file over the payload's span."""
        total = 0
        for name in payload.names:
            values = self._values(name, payload.start, payload.end)
            total += sum(
                1 for ts, v in values if v is not None and payload.start <= ts <= payload.end
            )
        return total


class VictoriaMetrics(Server):
    """VictoriaMetrics single node from Debian (1.79), fed over its Graphite listener."""

    key = "vm"
    title = "VictoriaMetrics"
    query_note = "Prometheus /api/v1/query_range (no /render in 1.79)"
    #: VictoriaMetrics saves its in-memory caches (tsid, metric names, rollup
    #: results) to <data>/cache on a graceful stop; it rebuilds them if absent.
    cache_entries = ("cache",)
    #: Bypass VictoriaMetrics' response cache, so repeats measure the query, not the cache.
    nocache: ClassVar[bool] = True

    @classmethod
    def binary(cls) -> str | None:
        """Return the path of the victoria-metrics binary, if installed."""
        return shutil.which("victoria-metrics")

    @classmethod
    def missing(cls) -> str | None:
        """Tell whether victoria-metrics is installed."""
        if cls.binary() is None:
            return f"victoria-metrics is not installed: {SETUP_HINT} (apt package victoria-metrics)"
        return None

    def command(self) -> tuple[list[str], dict[str, str]]:
        """Return the victoria-metrics argv with loopback listeners and our data dir."""
        self.http_port, self.graphite_port = free_port(), free_port()
        argv = [
            str(self.binary()),
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr=127.0.0.1:{self.http_port}",
            f"-graphiteListenAddr=127.0.0.1:{self.graphite_port}",
        ]
        return argv, dict(os.environ)

    def wait_ready(self, deadline: float) -> None:
        """Wait for /health and the Graphite listener."""
        http = self.http = Http(self.http_port)
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if http.get("/health", [])[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise ServerError("/health did not answer 200")
        wait_for_port(self.graphite_port, deadline)

    def _get(self, path: str, params: list[tuple[str, str | int]]) -> Any:
        if self.nocache:
            params = [*params, ("nocache", 1)]
        status, body = self.client().get(path, params)
        if status != 200:
            raise ServerError(f"{path} {params[:1]} -> HTTP {status}: {body[:300]!r}")
        return json.loads(body)

    def _scalar(self, query: str, at: int) -> float:
        data = self._get("/api/v1/query", [("query", query), ("time", at)])
        result = data["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    @staticmethod
    def _regex(names: Sequence[str]) -> str:
        return "|".join(re.escape(n).replace("\\.", "[.]") for n in names)

    def samples_visible(self, payload: Payload) -> bool:
        """Count the sampled series that have a sample at the last timestamp."""
        query = (
            f'count(count_over_time({{__name__=~"{self._regex(payload.samples)}"}}'
            f"[{payload.step}s]))"
        )
        try:
            return self._scalar(query, payload.end) >= len(payload.samples)
        except (ServerError, OSError, ValueError, KeyError):
            self.check_alive()
            return False

    def count_points(self, payload: Payload) -> int:
        """Sum count_over_time over all bench series across the payload's span."""
        span = payload.end - payload.start + payload.step
        query = f'sum(count_over_time({{__name__=~"bench[.].+"}}[{span}s]))'
        return int(self._scalar(query, payload.end))

    def queries(self, payload: Payload) -> list[Query]:
        """Return the PromQL equivalents of the three render queries."""
        day, span = payload.end - 86_400, payload.start - payload.step
        specs = [
            (f'{{__name__="{payload.single_target}"}}', day, 1),
            ('sum({__name__=~"bench[.]c0[.][^.]+[.]cpu_user"})', span, 1),
            ('{__name__=~"bench[.]c0[.][^.]+[.][^.]+"}', span, payload.wildcard_series),
        ]
        out = []
        for label, (promql, start, expected) in zip(QUERY_LABELS, specs, strict=True):
            params: list[tuple[str, str | int]] = [
                ("query", promql),
                ("start", start),
                ("end", payload.end),
                ("step", f"{payload.step}s"),
            ]
            if self.nocache:
                params.append(("nocache", 1))

            def fetch(p: list[tuple[str, str | int]] = params) -> bytes:
                status, body = self.client().get("/api/v1/query_range", p)
                if status != 200:
                    raise ServerError(f"query_range -> HTTP {status}: {body[:300]!r}")
                return body

            out.append(
                Query(
                    label,
                    f"query_range {promql} start={start}",
                    expected,
                    fetch,
                    lambda body: len(json.loads(body)["data"]["result"]),
                )
            )
        return out
