"""What going distributed costs: the Graphite ingest benchmark on one node and on roles as processes.

Run from the repository root (bench/README.md, "Distributed ingest", reads the figures)::

    .venv/bin/python bench/distributed.py --quick          # smoke run, ~1 min
    .venv/bin/python bench/distributed.py --json out.json  # 3 runs of 1.44M points each

The payload, the sending, the "every point queryable" clock and the render
queries are those of ``graphite_ingest.py``; what changes is the server
under test:

- ``embedded``: one ``vigil serve`` (all roles, chDB, in-process bus);
- ``split``: nats-server (JetStream) + one clickhouse-server + three Vigil
  processes: ``--role ingest``, ``--role store,cube,alert`` and ``--role query``;
- ``two-ingest``: the same with two ingest processes, each sent half of the
  payload's chunks at the same time over its own connection.

CPU-seconds and peak memory are summed over every process of a variant,
NATS and ClickHouse included (the embedded engine runs inside the one
process), so the figures compare whole deployments on one machine. Bytes on
disk are the engine's data directory (for the split variants Vigil's
databases in ClickHouse's: its server logs and system tables are left out;
NATS keeps no batch once it is acknowledged).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import payload as payload_mod
import procstat
from graphite_ingest import common_parser, finish_args, medians, run_interleaved, table
from servers import REPO, Http, ServerError, Vigil, send_chunks, wait_for_port

sys.path.insert(0, str(REPO))  # the real-server helpers of the tests: one way to start them
from tests.bus.natsservers import NATS_SERVER, NatsServer
from tests.clickhouse import CLICKHOUSE_SERVER, ClickHouseServer


class Member(Vigil):
    """One ``vigil serve`` process of a split deployment, with its roles and node name."""

    def __init__(self, workdir: Path, name: str, args: list[str]) -> None:
        super().__init__(workdir / name)
        self.name = name
        self.args = ["--node-name", name, *args]

    def command(self) -> tuple[list[str], dict[str, str]]:
        """``vigil serve`` on free ports, with this member's roles and shared settings."""
        argv, env = super().command()
        return [*argv, *self.args], env

    def wait_ready(self, deadline: float) -> None:
        """Wait for ports.json and the HTTP port; note the Graphite port if it listens."""
        ports_file = self.data_dir / "ports.json"
        while True:
            self.check_alive()
            try:
                self.ports = {k: int(v) for k, v in json.loads(ports_file.read_text()).items()}
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise ServerError(f"{ports_file} did not appear") from None
                time.sleep(0.1)
        wait_for_port(self.ports["http"], deadline)
        self.graphite_port = self.ports.get("graphite", 0)
        self.http = Http(self.ports["http"])


class Split(Vigil):
    """Vigil's roles as processes over NATS JetStream and one ClickHouse server."""

    key = "split"
    title = "split: NATS + ClickHouse"
    cache_entries = ("system",)
    query_note = "Graphite /render of the query process, format=json"
    ingest_nodes = 1

    @classmethod
    def missing(cls) -> str | None:
        """Tell whether vigil, nats-server and clickhouse-server are installed."""
        for binary in map(Path, (NATS_SERVER, CLICKHOUSE_SERVER)):
            if not binary.exists():
                return f"{binary} not found: apt-get install {binary.name}"
        return super().missing()

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.nats = NatsServer(_directory(workdir / "nats"))
        self.clickhouse = ClickHouseServer(workdir / "clickhouse")
        # Bytes per point: Vigil's databases in ClickHouse's data, not its own system tables.
        self.data_dir = self.clickhouse.directory / "data" / "data"
        shared = [
            "--bus-nats", self.nats.url,
            "--clickhouse", f"127.0.0.1:{self.clickhouse.tcp_port}",
        ]  # fmt: skip
        self.members = [
            Member(workdir, "store1", ["--role", "store,cube,alert", *shared]),
            Member(workdir, "query1", ["--role", "query", *shared]),
            *(
                Member(workdir, f"ingest{i}", ["--role", "ingest", *shared])
                for i in range(1, self.ingest_nodes + 1)
            ),
        ]
        self.ingest = [m for m in self.members if m.name.startswith("ingest")]
        self._cpu_samples: list[dict[str, float]] = []

    def start(self, timeout: float) -> None:
        """Start NATS and ClickHouse, then the store (it creates the tables), query, ingest."""
        try:
            self.nats.start()
            self.clickhouse.start(timeout)
            for member in self.members:
                member.start(timeout)
        except (ServerError, RuntimeError) as exc:
            self.stop(30)
            raise ServerError(f"{self.title} did not start: {exc}") from exc
        query = self.members[1]
        self.http, self.graphite_port = query.http, self.ingest[0].graphite_port

    def _pids(self) -> dict[str, int]:
        procs = {
            "nats": self.nats.process,
            "clickhouse": self.clickhouse.process,
            **{m.name: m.proc for m in self.members},
        }
        return {name: p.pid for name, p in procs.items() if p is not None}

    def cpu_seconds(self) -> float:
        """CPU-seconds of every process: NATS, ClickHouse and each Vigil member.

        Each call is kept per process: ``breakdown`` tells the first from the last.
        """
        sample = {name: procstat.cpu_seconds(pid) for name, pid in self._pids().items()}
        self._cpu_samples.append(sample)
        return sum(sample.values())

    def breakdown(self, points: int) -> dict[str, float]:
        """CPU-seconds per million points of each process, between the first and last sample."""
        first, last = self._cpu_samples[0], self._cpu_samples[-1]
        return {
            f"cpu_s_per_mpoints:{name}": (last[name] - first[name]) / points * 1e6 for name in last
        }

    def peak_rss_bytes(self) -> int:
        """Peak resident memory summed over every process."""
        return sum(procstat.peak_rss_bytes(pid) for pid in self._pids().values())

    def check_alive(self) -> None:
        """Raise ServerError if a Vigil member has exited."""
        for member in self.members:
            member.check_alive()

    def send(self, chunks: list[bytes]) -> None:
        """Deal the chunks round-robin to the ingest members, each over its own connection."""
        errors: list[BaseException] = []

        def send_share(member: Member, share: list[bytes]) -> None:
            try:
                send_chunks(member.graphite_port, share)
            except OSError as exc:
                errors.append(exc)

        n = len(self.ingest)
        threads = [
            threading.Thread(target=send_share, args=(m, chunks[i::n]))
            for i, m in enumerate(self.ingest)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def settle(self) -> int | None:
        """Merge stored parts through the store process; ClickHouse's count of live bytes."""
        return self.compact_and_wait(self.members[0].client())

    def stop(self, timeout: float) -> bool:
        """Stop ingest first (what it took reaches the store), then query, store, NATS, ClickHouse."""
        graceful = all([m.stop(timeout) for m in reversed(self.members)])
        self.http = None  # closed with the query member
        self.nats.stop()
        self.clickhouse.stop()
        return graceful

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of every member's log."""
        return "\n".join(f"  {m.name}:\n{m.log_tail(lines)}" for m in self.members)


class TwoIngest(Split):
    """As ``split``, with two ingest processes sharing the payload."""

    key = "two-ingest"
    title = "two ingest: NATS + ClickHouse"
    ingest_nodes = 2


def _directory(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class Embedded(Vigil):
    """The embedded default: one process, every role."""

    key = "embedded"
    title = "embedded (one process)"


VARIANTS = {cls.key: cls for cls in (Embedded, Split, TwoIngest)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line: the flags of ``graphite_ingest.py`` without its peers'."""
    return finish_args(common_parser(VARIANTS, __doc__), argv, VARIANTS)


def ratio_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """Each split variant's figures over the embedded default's (medians)."""
    base = results.get("embedded", {})
    lines = []
    for key, fig in results.items():
        if key == "embedded" or not base.get("runs_ok") or not fig.get("runs_ok"):
            continue
        for figure, label in (
            ("cpu_s_per_mpoints", "CPU-s per M points"),
            ("e2e_points_per_s", "end-to-end points/s"),
            ("peak_rss_mb", "peak RSS"),
            ("bytes_per_point", "bytes per point"),
            ("p50_ms:wildcard of 1000", "render p50, wildcard of 1000"),
        ):
            a, b = fig.get(figure), base.get(figure)
            if a is not None and b:
                lines.append(f"  {VARIANTS[key].title:<32} {label:<30} x {a / b:.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the variants interleaved and print the medians and the ratios to embedded."""
    args = parse_args(argv)
    selected = []
    for key in args.only:
        why = VARIANTS[key].missing()
        if why:
            print(f"skipping {VARIANTS[key].title}: {why}", file=sys.stderr)
        else:
            selected.append(VARIANTS[key])
    if not selected:
        return 1
    payload = payload_mod.generate(
        args.series, args.points, args.step, chunk_bytes=args.chunk_kb * 1024, seed=args.seed
    )
    print(
        f"payload: {payload.series:,} series, {payload.points:,} points, {len(payload.chunks)} chunks"
    )
    runs = run_interleaved(selected, payload, args)
    results = {key: medians(r) for key, r in runs.items()}
    print()
    print(table(results, {key: VARIANTS[key].title for key in results}))
    for key, fig in results.items():
        shares = {
            k.split(":", 1)[1]: v for k, v in fig.items() if k.startswith("cpu_s_per_mpoints:")
        }
        if shares:
            parts = ", ".join(f"{name} {value:.2f}" for name, value in shares.items())
            print(f"\nCPU-s per M points by process, {VARIANTS[key].title}: {parts}")
    lines = ratio_lines(results)
    if lines:
        print("\nratios to the embedded default (medians):")
        print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "medians": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
