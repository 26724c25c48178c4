"""The bus on JetStream against a real nats-server: delivery, policies, redelivery, restarts."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pyarrow as pa
import pytest
from nats.js.api import StorageType

from tests.bus.natsservers import NatsServer
from vigil.bus import codec, jetstream
from vigil.bus.destination import BusFull, Overflow
from vigil.bus.fanout import Bus
from vigil.bus.jetstream import JetStream, JetStreamDestination, kind_of
from vigil.bus.metrics import register_bus_metrics
from vigil.model import LOGS_SCHEMA, POINTS_SCHEMA
from vigil.telemetry import Telemetry

pytestmark = pytest.mark.integration


def batch(first: int, n: int = 100) -> pa.Table:
    """Rows numbered ``first ..``: which batches arrived is read off the numbers."""
    return pa.table({"v": pa.array(range(first, first + n), pa.int64())})


def numbers(tables: list[pa.Table]) -> list[int]:
    return [v for t in tables for v in t.column("v").to_pylist()]


@pytest.fixture
async def link(nats_server: NatsServer) -> AsyncIterator[JetStream]:
    js = await JetStream.connect(nats_server.url, ack_wait=2.0, retry_seconds=10.0, timeout=1.0)
    yield js
    await js.close()


async def drain(d: JetStreamDestination, timeout: float = 1.0) -> list[pa.Table]:
    """Get and acknowledge everything until the stream stays empty for ``timeout``."""
    got = []
    while (delivery := await d.get(timeout)) is not None:
        got.append(delivery.batch)
        await d.done([delivery])
    return got


def test_kind_of_names_the_subject_of_each_record_kind() -> None:
    assert kind_of(POINTS_SCHEMA) == "points" and kind_of(LOGS_SCHEMA) == "logs"
    assert kind_of(batch(0).schema) == "other"


async def test_batches_arrive_in_order_and_leave_the_stream_once_done(link: JetStream) -> None:
    d = await link.destination("store", 1 << 20, Overflow.SPILL, 1 << 20)
    points = pa.Table.from_pylist([{"path": "a.b", "ts": 1, "value": 2.5}], schema=POINTS_SCHEMA)
    for i in range(5):
        await d.put(batch(i * 100), durable=True)
    await d.put(points)
    got = await drain(d)
    assert numbers(got[:5]) == list(range(500)) and got[5].equals(points, check_metadata=True)
    assert d.delivered_rows == 501 and len(d) == 0
    info = await link.js.stream_info(d.stream)
    assert info.state.messages == 0  # interest retention: acknowledged batches are gone
    assert info.config.storage == StorageType.FILE


async def test_a_batch_published_to_two_streams_is_encoded_once(
    link: JetStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodings = []
    encode = codec.encode

    def counted(table: pa.Table, max_bytes: int) -> list[tuple[int, bytes]]:
        encodings.append(table.num_rows)
        return encode(table, max_bytes)

    monkeypatch.setattr(jetstream.codec, "encode", counted)
    store = await link.destination("store", 1 << 20, Overflow.SPILL, 1 << 20)
    tail = await link.destination("tail", 1 << 20, Overflow.DROP_HEAD)
    await Bus([store, tail]).publish(batch(0))
    assert encodings == [100]
    assert numbers(await drain(store)) == numbers(await drain(tail)) == list(range(100))


async def test_drop_tail_refuses_the_newest_and_counts_its_rows(link: JetStream) -> None:
    d = await link.destination("tail", 3000, Overflow.DROP_TAIL)
    for i in range(10):
        await d.put(batch(i * 100))
    kept = numbers(await drain(d))
    assert kept == list(range(len(kept))) and 0 < len(kept) < 1000
    assert d.dropped_rows["stream full, newest dropped"] == 1000 - len(kept)


async def test_drop_head_loses_the_oldest_and_the_consumer_counts_the_gap(link: JetStream) -> None:
    d = await link.destination("tail", 3000, Overflow.DROP_HEAD)
    for i in range(10):
        await d.put(batch(i * 100))
    kept = numbers(await drain(d))
    assert kept == list(range(1000 - len(kept), 1000)) and 0 < len(kept) < 1000
    assert d.dropped_batches["stream full, oldest dropped"] == 10 - len(kept) // 100


async def test_block_makes_the_publisher_wait_until_the_consumer_frees_room(
    link: JetStream,
) -> None:
    d = await link.destination("store", 3000, Overflow.BLOCK)
    n = 0
    while not d.status()["dropped_rows"]:  # fill it: the put that does not return is the one
        put = asyncio.create_task(d.put(batch(n * 100)))
        done, _ = await asyncio.wait([put], timeout=0.5)
        if not done:
            break
        n += 1
    assert 0 < n < 10 and not put.done()
    first = await d.get(1)
    assert first is not None
    await d.done([first])
    await asyncio.wait_for(put, 5)
    assert numbers([first.batch, *await drain(d)]) == list(range((n + 1) * 100))


async def test_a_durable_put_to_a_full_spill_stream_raises_busfull(link: JetStream) -> None:
    d = await link.destination("store", 1 << 20, Overflow.SPILL, 3000)
    with pytest.raises(BusFull, match="vigil-store is full"):
        for i in range(10):
            await d.put(batch(i * 100), durable=True)
    await d.put(batch(5000))  # not durable: dropped and counted
    assert d.dropped_rows == {"stream full, newest dropped": 100}


async def test_what_a_closed_consumer_did_not_finish_is_delivered_again(
    nats_server: NatsServer, link: JetStream
) -> None:
    d = await link.destination("store", 1 << 20, Overflow.SPILL, 1 << 20)
    for i in range(3):
        await d.put(batch(i * 100))
    first = await d.get(1)
    assert first is not None and not first.replay
    await d.done([first])
    unfinished = await d.get(1)
    assert unfinished is not None
    await d.close()  # before done: naks it
    again = await JetStream.connect(nats_server.url, ack_wait=2.0)
    try:
        d2 = await again.destination("store", 1 << 20, Overflow.SPILL, 1 << 20)
        redelivered = await d2.get(2)
        assert redelivered is not None and redelivered.replay
        assert redelivered.batch.equals(unfinished.batch)
        await d2.done([redelivered])
        assert numbers([redelivered.batch, *await drain(d2)]) == list(range(100, 300))
        # the batch fetched ahead and never handed out was given back too
        assert d2.status()["replay"] == {"total": 2, "done": 2}
    finally:
        await again.close()


async def test_a_consumer_that_dies_gets_its_batch_redelivered_after_ack_wait(
    nats_server: NatsServer,
) -> None:
    dying = await JetStream.connect(nats_server.url, ack_wait=1.0)
    d = await dying.destination("store", 1 << 20, Overflow.SPILL, 1 << 20)
    await d.put(batch(0))
    assert await d.get(1) is not None
    await dying.nc.close()  # a crash: no nak, no ack
    await d.close()
    survivor = await JetStream.connect(nats_server.url, ack_wait=1.0)
    try:
        d2 = await survivor.destination("store", 1 << 20, Overflow.SPILL, 1 << 20)
        redelivered = await d2.get(5)
        assert redelivered is not None and redelivered.replay
        assert numbers([redelivered.batch]) == list(range(100))
        await d2.done([redelivered])
    finally:
        await survivor.close()


async def test_a_publish_retried_after_a_timeout_is_stored_once(
    nats_server: NatsServer, link: JetStream
) -> None:
    """The server stalls (SIGSTOP) past the publish timeout, then stores the first try late."""
    d = await link.destination("store", 1 << 20, Overflow.SPILL, 1 << 20)
    assert nats_server.process is not None
    nats_server.process.send_signal(signal.SIGSTOP)
    put = asyncio.create_task(d.put(batch(0), durable=True))
    await asyncio.sleep(1.5)  # the first publish has timed out (timeout=1.0) and is retried
    nats_server.process.send_signal(signal.SIGCONT)
    await asyncio.wait_for(put, 15)
    assert numbers(await drain(d)) == list(range(100))
    info = await link.js.stream_info(d.stream)
    assert info.state.last_seq == 1  # one message stored, however many tries


async def test_a_crashed_server_loses_nothing_acknowledged(
    nats_server: NatsServer, link: JetStream
) -> None:
    d = await link.destination("store", 1 << 20, Overflow.SPILL, 64 << 20)
    for i in range(20):
        await d.put(batch(i * 100), durable=True)  # returned: JetStream has it on disk
    consumed = []
    for _ in range(5):
        delivery = await d.get(1)
        assert delivery is not None
        consumed.append(delivery.batch)
        await d.done([delivery])
    nats_server.kill()
    nats_server.start()
    rest = await drain(d, timeout=3.0)  # the same connection, reconnected
    # kill -9 may forget the latest acks (JetStream flushes consumer state lazily):
    # those batches come again, flagged as replays; none is missing
    assert sorted(set(numbers(consumed + rest))) == list(range(2000))


async def test_the_self_metrics_show_depth_bytes_drops_and_redeliveries(link: JetStream) -> None:
    telemetry = Telemetry("n1")
    d = await link.destination("tail", 3000, Overflow.DROP_TAIL)
    register_bus_metrics(Bus([d]), telemetry)
    for i in range(10):
        await d.put(batch(i * 100))
    await asyncio.sleep(1.2)  # a refresh of depth and bytes
    text = telemetry.prometheus_text().decode()
    assert 'vigil_bus_batches{destination="tail"} ' in text
    assert f'vigil_bus_batches{{destination="tail"}} {float(len(d))}' in text and len(d) > 0
    assert 'vigil_bus_memory_bytes{destination="tail"} 0.0' not in text
    dropped = '{destination="tail",reason="stream full, newest dropped"}'
    assert f"vigil_bus_dropped_rows_total{dropped}" in text
    assert f"vigil_bus_dropped_batches_total{dropped}" in text


async def test_a_publisher_keeps_batches_for_a_shared_consumer_that_starts_later(
    nats_server: NatsServer,
) -> None:
    ingest = await JetStream.connect(nats_server.url, node="ingest1")
    store_node = await JetStream.connect(nats_server.url, node="store1")
    try:
        publisher = await ingest.destination(
            "store", 1 << 20, Overflow.SPILL, 1 << 20, consume=False
        )
        await publisher.put(batch(0), durable=True)
        with pytest.raises(RuntimeError, match="only publishes"):
            await publisher.get(0.1)
        reader = await store_node.destination("store", 1 << 20, Overflow.SPILL, 1 << 20)
        assert numbers(await drain(reader)) == list(range(100))
    finally:
        await ingest.close()
        await store_node.close()


async def test_consumers_of_their_own_each_read_every_new_batch_and_go_with_their_process(
    nats_server: NatsServer,
) -> None:
    links = [await JetStream.connect(nats_server.url, node=n) for n in ("in", "q1", "q2")]
    try:
        publisher = await links[0].destination(
            "tail", 1 << 20, Overflow.DROP_HEAD, consume=False, shared=False
        )
        await publisher.put(batch(0))  # nobody tails yet: gone at once
        readers = [
            await link.destination("tail", 1 << 20, Overflow.DROP_HEAD, shared=False)
            for link in links[1:]
        ]
        await publisher.put(batch(100))
        for reader in readers:
            assert numbers(await drain(reader)) == list(range(100, 200))
        await links[1].close()  # a stopping query process deletes its consumer
        names = [c.name for c in await links[0].js.consumers_info(readers[1].stream)]
        assert names == [readers[1].consumer] and names[0].startswith("tail-q2-")
    finally:
        for link in links[::2]:
            await link.close()


async def test_the_server_removes_the_consumer_of_a_process_that_died(
    nats_server: NatsServer,
) -> None:
    dying = await JetStream.connect(nats_server.url, node="q1", ack_wait=1.0)
    reader = await dying.destination("tail", 1 << 20, Overflow.DROP_HEAD, shared=False)
    await dying.nc.close()  # no goodbye: the consumer stays until inactive for ack_wait
    survivor = await JetStream.connect(nats_server.url, node="in")
    try:
        for _ in range(50):
            if not await survivor.js.consumers_info(reader.stream):
                break
            await asyncio.sleep(0.1)
        assert await survivor.js.consumers_info(reader.stream) == []
    finally:
        await reader.close()  # the connection is gone: only stops its refresh task
        await survivor.close()
