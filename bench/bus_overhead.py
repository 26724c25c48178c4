"""CPU that each extra bus destination costs, measured in process on realistic log batches.

Run from the repository root::

    .venv/bin/python bench/bus_overhead.py            # ~1 minute
    .venv/bin/python bench/bus_overhead.py --quick

Batches of ``--batch-entries`` event-log entries (``bench/logpayload.py``) are
parsed with ``vigil.ingest.eventlog.parse_chunk``, exactly as the event-log
listener parses a chunk, then published through ``vigil.bus.fanout.Bus`` to 1
and to 3 destinations of one policy, each drained by a consumer task that
calls ``get()`` then ``done([delivery])`` as the store does. The extra CPU per
destination is (CPU with 3 − CPU with 1) / 2, per entry; CPU is the process
time of the whole process (the spool's fsyncing threads included). Policies:

- ``drop_head``: memory only (the live-tail destination);
- ``spill``, durable puts: every batch appended to the destination's own
  ``Spool`` (zstd Arrow IPC, fsynced) before ``publish`` returns and released
  after the consumer is done: what an acknowledged event-log chunk costs;
- ``spill``, non-durable: memory while it fits (syslog's path).

``logs_ingest.py`` runs this too and relates the figure to the server's CPU
per entry; alone it relates it to the parse cost, a lower bound of the
server's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import logpayload
import pyarrow as pa

from vigil.bus.destination import Destination, Overflow
from vigil.bus.fanout import Bus
from vigil.bus.spool import Spool
from vigil.ingest.eventlog import parse_chunk
from vigil.ingest.logrules import LogRules

#: (label, overflow, durable puts)
MODES = (
    ("drop_head (memory)", Overflow.DROP_HEAD, False),
    ("spill, durable puts (fsync)", Overflow.SPILL, True),
    ("spill, non-durable puts", Overflow.SPILL, False),
)
CAPACITY = 4 << 30  # large enough that nothing is dropped: drops would hide the cost


def build_batches(count: int, entries: int, seed: int = 7) -> tuple[list[pa.Table], float]:
    """``count`` parsed batches of about ``entries`` entries; also the parse CPU-s per entry."""
    batches: list[pa.Table] = []
    cpu = 0.0
    rules = LogRules()
    blocks = logpayload.eventlog_blocks(count * entries, 3600, entries, seed=seed)
    for block in blocks:
        now_ms = int(time.time() * 1000)
        t = time.process_time()
        parsed = parse_chunk(block.data, 1, now_ms, rules)
        cpu += time.process_time() - t
        if parsed.rejects:
            raise RuntimeError(f"payload rejected: {parsed.rejects[:3]}")
        batches.append(parsed.entries)
    return batches, cpu / sum(b.num_rows for b in batches)


async def _consume(destination: Destination, batches: int) -> None:
    for _ in range(batches):
        delivery = await destination.get()
        assert delivery is not None
        await destination.done([delivery])


async def _push(batches: list[pa.Table], destinations: list[Destination], durable: bool) -> None:
    bus = Bus(destinations)
    consumers = [asyncio.create_task(_consume(d, len(batches))) for d in destinations]
    for batch in batches:
        await bus.publish(batch, durable=durable)
    await asyncio.gather(*consumers)
    for d in destinations:
        if d.dropped_rows:
            raise RuntimeError(f"{d.name} dropped {dict(d.dropped_rows)}: raise CAPACITY")


def run_once(
    batches: list[pa.Table], overflow: Overflow, durable: bool, n: int, workdir: Path
) -> float:
    """CPU-seconds to publish ``batches`` to ``n`` destinations and drain them."""
    spools: list[Spool] = []
    destinations = []
    for i in range(n):
        spool = None
        if overflow is Overflow.SPILL:
            spool = Spool(Path(tempfile.mkdtemp(dir=workdir)), cap_bytes=64 << 30)
            spools.append(spool)
        destinations.append(Destination(f"d{i}", CAPACITY, overflow, spool))
    try:
        t = time.process_time()
        asyncio.run(_push(batches, destinations, durable))
        return time.process_time() - t
    finally:
        for spool in spools:
            spool.close()


def measure(
    batch_count: int, batch_entries: int, repeats: int, server_cpu_per_entry: float | None = None
) -> dict[str, Any]:
    """Extra CPU per destination for each policy, per entry and as fractions of the base costs."""
    batches, parse_cpu = build_batches(batch_count, batch_entries)
    entries = sum(b.num_rows for b in batches)
    out: dict[str, Any] = {
        "entries": entries,
        "batches": len(batches),
        "batch_bytes": statistics.median(b.nbytes for b in batches),
        "parse_cpu_us_per_entry": parse_cpu * 1e6,
        "server_cpu_us_per_entry": server_cpu_per_entry * 1e6 if server_cpu_per_entry else None,
        "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="vigil-bench-bus-") as tmp:
        for label, overflow, durable in MODES:
            one, three = [], []
            for _ in range(repeats):  # interleaved, so a noisy spell hits both
                one.append(run_once(batches, overflow, durable, 1, Path(tmp)))
                three.append(run_once(batches, overflow, durable, 3, Path(tmp)))
            extra = (statistics.median(three) - statistics.median(one)) / 2 / entries
            fig = {
                "cpu_s_1": statistics.median(one),
                "cpu_s_3": statistics.median(three),
                "extra_us_per_entry": extra * 1e6,
                "of_parse": extra / parse_cpu,
            }
            if server_cpu_per_entry:
                fig["of_server"] = extra / server_cpu_per_entry
            out["modes"][label] = fig
    return out


def report(fig: dict[str, Any], goal: float = 0.05) -> str:
    """The figures as text, with the goal (< 5% of the CPU per entry, per destination)."""
    base = "server" if fig.get("server_cpu_us_per_entry") else "parse"
    base_us = fig["server_cpu_us_per_entry"] or fig["parse_cpu_us_per_entry"]
    lines = [
        f"bus: {fig['entries']:,} entries in {fig['batches']} batches of "
        f"~{fig['batch_bytes'] / 2**20:.1f} MiB (Arrow); parse {fig['parse_cpu_us_per_entry']:.2f}"
        f" µs/entry; base for the goal: {base} CPU {base_us:.2f} µs/entry",
        f"  {'policy':<30} {'CPU-s 1 dest':>12} {'CPU-s 3 dest':>12} {'extra µs/entry':>15}"
        f" {'% of ' + base:>12}   goal < {goal:.0%}",
    ]
    for label, m in fig["modes"].items():
        share = m.get("of_server", m["of_parse"])
        met = "met" if share < goal else "NOT MET"
        lines.append(
            f"  {label:<30} {m['cpu_s_1']:>12.3f} {m['cpu_s_3']:>12.3f}"
            f" {m['extra_us_per_entry']:>15.3f} {share:>12.1%}   {met}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the bus overhead per destination."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="15 batches, 3 repeats")
    p.add_argument("--batches", type=int, help="batches per run (default 50; quick 15)")
    p.add_argument("--batch-entries", type=int, default=20_000, help="entries per batch")
    p.add_argument("--repeats", type=int, help="runs per configuration (default 5; quick 3)")
    p.add_argument(
        "--server-cpu-us",
        type=float,
        help="server CPU µs per entry to relate the overhead to (default: the parse cost)",
    )
    args = p.parse_args(argv)
    batches = args.batches or (15 if args.quick else 50)
    repeats = args.repeats or (3 if args.quick else 5)
    server = args.server_cpu_us / 1e6 if args.server_cpu_us else None
    print(report(measure(batches, args.batch_entries, repeats, server)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
