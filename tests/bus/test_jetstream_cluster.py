"""The bus on a 3-node JetStream cluster: the stream leader is killed under load, nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pyarrow as pa
import pytest

from tests.bus.natsservers import NatsCluster
from vigil.bus.destination import Overflow
from vigil.bus.jetstream import JetStream, JetStreamDestination, JetStreamError

pytestmark = pytest.mark.integration

BATCHES = 60
ROWS = 1000


async def replicated_destination(link: JetStream) -> JetStreamDestination:
    """The store destination, once the new cluster has elected its JetStream leader."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await link.destination("store", 1 << 20, Overflow.SPILL, 256 << 20)
        except JetStreamError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def test_killing_the_stream_leader_under_load_loses_nothing_acknowledged(
    nats_cluster: NatsCluster,
) -> None:
    link = await JetStream.connect(
        nats_cluster.urls, replicas=3, ack_wait=5.0, retry_seconds=30.0, timeout=2.0
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        d = await replicated_destination(link)
        acknowledged: list[int] = []
        received: set[int] = set()

        async def publish() -> None:
            for i in range(BATCHES):
                rows = pa.table({"v": pa.array(range(i * ROWS, (i + 1) * ROWS), pa.int64())})
                await d.put(rows, durable=True)
                acknowledged.append(i)
                await asyncio.sleep(0.02)

        async def consume() -> None:
            while len(received) < BATCHES * ROWS:
                delivery = await d.get(1)
                if delivery is not None:
                    received.update(delivery.batch.column("v").to_pylist())
                    await d.done([delivery])

        publisher = asyncio.create_task(publish())
        consumer = asyncio.create_task(consume())
        tasks.extend((publisher, consumer))
        while len(acknowledged) < BATCHES // 3:
            await asyncio.sleep(0.05)
        info = await link.js.stream_info(d.stream)
        assert info.cluster is not None and info.cluster.leader is not None
        nats_cluster.by_name(info.cluster.leader).kill()
        await asyncio.wait_for(publisher, 40)  # stalls while a new leader is elected
        with contextlib.suppress(TimeoutError):  # done once every row is seen
            await asyncio.wait_for(consumer, 15)
        assert acknowledged == list(range(BATCHES))
        lost = set(range(BATCHES * ROWS)) - received
        assert not lost, f"{len(lost)} acknowledged rows lost, from {min(lost)}"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.close()
