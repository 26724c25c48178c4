"""Bounded destination queues and their overflow policies."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest

from vigil.bus.destination import Destination, Overflow
from vigil.bus.fanout import Bus


def batch(n: int) -> pa.Table:
    return pa.table({"v": pa.array(range(n), pa.int64())})


SIZE = batch(10).nbytes  # 80 bytes


async def test_drop_tail_drops_the_newest_and_counts_it() -> None:
    q = Destination("store", 2 * SIZE, Overflow.DROP_TAIL)
    for _ in range(3):
        await q.put(batch(10))
    assert len(q) == 2 and q.dropped_rows == {"queue full, newest dropped": 10}


async def test_drop_head_drops_the_oldest() -> None:
    q = Destination("store", 2 * SIZE, Overflow.DROP_HEAD)
    for first in (0, 100, 200):
        await q.put(pa.table({"v": pa.array(range(first, first + 10), pa.int64())}))
    got = [(await q.get(0)).batch.column("v")[0].as_py() for _ in range(2)]  # type: ignore[union-attr]
    assert got == [100, 200] and q.dropped_rows == {"queue full, oldest dropped": 10}


async def test_block_waits_for_room() -> None:
    q = Destination("store", SIZE, Overflow.BLOCK)
    await q.put(batch(10))
    put = asyncio.create_task(q.put(batch(10)))
    await asyncio.sleep(0.01)
    assert not put.done()
    await q.get(0)
    await asyncio.wait_for(put, 1)
    assert len(q) == 1 and q.memory_bytes == SIZE and not q.dropped_rows


async def test_a_batch_bigger_than_the_queue_still_passes_alone() -> None:
    q = Destination("store", 1, Overflow.BLOCK)
    await asyncio.wait_for(q.put(batch(100)), 1)
    assert len(q) == 1


async def test_get_times_out_empty() -> None:
    assert await Destination("x", 10, Overflow.BLOCK).get(0.01) is None


async def test_a_full_drop_queue_does_not_stall_the_other_destinations() -> None:
    slow = Destination("slow", SIZE, Overflow.DROP_TAIL)
    fast = Destination("fast", 100 * SIZE, Overflow.BLOCK)
    bus = Bus([slow, fast])
    for _ in range(5):
        await asyncio.wait_for(bus.publish(batch(10)), 1)
    assert len(fast) == 5 and len(slow) == 1 and slow.dropped_rows


def test_destination_names_are_unique() -> None:
    with pytest.raises(ValueError, match="twice"):
        Bus([Destination("a", 1, Overflow.BLOCK), Destination("a", 1, Overflow.BLOCK)])
