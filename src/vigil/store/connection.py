"""What a storage backend supplies: connections to its engine, and the shards of a cluster."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import pyarrow as pa


class Connection(Protocol):
    """One engine connection; used by a single thread at a time."""

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing."""
        ...

    def query_arrow(self, sql: str) -> pa.Table:
        """Run a query and return its result as an Arrow table."""
        ...

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        """Insert an Arrow table into ``table`` (columns by name)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@dataclasses.dataclass(frozen=True)
class Shards:
    """Where a cluster keeps its data: tables in ``database`` on every shard.

    The store's own connections read and write through tables that span the
    shards; retention, compaction and disk usage act on each shard's tables.
    """

    database: str
    # Fresh connections, one per shard; the caller closes them.
    connect: Callable[[], list[Connection]]
    # Creates the tables: ``ddl(database)`` on every shard, and what spans them.
    install: Callable[[Callable[[str], list[str]]], None]
