"""The cube's writer thread: stored log entries, gathered, aggregated and inserted as partial cubes.

Each insert of a partial cube has a cost per level that does not depend on
its size, and the coarse levels hold a row per dimension tuple of the batch
(an hour of a host's transactions is one row whether one batch or ten
brought them). So the writer gathers the cube's entries of several stored
batches, up to ``batch_entries`` or ``max_delay`` seconds, and aggregates
them at once: with the store's 100k-entry batches this halved the cube's
CPU per entry (250k cube entries cost what 500k do, and a read waits for
half as many). Each step's partial cube is inserted (on a small pool of
threads, each with its connection) while the next is made: the inserts
take longer than the numpy passes. A read asks for what is gathered first
(``settle``) and waits for every step's insert, so queries still see every
entry stored before them; a crash loses the gathered entries' counts (the
entries themselves are stored), at most ``max_delay`` seconds of them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pyarrow as pa

from vigil.cube.aggregate import cube_entries, levels
from vigil.query.cubequery import STEPS

log = logging.getLogger(__name__)

# What the queue carries besides entries: a read waits (flush now), close (flush and stop).
_FLUSH, _STOP = "flush", "stop"
# Inserts of one gathering's steps under way at once (two cores do the work).
INSERT_THREADS = 2


class CubeWriter:
    """Counts stored entries into the cube on a thread of its own (started by the first write).

    ``insert(step, rows)`` stores one level's partial cube, on a thread
    where ``prepare()`` ran first (a connection's settings). ``write`` blocks
    while 8 batches wait for the thread (bounded memory: at most
    ``batch_entries`` gathered plus 8 batches queued, of the columns the
    cube reads).
    """

    def __init__(
        self,
        insert: Callable[[int, pa.Table], None],
        prepare: Callable[[], None] = lambda: None,
        batch_entries: int = 250_000,
        max_delay: float = 5.0,
    ) -> None:
        self._insert = insert
        self._prepare = prepare
        self._pool: ThreadPoolExecutor | None = None
        self.batch_entries = batch_entries
        self.max_delay = max_delay
        self.failures = 0
        # Room for the batches stored while the thread counts a gathering, so
        # that the store's next inserts need not wait for it.
        self._queue: queue.Queue[pa.Table | str] = queue.Queue(8)
        self._written = self._counted = 0
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None

    def write(self, entries: pa.Table) -> None:
        """Count the transactions and events of stored ``LOGS_SCHEMA`` entries, soon."""
        if self._thread is None:
            self._pool = ThreadPoolExecutor(
                INSERT_THREADS, thread_name_prefix="cube-insert", initializer=self._prepare
            )
            self._thread = threading.Thread(target=self._run, name="cube-writer", daemon=True)
            self._thread.start()
        with self._progress:
            self._written += 1
        self._queue.put(cube_entries(entries))  # a few columns of some rows: small to queue

    def settle(self) -> None:
        """Wait until every batch written so far is in the cube."""
        with self._progress:
            target = self._written
            if self._counted >= target:
                return
        self._queue.put(_FLUSH)
        with self._progress:
            self._progress.wait_for(lambda: self._counted >= target)

    def close(self) -> None:
        """Count what is gathered, then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _run(self) -> None:
        gathered: list[pa.Table] = []
        batches = entries = 0
        deadline = 0.0
        while True:
            try:
                timeout = max(0.0, deadline - time.monotonic()) if batches else None
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = _FLUSH
            if isinstance(item, pa.Table):
                if not batches:
                    deadline = time.monotonic() + self.max_delay
                batches += 1
                if item.num_rows:
                    gathered.append(item)
                    entries += item.num_rows
                if entries < self.batch_entries:
                    continue
            if batches:
                self._count(gathered, entries)
                with self._progress:
                    self._counted += batches
                    self._progress.notify_all()
                gathered, batches, entries = [], 0, 0
            if item is _STOP:
                return

    def _count(self, gathered: list[pa.Table], entries: int) -> None:
        """Insert the partial cubes of ``gathered``; a failure is logged and counted, not raised."""
        if not gathered:
            return
        assert self._pool is not None
        inserts: list[Future[None]] = []
        try:
            for step, rows in levels(pa.concat_tables(gathered), STEPS):
                inserts.append(self._pool.submit(self._insert, step, rows))
            for done in inserts:
                done.result()
        except Exception:  # the thread must go on: entries lost are logged and counted
            wait(inserts)  # what is counted is in every table before a read goes on
            self.failures += 1
            log.exception("cube: %d entries could not be counted", entries)
