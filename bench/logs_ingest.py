"""Logs benchmark: Vigil's event-log and syslog ingest end to end, bytes on disk, search latency.

Run from the repository root (see bench/README.md for how to read the figures)::

    .venv/bin/python bench/logs_ingest.py --quick          # ~2 minutes
    .venv/bin/python bench/logs_ingest.py --json bench/results/logs.json   # ~10 minutes

Phases, each against a fresh ``vigil serve`` on loopback free ports:

1. event-log throughput (``--runs`` runs): the pre-built payload is sent over
   ``--connections`` TCP connections at once, each pipelining (it keeps
   writing while acks come back, with at most ``--window-mb`` unacknowledged);
   the clock stops when every line is acknowledged *and* the engine holds
   every entry (``storage.logs.rows`` in ``/api/status``);
2. syslog over TCP (``--runs`` runs): RFC 5424 (octet counting) and RFC 3164
   (newline framing) mixed, no acks; the clock stops when the engine holds
   every message;
3. the search corpus: ``--corpus`` entries over the last 24 hours sent like
   phase 1, then ``POST /api/compact``, bytes on disk per entry, and search
   latency for a common word in the last hour, one host over a day and a
   rare word (in ``--rare`` entries) over the whole day;
4. the bus overhead per destination (``bench/bus_overhead.py``), related to
   the server CPU per entry of phase 1.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bus_overhead
import logpayload
import procstat
from graphite_ingest import medians, percentile
from payload import _cut
from servers import ServerError, Vigil

GOAL_RATE = 200_000  # entries/s end to end
GOAL_RARE_MS = 300  # rare word over 10M entries, a day's range
GOAL_BUS = 0.05  # extra CPU per bus destination, of the server's CPU per entry


@dataclass
class Stream:
    """What one connection sends: chunks, and the cumulative lines and bytes at their ends."""

    chunks: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def add(self, chunk: bytes) -> None:
        """Append a chunk of whole lines."""
        self.chunks.append(chunk)
        self.lines.append((self.lines[-1] if self.lines else 0) + chunk.count(b"\n"))
        self.ends.append((self.ends[-1] if self.ends else 0) + len(chunk))

    @property
    def size(self) -> int:
        """Bytes to send."""
        return self.ends[-1] if self.ends else 0

    def acked_bytes(self, lines: int) -> int:
        """Bytes of the whole chunks that ``lines`` acknowledged lines cover."""
        i = bisect.bisect_right(self.lines, lines)
        return self.ends[i - 1] if i else 0


@dataclass
class Payload:
    """A pre-built payload cut into per-connection streams."""

    streams: list[Stream]
    entries: int
    start: float
    last_ts: float

    @property
    def size(self) -> int:
        """Bytes in all streams."""
        return sum(s.size for s in self.streams)


def build(blocks: Any, connections: int, chunk_bytes: int) -> Payload:
    """Deal blocks (time slices, oldest first) round-robin to the connections, cut into chunks.

    Every connection moves through time at about the same pace, as relays of
    a fleet would.
    """
    streams = [Stream() for _ in range(connections)]
    entries, last = 0, 0.0
    start = time.time()
    for i, block in enumerate(blocks):
        for chunk in _cut(block.data, chunk_bytes):
            streams[i % connections].add(chunk)
        entries += block.entries
        last = max(last, block.last_ts)
    return Payload(streams, entries, start, last)


@dataclass
class ConnResult:
    """What one event-log connection saw."""

    t_sent: float = 0.0
    t_acked: float = 0.0
    acked: int = 0
    rejects: list[bytes] = field(default_factory=list)
    error: str = ""


async def _eventlog_conn(port: int, stream: Stream, window: int) -> ConnResult:
    """Send one stream, keeping at most ``window`` unacknowledged bytes in flight."""
    res = ConnResult()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    progress = asyncio.Event()
    total = stream.lines[-1] if stream.lines else 0

    async def read_acks() -> None:
        while res.acked < total:
            line = await reader.readline()
            if not line:
                res.error = res.error or f"connection closed after ack {res.acked} of {total}"
                break
            if line.startswith(b'{"ack":'):
                res.acked = int(line[7:].rstrip(b"}\r\n"))
                progress.set()
            elif line.startswith(b'{"line":'):
                res.rejects.append(line.strip())
            else:
                res.error = line.decode(errors="replace").strip()
                break
        res.t_acked = time.perf_counter()
        progress.set()

    acks = asyncio.create_task(read_acks())
    sent = 0
    for chunk in stream.chunks:
        while sent - stream.acked_bytes(res.acked) > window and not acks.done():
            progress.clear()
            await progress.wait()
        writer.write(chunk)
        await writer.drain()
        sent += len(chunk)
    res.t_sent = time.perf_counter()
    await acks
    writer.close()
    await writer.wait_closed()
    return res


async def _syslog_conn(port: int, stream: Stream) -> ConnResult:
    res = ConnResult()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in stream.chunks:
        writer.write(chunk)
        await writer.drain()
    writer.write_eof()
    res.t_sent = res.t_acked = time.perf_counter()
    writer.close()
    await writer.wait_closed()
    return res


async def _send_all(port: int, payload: Payload, window: int, syslog: bool) -> list[ConnResult]:
    if syslog:
        coros = [_syslog_conn(port, s) for s in payload.streams]
    else:
        coros = [_eventlog_conn(port, s, window) for s in payload.streams]
    return list(await asyncio.gather(*coros))


def stored_rows(server: Vigil) -> int:
    """``storage.logs.rows`` from /api/status (0 before the first insert)."""
    status, body = server.client().request("GET", "/api/status")
    if status != 200:
        raise ServerError(f"/api/status -> HTTP {status}: {body[:300]!r}")
    return int(json.loads(body).get("storage", {}).get("logs", {}).get("rows", 0))


def ingest(
    server: Vigil, payload: Payload, args: argparse.Namespace, syslog: bool = False
) -> dict[str, Any]:
    """Send ``payload`` and wait until the engine holds all of it; return the figures."""
    port = server.ports["syslog" if syslog else "eventlog"]
    cpu0 = procstat.cpu_seconds(server.pid)
    t0 = time.perf_counter()
    results = asyncio.run(_send_all(port, payload, args.window_mb << 20, syslog))
    t_sent = max(r.t_sent for r in results)
    t_acked = max(r.t_acked for r in results)
    errors = [r.error for r in results if r.error]
    rejects = sum(len(r.rejects) for r in results)
    if errors:
        raise ServerError(f"event-log connection failed: {errors[0]}\n{server.log_tail()}")
    if rejects:
        first = next(r.rejects[0] for r in results if r.rejects)
        print(f"    warning: {rejects} lines rejected, e.g. {first[:200]!r}", file=sys.stderr)
    expected = payload.entries - rejects
    deadline = time.monotonic() + args.timeout
    while True:
        # Snapshot CPU and clock before each poll, keep the one of the poll that passes.
        cpu1, t_end = procstat.cpu_seconds(server.pid), time.perf_counter()
        rows = stored_rows(server)
        if rows >= expected or time.monotonic() > deadline:
            break
        server.check_alive()
        time.sleep(args.poll)
    n = payload.entries
    return {
        "entries": n,
        "payload_mib": payload.size / 2**20,
        "rejected": rejects,
        "rows_stored": rows,
        "complete": rows >= expected,
        "send_s": t_sent - t0,
        "ack_s": t_acked - t0,
        "e2e_s": t_end - t0,
        "lag_s": t_end - t_sent,
        "send_entries_per_s": n / (t_sent - t0),
        "ack_entries_per_s": n / (t_acked - t0),
        "e2e_entries_per_s": n / (t_end - t0),
        "cpu_s": cpu1 - cpu0,
        "cpu_s_per_mentries": (cpu1 - cpu0) / n * 1e6,
    }


def with_server(args: argparse.Namespace, work: Any) -> dict[str, Any]:
    """Run ``work(server)`` against a fresh server; stop it and remove its directory after."""
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-logs-"))
    server = Vigil(workdir)
    fig: dict[str, Any] = {}
    try:
        server.start(args.start_timeout)
        time.sleep(args.settle)
        fig = work(server)
        fig["peak_rss_mb"] = procstat.peak_rss_bytes(server.pid) / 2**20
    finally:
        fig["graceful_stop"] = server.stop(args.stop_timeout)
        if args.keep:
            fig["workdir"] = str(workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return fig


def runs(label: str, args: argparse.Namespace, payload: Payload, syslog: bool) -> dict[str, Any]:
    """``--runs`` fresh-server runs of one payload; every run's figures and their medians."""
    out = []
    for i in range(1, args.runs + 1):
        print(f"{label} run {i}/{args.runs} ...", file=sys.stderr, flush=True)
        try:
            fig = with_server(args, lambda s: ingest(s, payload, args, syslog))
            print(
                f"    e2e {fig['e2e_entries_per_s']:,.0f} entries/s, {'sent' if syslog else 'acked'} "
                f"{fig['ack_entries_per_s']:,.0f}/s, CPU {fig['cpu_s_per_mentries']:.2f} s/M, "
                f"{fig['rows_stored']:,}/{fig['entries']:,} stored",
                file=sys.stderr,
            )
        except (ServerError, OSError) as exc:
            fig = {"error": str(exc)}
            print(f"    failed: {exc}", file=sys.stderr)
        out.append(fig)
    return {"runs": out, "median": medians(out)}


def search_figures(server: Vigil, corpus: Payload, args: argparse.Namespace) -> dict[str, Any]:
    """Time the three searches; each is checked once for the entries it must return."""
    host = logpayload.Fleet.build().hosts[0]
    day_from = int(corpus.start) - 86_400 - 60
    queries = [
        ("common word, last hour", {"q": logpayload.COMMON_WORD, "from": "-1h"}, 100),
        ("one host, a day", {"host": host, "from": "-24h"}, 100),
        ("rare word, a day", {"q": logpayload.RARE_WORD, "from": str(day_from)}, args.rare),
    ]
    out: dict[str, Any] = {}
    http = server.client()
    for label, params, expected in queries:
        items = sorted(params.items())
        status, body = http.get("/api/logs/search", items)
        if status != 200:
            raise ServerError(f"search {params} -> HTTP {status}: {body[:300]!r}")
        found = len(json.loads(body)["entries"])
        if found != expected:
            print(
                f"    warning: search {params} found {found}, expected {expected}", file=sys.stderr
            )
        times = []
        for _ in range(args.search_reps):
            t = time.perf_counter()
            http.get("/api/logs/search", items)
            times.append((time.perf_counter() - t) * 1000)
        out[f"search_found:{label}"] = found
        out[f"p50_ms:{label}"] = statistics.median(times)
        out[f"p99_ms:{label}"] = percentile(times, 99)
    return out


def corpus_phase(server: Vigil, corpus: Payload, args: argparse.Namespace) -> dict[str, Any]:
    """Ingest the corpus, compact, measure bytes on disk, time the searches."""
    fig = ingest(server, corpus, args)
    print(
        f"    corpus stored: {fig['e2e_entries_per_s']:,.0f} entries/s end to end, "
        f"CPU {fig['cpu_s_per_mentries']:.2f} s/M; compacting ...",
        file=sys.stderr,
        flush=True,
    )
    t = time.perf_counter()
    server.settle()  # POST /api/compact, then up to 60 s for merged-away parts to go
    fig["compact_and_settle_s"] = time.perf_counter() - t
    status, body = server.client().request("GET", "/api/status")
    logs = json.loads(body)["storage"]["logs"]
    allocated, _ = procstat.disk_usage(server.data_dir)
    rows = int(logs["rows"])
    fig.update(
        logs_rows=rows,
        logs_parts=int(logs["parts"]),
        bytes_per_entry=int(logs["bytes_on_disk"]) / rows,
        payload_bytes_per_entry=corpus.size / corpus.entries,
        data_dir_bytes_per_entry=allocated / rows,
    )
    fig.update(search_figures(server, corpus, args))
    return fig


def eventlog_payload(entries: int, span: float, args: argparse.Namespace, rare: int = 0) -> Payload:
    """Event-log payload of ``entries`` over the last ``span`` seconds, timed and announced."""
    t = time.perf_counter()
    blocks = logpayload.eventlog_blocks(entries, span, args.block_entries, rare, args.seed)
    p = build(blocks, args.connections, args.chunk_kb << 10)
    print(
        f"event-log payload: {p.entries:,} entries, {p.size / 2**20:.0f} MiB "
        f"({p.size / p.entries:.0f} B/entry), {args.connections} connections, "
        f"{span / 3600:g} h of timestamps (built in {time.perf_counter() - t:.1f} s)",
        file=sys.stderr,
        flush=True,
    )
    return p


ROWS = [
    ("eventlog", "e2e_entries_per_s", "event-log entries/s end to end (acked + stored)", "{:,.0f}"),
    ("eventlog", "ack_entries_per_s", "  entries/s acknowledged", "{:,.0f}"),
    ("eventlog", "lag_s", "  s from last byte sent to all stored", "{:.2f}"),
    ("eventlog", "cpu_s_per_mentries", "  server CPU-s per M entries", "{:.2f}"),
    ("eventlog", "peak_rss_mb", "  peak RSS MB", "{:.0f}"),
    ("syslog", "e2e_entries_per_s", "syslog TCP messages/s end to end (stored)", "{:,.0f}"),
    ("syslog", "send_entries_per_s", "  messages/s sent (no acks)", "{:,.0f}"),
    ("syslog", "cpu_s_per_mentries", "  server CPU-s per M messages", "{:.2f}"),
    ("corpus", "e2e_entries_per_s", "corpus ingest entries/s end to end", "{:,.0f}"),
    ("corpus", "cpu_s_per_mentries", "  server CPU-s per M entries", "{:.2f}"),
    ("corpus", "bytes_per_entry", "bytes on disk per entry (logs table, compacted)", "{:.1f}"),
    ("corpus", "data_dir_bytes_per_entry", "  whole data directory (du)", "{:.1f}"),
    ("corpus", "payload_bytes_per_entry", "  payload bytes per entry (JSON)", "{:.1f}"),
    *[
        ("corpus", f"p{p}_ms:{q}", f"search p{p} ms: {q}", "{:.1f}")
        for q in ("common word, last hour", "one host, a day", "rare word, a day")
        for p in (50, 99)
    ],
]


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The table of figures (medians for the throughput phases) with the goals."""
    goals = {
        ("eventlog", "e2e_entries_per_s"): (">=", GOAL_RATE),
        ("syslog", "e2e_entries_per_s"): (">=", GOAL_RATE),
        ("corpus", "p50_ms:rare word, a day"): ("<", GOAL_RARE_MS),
    }
    lines = []
    for phase, key, label, fmt in ROWS:
        value = results.get(phase, {}).get("median" if phase != "corpus" else "fig", {}).get(key)
        if value is None:
            continue
        text = f"  {label:<52} {fmt.format(value):>12}"
        if (phase, key) in goals:
            op, bound = goals[(phase, key)]
            met = value >= bound if op == ">=" else value < bound
            size = f" over {results['corpus']['fig']['logs_rows']:,}" if phase == "corpus" else ""
            text += f"   goal {op} {bound:,}{size}: {'met' if met else 'NOT MET'}"
        lines.append(text)
    runs_note = f"medians of {args.runs} run(s) for event-log and syslog"
    return f"figures ({runs_note}):\n" + "\n".join(lines)


def add_run_args(p: argparse.ArgumentParser, span_help: str) -> None:
    """The payload, sender and server flags the log benchmarks share (logs, cube)."""
    p.add_argument("--window-mb", type=int, default=8, help="unacked MiB per connection (8)")
    p.add_argument("--chunk-kb", type=int, default=256, help="bytes per write, KiB (256)")
    p.add_argument("--block-entries", type=int, default=50_000, help="entries per time slice")
    p.add_argument("--span", type=float, default=600, help=f"seconds of timestamps, {span_help}")
    p.add_argument("--seed", type=int, default=42, help="payload random seed")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for storage")
    p.add_argument("--poll", type=float, default=0.1, help="status poll interval, seconds")
    p.add_argument("--settle", type=float, default=1.0, help="idle seconds after start-up")
    p.add_argument("--start-timeout", type=float, default=120, help="seconds to start")
    p.add_argument("--stop-timeout", type=float, default=300, help="seconds to stop")
    p.add_argument("--server-arg", action="append", default=[], help="extra vigil serve flag")
    p.add_argument("--vigil-bin", type=Path, default=Vigil.binary, help="the vigil command")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    p.add_argument("--json", type=Path, help="write all figures to this file")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; --quick fills in small sizes for flags left unset."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes, one run (~2 minutes)")
    p.add_argument(
        "--only",
        default="eventlog,syslog,corpus,bus",
        help="phases to run, comma-separated from: eventlog, syslog, corpus, bus",
    )
    p.add_argument("--entries", type=int, help="event-log entries per run (2M; quick 500k)")
    p.add_argument("--syslog", type=int, help="syslog messages per run (1M; quick 200k)")
    p.add_argument("--corpus", type=int, help="entries of the search corpus (10M; quick 500k)")
    p.add_argument("--rare", type=int, default=10, help="corpus entries with the rare word")
    p.add_argument("--runs", type=int, help="runs of each throughput phase (3; quick 1)")
    p.add_argument("--search-reps", type=int, help="timed requests per search (30; quick 20)")
    p.add_argument("--bus-batches", type=int, help="20k-entry batches per bus run (50; quick 15)")
    p.add_argument("--bus-repeats", type=int, help="bus runs per configuration (5; quick 3)")
    p.add_argument("--connections", type=int, default=4, help="event-log connections (4)")
    p.add_argument("--syslog-connections", type=int, default=2, help="syslog connections (2)")
    add_run_args(p, span_help="throughput")
    args = p.parse_args(argv)
    quick = {"entries": 500_000, "syslog": 200_000, "corpus": 500_000, "runs": 1}
    full = {"entries": 2_000_000, "syslog": 1_000_000, "corpus": 10_000_000, "runs": 3}
    quick |= {"search_reps": 20, "bus_batches": 15, "bus_repeats": 3}
    full |= {"search_reps": 30, "bus_batches": 50, "bus_repeats": 5}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the phases and print the figures next to the goals."""
    args = parse_args(argv)
    Vigil.binary = args.vigil_bin
    Vigil.extra_args = list(itertools.chain.from_iterable(a.split() for a in args.server_arg))
    if why := Vigil.missing():
        print(why, file=sys.stderr)
        return 1
    results: dict[str, Any] = {}
    if "eventlog" in args.only:
        payload = eventlog_payload(args.entries, args.span, args)
        results["eventlog"] = runs("event-log", args, payload, syslog=False)
        del payload
    if "syslog" in args.only:
        t = time.perf_counter()
        blocks = logpayload.syslog_blocks(args.syslog, args.span, args.block_entries, args.seed)
        payload = build(blocks, args.syslog_connections, args.chunk_kb << 10)
        print(
            f"syslog payload: {payload.entries:,} messages, {payload.size / 2**20:.0f} MiB, "
            f"{args.syslog_connections} connections (built in {time.perf_counter() - t:.1f} s)",
            file=sys.stderr,
        )
        results["syslog"] = runs("syslog", args, payload, syslog=True)
        del payload
    if "corpus" in args.only:
        gc.collect()
        corpus = eventlog_payload(args.corpus, 86_400, args, rare=args.rare)
        print("corpus: ingest ...", file=sys.stderr, flush=True)
        try:
            fig = with_server(args, lambda s: corpus_phase(s, corpus, args))
        except (ServerError, OSError) as exc:
            fig = {"error": str(exc)}
            print(f"    failed: {exc}", file=sys.stderr)
        results["corpus"] = {"fig": fig}
        del corpus
    if "bus" in args.only:
        print("bus overhead ...", file=sys.stderr, flush=True)
        cpu = results.get("eventlog", {}).get("median", {}).get("cpu_s_per_mentries")
        results["bus"] = bus_overhead.measure(
            args.bus_batches, 20_000, args.bus_repeats, cpu / 1e6 if cpu else None
        )
    print()
    print(report(results, args))
    if "bus" in results:
        print()
        print(bus_overhead.report(results["bus"], GOAL_BUS))
    print(
        f"\n(2-core shared machine: wall-clock rates are noisy, CPU-s per entry less so; "
        f"{time.strftime('%Y-%m-%d')})"
    )
    if args.json:
        doc = {
            "config": {
                k: (str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, set) else v)
                for k, v in vars(args).items()
            },
            "results": results,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
