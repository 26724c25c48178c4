"""One alert process across a NATS cluster: a lease in a JetStream key-value bucket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bus.natsservers import NatsServer
from tests.nodes import node_settings
from vigil.bus.jetstream import JetStream
from vigil.bus.lease import Lease, LeaseHeld
from vigil.node import Node

pytestmark = pytest.mark.integration


@pytest.fixture
async def link(nats_server: NatsServer) -> AsyncIterator[JetStream]:
    js = await JetStream.connect(nats_server.url, timeout=2.0)
    yield js
    await js.close()


async def test_a_held_lease_is_refused_to_another_and_freed_by_its_release(
    link: JetStream,
) -> None:
    first = await Lease.take(link, "alert", "a (host1:/srv/a)")
    with pytest.raises(LeaseHeld, match=r"a \(host1:/srv/a\) runs the alert role"):
        await Lease.take(link, "alert", "b (host2:/srv/b)")
    again = await Lease.take(link, "alert", "a (host1:/srv/a)")  # restarted on its data_dir
    await again.release()
    await first.release()
    second = await Lease.take(link, "alert", "b (host2:/srv/b)")
    await second.release()


async def test_a_lease_no_longer_renewed_frees_itself(link: JetStream) -> None:
    crashed = await Lease.take(link, "alert", "a", ttl=2.0)
    await crashed.abandon()  # the process died: no renewal, no release
    deadline = time.monotonic() + 10
    while True:
        try:
            taken = await Lease.take(link, "alert", "b", ttl=2.0)
            break
        except LeaseHeld:
            assert time.monotonic() < deadline, "the lease of a dead holder never expired"
            await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # renewed past its ttl: still held
    with pytest.raises(LeaseHeld):
        await Lease.take(link, "alert", "c", ttl=2.0)
    await taken.release()


async def test_a_second_alert_process_refuses_to_start(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    first = Node(node_settings(tmp_path / "one", bus_nats=nats_server.url))
    await first.start()
    assert first.status()["alert_lease"]["held"]
    try:
        second = Node(node_settings(tmp_path / "two", bus_nats=nats_server.url))
        with pytest.raises(OSError, match="runs the alert role .*only one process may"):
            await second.start()
    finally:
        await first.stop()
    third = Node(node_settings(tmp_path / "two", bus_nats=nats_server.url))
    await third.start()  # the first released it at its stop
    await third.stop()


async def test_a_lost_lease_stands_by_and_is_taken_back_once_free(link: JetStream) -> None:
    lease = await Lease.take(link, "alert", "a", ttl=1.0)
    kv = await link.js.key_value(f"{link.prefix}-leases")
    await kv.put("alert", b"b")  # another process took it while this one was cut off

    async def until(held: bool) -> None:
        deadline = time.monotonic() + 5
        while lease.held != held:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    await until(False)
    await kv.delete("alert")  # the other one stopped
    await until(True)
    assert (await kv.get("alert")).value == b"a"
    await lease.release()
