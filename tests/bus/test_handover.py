"""A node's local spools are handed to its NATS streams when it moves to ``bus_nats``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.bus.test_destination import drain, numbered
from vigil.bus.destination import Destination, Overflow
from vigil.bus.handover import hand_over
from vigil.bus.spool import Spool


def spooled(directory: Path, firsts: list[int], released: int = 0) -> None:
    """A spool as the in-process bus leaves it: ``released`` of the batches were handled."""
    with Spool(directory, 1 << 20) as spool:
        records = spool.append([numbered(f) for f in firsts])
        if released:
            spool.release(records[released - 1])


async def test_pending_batches_move_in_order_and_leave_the_spool(tmp_path: Path) -> None:
    spooled(tmp_path / "store", [0, 10, 20, 30], released=1)
    store = Destination("store", 1 << 20, Overflow.BLOCK)
    assert await hand_over(tmp_path, {"store": store}) == {"store": 30}
    assert await drain(store) == [10, 20, 30]
    with Spool(tmp_path / "store", 1 << 20) as spool:
        assert spool.pending() == []
    assert await hand_over(tmp_path, {"store": store}) == {}  # nothing twice


async def test_a_spool_without_its_destination_stays_and_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spooled(tmp_path / "forward", [0])
    with caplog.at_level(logging.WARNING):
        assert await hand_over(tmp_path, {}) == {}
    assert "no destination 'forward' here" in caplog.text
    with Spool(tmp_path / "forward", 1 << 20) as spool:
        assert len(spool.pending()) == 1
    assert await hand_over(tmp_path / "missing", {}) == {}


async def test_what_the_destination_refuses_waits_for_the_next_start(tmp_path: Path) -> None:
    spooled(tmp_path / "store", [0, 10])
    full = Spool(tmp_path / "full", 1)  # a destination whose durable puts are all refused
    try:
        refusing = Destination("store", 1, Overflow.SPILL, full)
        assert await hand_over(tmp_path, {"store": refusing}) == {}
    finally:
        full.close()
    with Spool(tmp_path / "store", 1 << 20) as spool:
        assert len(spool.pending()) == 2
