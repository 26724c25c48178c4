"""Throughput and CPU of the bus on NATS JetStream against the in-process bus.

Run from the repository root::

    .venv/bin/python bench/bus_nats.py            # 3 runs per mode, ~2 minutes
    .venv/bin/python bench/bus_nats.py --quick    # 1 run, fewer batches

Batches of ``--batch-points`` Graphite points (``vigil.model.POINTS_SCHEMA``,
the paths of ``bench/payload.py``) are published through ``vigil.bus.fanout.Bus``
to one destination, drained at the same time by a consumer task that calls
``get()`` then ``done([delivery])`` as the store writer does, all in one
process, as in a node. A run ends when the consumer has had every batch.

Modes:

- in-process ``drop_head``: memory only (the live-tail destination);
- in-process ``spill``, durable puts: every batch fsynced to the spool first;
- JetStream ``drop_head``: a memory stream on a local nats-server;
- JetStream ``spill``, durable puts: a file stream, each publish acknowledged.

CPU is the benchmark process's (publisher, consumer, codec) plus, for
JetStream, the nats-server's, both from /proc; figures are the median of the
runs. The nats-server runs on the same 2 cores as everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyarrow as pa
from payload import series_name
from procstat import cpu_seconds
from servers import REPO

from vigil.bus.destination import Destination, Overflow
from vigil.bus.fanout import Bus
from vigil.bus.jetstream import JetStream
from vigil.bus.queue import Queue
from vigil.bus.spool import Spool
from vigil.model import POINTS_SCHEMA

sys.path.insert(0, str(REPO))
from tests.bus.natsservers import NatsServer  # the tests' server driver

CAPACITY = 4 << 30  # nothing is dropped: drops would hide the cost


def build_batches(count: int, points: int) -> list[pa.Table]:
    """``count`` batches of ``points`` points over 10,000 series, 10 s apart."""
    names = pa.array([series_name(i) for i in range(10_000)], pa.string())
    batches = []
    for b in range(count):
        rows = range(b * points, (b + 1) * points)
        batches.append(
            pa.table(
                [
                    names.take(pa.array([r % 10_000 for r in rows])),
                    pa.array([1_700_000_000 + 10 * (r // 10_000) for r in rows], pa.uint32()),
                    pa.array([float(r % 977) / 7 for r in rows], pa.float64()),
                ],
                schema=POINTS_SCHEMA,
            )
        )
    return batches


async def pump(queue: Queue, batches: list[pa.Table], durable: bool) -> None:
    """Publish every batch through the bus while a consumer drains ``queue``."""
    bus = Bus([queue])

    async def consume() -> None:
        for _ in batches:
            delivery = None
            while delivery is None:
                delivery = await queue.get(5)
            await queue.done([delivery])

    consumer = asyncio.create_task(consume())
    for batch in batches:
        await bus.publish(batch, durable)
    await asyncio.wait_for(consumer, 120)


async def measure(
    run: Callable[[], Awaitable[None]], server_pid: int | None
) -> tuple[float, float, float]:
    """Wall seconds, this process's CPU-s and the server's CPU-s of one run."""
    server_before = cpu_seconds(server_pid) if server_pid else 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    await run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server = (cpu_seconds(server_pid) - server_before) if server_pid else 0.0
    return wall, cpu, server


async def in_process(batches: list[pa.Table], overflow: Overflow, durable: bool) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp), CAPACITY) if overflow is Overflow.SPILL else None
        try:
            queue = Destination("store", CAPACITY, overflow, spool)
            return await measure(lambda: pump(queue, batches, durable), None)
        finally:
            if spool is not None:
                spool.close()


async def jetstream(batches: list[pa.Table], overflow: Overflow, durable: bool) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp))
        server.start()
        try:
            link = await JetStream.connect(server.url)
            try:
                queue = await link.destination("store", CAPACITY, overflow, CAPACITY)
                assert server.process is not None
                return await measure(lambda: pump(queue, batches, durable), server.process.pid)
            finally:
                await link.close()
        finally:
            server.stop()


MODES = (
    ("in-process drop_head (memory)", in_process, Overflow.DROP_HEAD, False),
    ("in-process spill, durable (fsync)", in_process, Overflow.SPILL, True),
    ("JetStream drop_head (memory stream)", jetstream, Overflow.DROP_HEAD, False),
    ("JetStream spill, durable (file stream)", jetstream, Overflow.SPILL, True),
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-points", type=int, default=25_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run of 30 batches")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.runs = 30, 1
    batches = build_batches(args.batches, args.batch_points)
    points = args.batches * args.batch_points
    print(f"{args.batches} batches x {args.batch_points:,} points, {args.runs} run(s) per mode")
    print("| mode | batches/s | points/s | CPU-s / M points (client + nats-server) |")
    print("|---|---|---|---|")
    for label, runner, overflow, durable in MODES:
        runs = [await runner(batches, overflow, durable) for _ in range(args.runs)]
        wall = statistics.median(r[0] for r in runs)
        client = statistics.median(r[1] for r in runs) / points * 1e6
        server = statistics.median(r[2] for r in runs) / points * 1e6
        cpu = f"{client + server:.2f} ({client:.2f} + {server:.2f})"
        print(f"| {label} | {args.batches / wall:,.0f} | {points / wall:,.0f} | {cpu} |")


if __name__ == "__main__":
    asyncio.run(main())
