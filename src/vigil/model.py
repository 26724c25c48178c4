"""Value types shared by every stage: batches of points and rejected input.

A batch of points is an Arrow table with ``POINTS_SCHEMA``; whoever receives a
batch owns it (stages never mutate a batch they passed on).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa

POINTS_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("ts", pa.uint32(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

# Longest example of a rejected input kept for reporting.
REJECT_SAMPLE_BYTES = 200


@dataclasses.dataclass(frozen=True)
class Reject:
    """Rejected input records sharing a reason: how many, and (a prefix of) one of them."""

    reason: str
    sample: str
    count: int = 1

    @classmethod
    def of(cls, reason: str, raw: bytes | str, count: int = 1) -> Reject:
        """A reject keeping a printable prefix of ``raw`` as its example."""
        if isinstance(raw, bytes):
            raw = raw[:REJECT_SAMPLE_BYTES].decode("utf-8", "backslashreplace")
        return cls(reason, raw[:REJECT_SAMPLE_BYTES], count)


@dataclasses.dataclass(frozen=True)
class ParseResult:
    """What a parser made of a chunk of input: good points and rejects."""

    points: pa.Table
    rejects: list[Reject]


# The entry kinds of the typed event log (docs/formats/eventlog.md).
ENTRY_KINDS = ("begin", "end", "atomic", "event", "heartbeat", "line")

# A batch of log entries. ``uid`` is unique per entry and orders entries that
# share a millisecond in arrival order (it is 0 until ingest stamps the batch);
# ``severity`` and ``facility`` are syslog's, -1 when the input had none.
LOGS_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ms"), nullable=False),
        pa.field("uid", pa.uint64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("host", pa.string(), nullable=False),
        pa.field("cluster", pa.string(), nullable=False),
        pa.field("dc", pa.string(), nullable=False),
        pa.field("app", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("status", pa.int32(), nullable=False),
        pa.field("duration_ms", pa.float64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("parent", pa.string(), nullable=False),
        pa.field("severity", pa.int8(), nullable=False),
        pa.field("facility", pa.int8(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("data", pa.map_(pa.string(), pa.string()), nullable=False),
    ]
)

# What a missing field of a log entry becomes.
LOG_DEFAULTS: dict[str, object] = {
    "uid": 0,
    "kind": "line",
    "host": "",
    "cluster": "",
    "dc": "",
    "app": "",
    "type": "",
    "name": "",
    "status": 0,
    "duration_ms": 0.0,
    "id": "",
    "parent": "",
    "severity": -1,
    "facility": -1,
    "message": "",
    "data": {},
}


def logs_from_rows(rows: list[dict[str, object]]) -> pa.Table:
    """A ``LOGS_SCHEMA`` batch from entries as dicts (``ts`` in epoch milliseconds).

    Missing fields take ``LOG_DEFAULTS``; ``data`` is a dict of strings. For
    parsers' slow paths and tests: fast paths build columns directly.
    """
    columns = {
        f.name: [row.get(f.name, LOG_DEFAULTS.get(f.name)) for row in rows] for f in LOGS_SCHEMA
    }
    columns["data"] = [list(d.items()) for d in columns["data"]]  # type: ignore[attr-defined]
    return pa.table(columns, schema=LOGS_SCHEMA)


def entries_of(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of a logs result as wire-format dicts.

    ``ts`` is in epoch seconds, ``uid`` text (JSON numbers lose 64-bit
    precision), and a ``severity`` or ``facility`` the input did not have is null.
    """
    ts = table.column("ts").cast(pa.int64()).to_numpy() / 1000 if table.num_rows else []
    rows: list[dict[str, Any]] = table.drop_columns(["ts"]).to_pylist()
    for row, when in zip(rows, ts):
        row["ts"] = float(when)
        row["uid"] = str(row["uid"])
        row["data"] = dict(row["data"])
        for field in ("severity", "facility"):
            if row[field] < 0:
                row[field] = None
    return rows
