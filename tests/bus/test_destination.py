"""Bounded destination queues and their overflow policies."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from vigil.bus import destination
from vigil.bus.destination import BusFull, Destination, Overflow
from vigil.bus.fanout import Bus
from vigil.bus.spool import Spool


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


_open: list[Spool] = []


@pytest.fixture(autouse=True)
def _close_spools() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def spilling(tmp_path: Path, capacity: int, spool_cap: int = 1 << 20) -> Destination:
    spool = Spool(tmp_path / "spool", spool_cap)
    _open.append(spool)
    return Destination("store", capacity, Overflow.SPILL, spool)


async def drain(d: Destination) -> list[int]:
    got = []
    while (delivery := await d.get(0)) is not None:
        got.append(delivery.batch.column("v")[0].as_py())
        await d.done([delivery])
    return got


def numbered(first: int) -> pa.Table:
    return pa.table({"v": pa.array(range(first, first + 10), pa.int64())})


async def test_spill_keeps_order_across_memory_and_disk(tmp_path: Path) -> None:
    d = spilling(tmp_path, 2 * SIZE)
    for first in range(0, 100, 10):
        await d.put(numbered(first))
    assert d.spool_bytes > 0 and not d.dropped_rows
    assert await drain(d) == list(range(0, 100, 10))
    assert d.spool_bytes == 0


async def test_durable_puts_survive_a_restart_until_released(tmp_path: Path) -> None:
    d = spilling(tmp_path, 100 * SIZE)
    for first in (0, 10, 20):
        await d.put(numbered(first), durable=True)
    first = await d.get(0)
    assert first is not None and first.record is not None
    await d.done([first])
    _open.pop().close()  # the process dies: nothing after the release is lost
    again = spilling(tmp_path, 100 * SIZE)
    assert again.replay_total == 2
    delivery = await again.get(0)
    assert delivery is not None and delivery.replay
    assert delivery.batch.column("v")[0].as_py() == 10
    await again.done([delivery])
    assert await drain(again) == [20] and again.replay_done == 2


async def test_a_full_spool_refuses_durable_puts_and_drops_others(tmp_path: Path) -> None:
    d = spilling(tmp_path, 1, spool_cap=1)
    await d.put(numbered(0))  # fits in memory: an empty buffer takes any batch
    with pytest.raises(BusFull):
        await d.put(numbered(10), durable=True)
    await d.put(numbered(20))
    assert d.dropped_rows == {"spool full, newest dropped": 10}


def test_a_spool_goes_with_spill_only(tmp_path: Path) -> None:
    with Spool(tmp_path, 1 << 20) as spool, pytest.raises(ValueError, match="spill"):
        Destination("store", 1, Overflow.BLOCK, spool)


def broken_disk(monkeypatch: pytest.MonkeyPatch, call: str = "fsync") -> None:
    def fail(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, call, fail)


async def test_a_failed_spool_refuses_durable_puts_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = spilling(tmp_path, 1)
    await d.put(numbered(0))
    broken_disk(monkeypatch)  # every append now fails, and so does opening the spool again
    with pytest.raises(BusFull, match="store"):
        await d.put(numbered(10), durable=True)
    await d.put(numbered(20))
    assert d.dropped_rows == {"spool failed, dropped": 10}


async def test_the_spool_opens_again_once_the_disk_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    d = spilling(tmp_path, 1)
    await d.put(numbered(0))
    await d.put(numbered(10))  # on disk only
    with monkeypatch.context() as m:
        broken_disk(m)
        with pytest.raises(BusFull):
            await d.put(numbered(20), durable=True)  # the spool closes
    monkeypatch.setattr(destination, "REOPEN_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING):
        await d.put(numbered(30), durable=True)
    assert "opened again" in caplog.text
    assert d.spool is not None
    _open.append(d.spool)  # the spool opened again, closed at the end
    assert await drain(d) == [0, 10, 30]  # 20 was refused: its sender sends it again
    assert d.spool is not None and d.spool.pending() == []


async def test_a_batch_the_spool_cannot_read_yet_waits_first_in_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = spilling(tmp_path, 1)
    for first in (0, 10, 20):
        await d.put(numbered(first))
    monkeypatch.setattr(destination, "REOPEN_SECONDS", 0.05)
    first = await d.get(0)
    assert first is not None
    with monkeypatch.context() as m:
        broken_disk(m, "pread")
        assert await d.get(0.2) is None  # tried, and tried again, within the timeout
    await asyncio.sleep(0.1)  # past the wait before the spool is opened again
    assert d.spool is not None
    _open.append(d.spool)  # the spool opened again, closed at the end
    await d.done([first])
    assert await drain(d) == [10, 20] and not d.dropped_rows


async def test_a_spool_record_that_does_not_verify_is_dropped_and_counted(tmp_path: Path) -> None:
    d = spilling(tmp_path, 1)
    for first in (0, 10, 20):
        await d.put(numbered(first))
    assert d.spool is not None
    [segment] = (tmp_path / "spool").glob("*.seg")
    second = d.spool.pending()[0]  # 0 went to memory only, 10 and 20 to the spool
    with open(segment, "r+b") as f:  # a bit flips in the second batch's record
        f.seek(second.offset + second.size - 1)
        last = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([last[0] ^ 0xFF]))
    assert await drain(d) == [0, 20]
    assert d.dropped_rows == {"spool record corrupt, dropped": 10}
