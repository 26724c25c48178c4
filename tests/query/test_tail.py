"""Live tail: the hub's recent batches and what a resuming subscriber gets."""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa

from vigil.bus.destination import Destination, Overflow
from vigil.model import logs_from_rows
from vigil.query.logquery import LogPage
from vigil.query.tail import RESUME_SLACK_MS, TailHub, gap_query, resumed


def batch(first_uid: int, n: int, host: str = "web01") -> pa.Table:
    rows: list[dict[str, object]] = [
        {
            "ts": 1_800_000_000_000 + first_uid,
            "uid": first_uid + i,
            "host": host,
            "message": f"m{i}",
        }
        for i in range(n)
    ]
    return logs_from_rows(rows)


async def fed_hub(max_entries: int, *batches: pa.Table) -> TailHub:
    """A hub that has consumed ``batches`` from its destination."""
    destination = Destination("tail", 1 << 20, Overflow.DROP_HEAD)
    hub = TailHub(destination, max_entries)
    task = asyncio.create_task(hub.run())
    for b in batches:
        await destination.put(b)
    while len(destination):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    task.cancel()
    return hub


async def test_the_hub_keeps_recent_batches_and_the_last_uid() -> None:
    hub = await fed_hub(5, batch(10, 3), batch(20, 3, host="db01"), batch(30, 3))
    assert hub.last_uid == 32
    everyone = hub.subscribe({}, (), ())
    # 5 entries wanted: the oldest batch went, the last two cover them.
    assert [e["uid"] for e in hub.recent(everyone, 0)] == ["20", "21", "22", "30", "31", "32"]
    db = hub.subscribe({"host": ("db01",)}, (), ())
    assert [e["uid"] for e in hub.recent(db, 20)] == ["21", "22"]


def entry(uid: int, ts: float = 1.0) -> dict[str, Any]:
    return {"uid": str(uid), "ts": ts}


def test_resumed_merges_store_and_recent_once_in_arrival_order() -> None:
    stored = LogPage([entry(9), entry(7), entry(5), entry(4)], None)
    missed, gap = resumed(stored, [entry(8), entry(9), entry(10)], (1000, 5))
    assert [e["uid"] for e in missed] == ["7", "8", "9", "10"] and gap is None


def test_resumed_reports_what_the_store_had_beyond_one_page() -> None:
    stored = LogPage([entry(9, 3.0), entry(8, 2.5)], "cursor")
    missed, gap = resumed(stored, [], (1000, 5))
    assert [e["uid"] for e in missed] == ["8", "9"] and gap == {"from": 1.0, "until": 2.5}


async def test_the_gap_query_keeps_the_filters_and_a_slack() -> None:
    hub = await fed_hub(5)
    sub = hub.subscribe({"app": ("shop",)}, ("boom",), ())
    q = gap_query(sub, 1_000_000, 2_000_000)
    assert (q.start_ms, q.end_ms) == (1_000_000 - RESUME_SLACK_MS, 2_001_000)
    assert q.filters == {"app": ("shop",)} and q.words == ("boom",)
