"""What a node's local spools still hold when it moves to NATS, handed to the streams.

A node that ran on the in-process bus keeps batches in ``DATA_DIR/spool/<destination>/``
until their consumer handled them: acknowledged entries among them. When
the node starts with ``bus_nats``, its destinations are JetStream streams
and nothing reads those directories any more; so, before the listeners
open, every batch still pending there is published to its destination's
stream (durably, in order) and released from the spool. A spool whose
destination this node no longer has is left where it is, and said.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from vigil.bus.destination import BusFull
from vigil.bus.queue import Queue
from vigil.bus.spool import Spool, SpoolCorrupt, SpoolError

log = logging.getLogger(__name__)

# Reading only: the cap matters to appends, and nothing is appended here.
_NO_CAP = 1 << 62


async def hand_over(spools: Path, queues: dict[str, Queue]) -> dict[str, int]:
    """Move the pending batches of every spool under ``spools`` to the queue of its name.

    Returns the rows moved per destination that had any. A batch that does not verify is
    logged and skipped; a put the stream refuses stops that spool's move
    (what is left stays pending for the next start).
    """
    moved: dict[str, int] = {}
    if not spools.is_dir():
        return moved
    for directory in sorted(p for p in spools.iterdir() if p.is_dir()):
        if not any(directory.glob("*.seg")):
            continue
        queue = queues.get(directory.name)
        if queue is None:
            log.warning(
                "spool %s: no destination %r here, its batches stay on disk",
                directory,
                directory.name,
            )
            continue
        try:
            if rows := await _move(directory, queue):
                moved[directory.name] = rows
        except SpoolError as e:
            log.error("spool %s could not be handed over: %s", directory, e)
    return moved


async def _move(directory: Path, queue: Queue) -> int:
    spool = await asyncio.to_thread(Spool, directory, _NO_CAP)
    rows = batches = 0
    try:
        for record in spool.pending():
            try:
                batch = await asyncio.to_thread(spool.read, record)
            except SpoolCorrupt as e:
                log.error("spool %s: %s; skipped", directory, e)
                continue
            try:
                await queue.put(batch, durable=True)
            except BusFull as e:
                log.error("spool %s: %s; the rest is handed over at the next start", directory, e)
                break
            await asyncio.to_thread(spool.release, record)
            rows += batch.num_rows
            batches += 1
    finally:
        await asyncio.to_thread(spool.close)
    if batches:
        log.warning(
            "spool %s: %d batches (%d rows) the in-process bus left are handed to NATS",
            directory,
            batches,
            rows,
        )
    return rows
