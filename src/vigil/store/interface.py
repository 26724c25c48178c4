"""The storage interface every backend implements, with its contract.

Contract:

- All methods are synchronous and thread-safe; callers in asyncio code run
  them in worker threads. Writes come from one writer thread at a time.
- ``write_points`` takes ownership of the batch (an Arrow table with
  ``model.POINTS_SCHEMA``; timestamps already validated). It returns once the
  engine has stored the batch, or raises ``StorageError``: then any part of the
  batch may be stored, and the caller may retry the whole batch (a repeated
  point is counted twice by ``sum`` rollups, so retries are bounded).
- Time ranges are epoch seconds, ``start`` inclusive, ``end`` exclusive.
- Reads see every batch whose ``write_points`` has returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa

from vigil.query.cubequery import CubeQuery, CubeResult
from vigil.query.logquery import LogPage, LogQuery
from vigil.query.source import Event, SeriesSource

EventFields = tuple[float, str, Sequence[str], str]


class StorageError(RuntimeError):
    """The engine failed a read or write; the message says which and why."""


class QueryLimitError(ValueError):
    """A read would exceed a configured limit; the message names it and how to narrow."""


class LogStorage(Protocol):
    """Log entries: writes from the store writer, searches from the query layer."""

    def write(self, batch: pa.Table, replay: bool = False) -> int:
        """Store a ``model.LOGS_SCHEMA`` batch, skipping entries already stored if ``replay``.

        Same contract as ``Storage.write_points``; returns the rows stored.
        """
        ...

    def search(self, q: LogQuery) -> LogPage:
        """One page of entries matching ``q``, newest first.

        Raises ``query.logquery.LogQueryError`` when the search cannot use an index.
        """
        ...

    def count(self, start_ms: int, end_ms: int) -> int:
        """Entries stored in ``[start_ms, end_ms)``."""
        ...

    def sources(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Each (host, app) with entries in ``[start_ms, end_ms)``: kinds, names, last seen.

        Raises ``query.logquery.LogQueryError`` when the range holds too many entries.
        """
        ...

    def read_lines(self, start_ms: int, end_ms: int) -> pa.Table:
        """Every ``line`` entry in ``[start_ms, end_ms)``, oldest first, as a log batch."""
        ...


class CubeStorage(Protocol):
    """The cube of transactions and events, summed per stored batch and merged by the engine."""

    def query(self, q: CubeQuery) -> CubeResult:
        """The measures of ``q`` per group; ``CubeQueryError`` if the answer would be too big."""
        ...


class ErrorStorage(Protocol):
    """Error groups: occurrences by fingerprint, with merges a user made.

    ``ValueError`` is the caller's mistake (an unknown id), ``StorageError``
    the engine's. Time bounds are epoch ms, start inclusive, end exclusive.
    """

    def write(self, occurrences: pa.Table) -> None:
        """Store the rows of ``cube.fingerprint.errors_of``."""
        ...

    def groups(
        self,
        start_ms: int,
        end_ms: int,
        filters: dict[str, str] | None = None,
        buckets: int = 30,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Groups with occurrences in the range, most first."""
        ...

    def group(
        self, id: str, start_ms: int, end_ms: int, buckets: int = 30
    ) -> dict[str, Any] | None:
        """One group with its sample, or ``None``."""
        ...

    def merge(self, ids: list[str]) -> str:
        """Merge groups into the first; returns its id."""
        ...

    def split(self, id: str, fingerprint: str) -> None:
        """Take a fingerprint out of a group."""
        ...


class Storage(SeriesSource, Protocol):
    """A point, log and event store: the query layer's ``SeriesSource`` plus writes."""

    @property
    def logs(self) -> LogStorage:
        """The log entries of this store."""
        ...

    @property
    def cube(self) -> CubeStorage:
        """The cube kept from the log entries of this store."""
        ...

    @property
    def errors(self) -> ErrorStorage:
        """The error groups of this store."""
        ...

    def write_points(self, batch: pa.Table) -> None:
        """Store a batch of points (see the module contract)."""
        ...

    def write_sketches(self, batch: pa.Table) -> None:
        """Store timer sketches (``sketch.SKETCH_SCHEMA``); same contract as ``write_points``."""
        ...

    def write_event(self, when: float, what: str, tags: Sequence[str], data: str) -> Event:
        """Store one timeline event and return it with its id."""
        ...

    def write_events(self, events: Sequence[EventFields]) -> list[Event]:
        """Store several ``(when, what, tags, data)`` events at once; returns them with ids."""
        ...

    def tag_names(self, prefix: str, expressions: Sequence[str], limit: int) -> list[str]:
        """Tag names of tagged series (matching ``expressions`` if given), by prefix."""
        ...

    def tag_values(
        self, tag: str, prefix: str, expressions: Sequence[str], limit: int
    ) -> list[str]:
        """Values of one tag over tagged series (matching ``expressions``), by prefix."""
        ...

    def sweep_retention(self, now: int) -> int:
        """Drop partitions older than their class's retention; returns how many went."""
        ...

    def compact(self) -> list[str]:
        """Merge stored parts now; returns the tables merged."""
        ...

    def usage(self) -> dict[str, dict[str, int]]:
        """Rows, parts and bytes on disk per table."""
        ...

    def close(self) -> None:
        """Release connections; further calls fail."""
        ...
