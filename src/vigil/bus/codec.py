"""Arrow batches as bus messages: compressed Arrow IPC streams, cut to fit a message.

A batch travels between processes as one Arrow IPC stream (schema and field
metadata included, so it decodes ``equals`` the table sent) with ZSTD buffer
compression: a message crosses the network and may be replicated three times,
so bytes matter more here than in the local spool (which uses LZ4). NATS
limits a message's size (``max_payload``, 1 MB by default), so a batch that
encodes larger is cut into row ranges that each fit; ``encode(table, 1 << 20)``
of a 250,000-point batch gives a few messages whose tables concatenate back
to the batch.
"""

from __future__ import annotations

import pyarrow as pa

_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


class BatchTooLarge(ValueError):
    """One row alone encodes larger than a message may be."""


def _encode_one(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def encode(table: pa.Table, max_bytes: int) -> list[tuple[int, bytes]]:
    """``table`` as messages of at most ``max_bytes`` each: ``(rows, data)``, rows in order.

    A too-large encoding is halved by rows until every piece fits; a single
    row that does not fit raises ``BatchTooLarge``.
    """
    data = _encode_one(table)
    if len(data) <= max_bytes:
        return [(table.num_rows, data)]
    if table.num_rows <= 1:
        raise BatchTooLarge(
            f"one row encodes to {len(data)} bytes, more than a message may hold ({max_bytes});"
            " raise max_payload in the NATS server's configuration"
        )
    half = table.num_rows // 2
    return encode(table.slice(0, half), max_bytes) + encode(table.slice(half), max_bytes)


def decode(data: bytes) -> pa.Table:
    """The table one message holds."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
