"""Value types shared by every stage: batches of points and rejected input.

A batch of points is an Arrow table with ``POINTS_SCHEMA``; whoever receives a
batch owns it (stages never mutate a batch they passed on).
"""

from __future__ import annotations

import dataclasses

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
