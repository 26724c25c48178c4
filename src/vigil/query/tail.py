"""Live tail: the ``tail`` destination fanned out to subscribers, each with its own filter.

Each subscriber has a bounded buffer: a slow subscriber (a browser on a bad
link) never slows ingestion or the other subscribers; what it cannot keep up
with is skipped and counted, and it is told how many entries it missed.
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

from vigil.bus.destination import Destination
from vigil.model import LOGS_SCHEMA, entries_of
from vigil.query.logquery import FILTER_FIELDS


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

    def __init__(self, destination: Destination, max_entries: int) -> None:
        self.destination = destination
        self.max_entries = max_entries
        self.subscribers: set[Subscription] = set()

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
            if self.subscribers and delivery.batch.schema.equals(LOGS_SCHEMA):
                for sub in list(self.subscribers):
                    matched = sub.matching(delivery.batch)
                    if matched.num_rows:
                        sub.offer(entries_of(matched))
            await self.destination.done([delivery])
