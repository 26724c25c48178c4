"""Live tail: the ``tail`` destination fanned out to subscribers, each with its own filter.

Each subscriber has a bounded buffer: a slow subscriber (a browser on a bad
link) never slows ingestion or the other subscribers; what it cannot keep up
with is skipped and counted, and it is told how many entries it missed.

A subscriber that lost its connection resumes from the position (a search
cursor) of the last entry it saw: the hub keeps its most recent batches, which
the store may not have written yet, and ``resumed`` merges them with what a
search of the store finds since that position.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vigil.bus.queue import Queue
from vigil.model import LOGS_SCHEMA, entries_of
from vigil.query.logquery import FILTER_FIELDS, MAX_LIMIT, LogPage, LogQuery

# A resuming subscriber also gets entries stamped up to this much before its
# position (senders' clocks differ; arrival order is the uid, not the time).
RESUME_SLACK_MS = 300_000


class Subscription:
    """One live-tail subscriber: its filter, its bounded buffer and what it missed."""

    def __init__(
        self,
        filters: dict[str, tuple[str, ...]],
        words: tuple[str, ...],
        phrases: tuple[str, ...],
        max_entries: int,
    ) -> None:
        self.filters = filters
        self.words = words
        self.phrases = phrases
        self.max_entries = max_entries
        self.skipped = 0
        self._entries: collections.deque[dict[str, Any]] = collections.deque()
        self._ready = asyncio.Event()

    def matching(self, batch: pa.Table) -> pa.Table:
        """The rows of ``batch`` this subscriber asked for."""
        conditions = []
        for field, values in self.filters.items():
            column = batch.column(field)
            wanted = (
                pa.array([int(v) for v in values], pa.int32())
                if field == "status"
                else pa.array(values)
            )
            conditions.append(pc.is_in(column, wanted))
        message = batch.column("message")
        for word in self.words:
            pattern = rf"(^|[^\pL\pN]){re.escape(word)}($|[^\pL\pN])"
            conditions.append(pc.match_substring_regex(message, pattern, ignore_case=True))
        for phrase in self.phrases:
            conditions.append(pc.match_substring(message, phrase, ignore_case=True))
        if not conditions:
            return batch
        return batch.filter(functools.reduce(pc.and_, conditions))

    def offer(self, entries: list[dict[str, Any]]) -> None:
        """Buffer ``entries``, skipping the oldest beyond ``max_entries``."""
        self._entries.extend(entries)
        while len(self._entries) > self.max_entries:
            self._entries.popleft()
            self.skipped += 1
        if self._entries:
            self._ready.set()

    async def next(self, timeout: float) -> tuple[list[dict[str, Any]], int]:
        """Entries buffered so far (waiting up to ``timeout``) and how many were skipped since."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        entries = list(self._entries)
        self._entries.clear()
        self._ready.clear()
        skipped, self.skipped = self.skipped, 0
        return entries, skipped


class TailHub:
    """Consumes the ``tail`` destination and offers each log batch to every subscriber."""

    def __init__(self, destination: Queue, max_entries: int) -> None:
        self.destination = destination
        self.max_entries = max_entries
        self.subscribers: set[Subscription] = set()
        # The latest batches, at least ``max_entries`` rows of them, for resuming subscribers.
        self._recent: collections.deque[pa.Table] = collections.deque()
        self._recent_rows = 0
        self.last_uid = 0

    def subscribe(
        self, filters: dict[str, tuple[str, ...]], words: tuple[str, ...], phrases: tuple[str, ...]
    ) -> Subscription:
        """A new subscriber; ``unsubscribe`` it when done."""
        unknown = set(filters) - set(FILTER_FIELDS)
        if unknown:
            raise ValueError(f"cannot filter on {', '.join(sorted(unknown))}")
        sub = Subscription(filters, words, phrases, self.max_entries)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop offering entries to ``sub``."""
        self.subscribers.discard(sub)

    async def run(self) -> None:
        """Fan out until cancelled; batches nobody is subscribed to are just released."""
        while True:
            delivery = await self.destination.get()
            if delivery is None:
                continue
            batch = delivery.batch
            if batch.schema.equals(LOGS_SCHEMA) and batch.num_rows:
                self._remember(batch)
                for sub in list(self.subscribers):
                    matched = sub.matching(batch)
                    if matched.num_rows:
                        sub.offer(entries_of(matched))
            await self.destination.done([delivery])

    def _remember(self, batch: pa.Table) -> None:
        self._recent.append(batch)
        self._recent_rows += batch.num_rows
        while self._recent_rows - self._recent[0].num_rows >= self.max_entries:
            self._recent_rows -= self._recent.popleft().num_rows
        self.last_uid = max(self.last_uid, int(pc.max(batch.column("uid")).as_py()))

    def recent(self, sub: Subscription, after_uid: int) -> list[dict[str, Any]]:
        """The entries of the latest batches that ``sub`` wants, arrived after ``after_uid``."""
        out: list[dict[str, Any]] = []
        for batch in self._recent:
            newer = batch.filter(pc.greater(batch.column("uid"), pa.scalar(after_uid, pa.uint64())))
            out += entries_of(sub.matching(newer))
        return out


def gap_query(sub: Subscription, after_ms: int, now_ms: int) -> LogQuery:
    """The search for what ``sub`` missed since ``after_ms``: newest first, one page."""
    return LogQuery(
        after_ms - RESUME_SLACK_MS,
        now_ms + 1000,
        filters=sub.filters,
        words=sub.words,
        phrases=sub.phrases,
        limit=MAX_LIMIT,
    )


def resumed(
    stored: LogPage, recent: list[dict[str, Any]], after: tuple[int, int]
) -> tuple[list[dict[str, Any]], dict[str, float] | None]:
    """What a subscriber resuming at ``after`` (ts_ms, uid) missed, in arrival order.

    ``stored`` is the answer to ``gap_query``, ``recent`` the hub's ``recent``
    entries; an entry in both is sent once. When the store had more than one
    page, the older part is not replayed: the second value is then the gap,
    ``{"from": s, "until": s}``, for the subscriber to search.

    >>> resumed(LogPage([{"uid": "7", "ts": 2.0}], None), [{"uid": "7", "ts": 2.0}], (1000, 5))
    ([{'uid': '7', 'ts': 2.0}], None)
    """
    after_ms, after_uid = after
    found = {int(e["uid"]): e for e in stored.entries if int(e["uid"]) > after_uid}
    found.update((int(e["uid"]), e) for e in recent)
    gap = None
    if stored.next_cursor is not None and stored.entries:
        gap = {"from": after_ms / 1000, "until": stored.entries[-1]["ts"]}
    return [found[uid] for uid in sorted(found)], gap
