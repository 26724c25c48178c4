"""Batches as bus messages: every cut of a batch decodes back to it, each piece fits."""

from __future__ import annotations

import secrets

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.bus.codec import BatchTooLarge, decode, encode
from vigil.model import POINTS_SCHEMA

points = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=40),
        st.integers(0, 2**32 - 1),
        st.floats(allow_nan=False),
    ),
    max_size=300,
)


def table(rows: list[tuple[str, int, float]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"path": p, "ts": t, "value": v} for p, t, v in rows], schema=POINTS_SCHEMA
    )


@given(points, st.integers(1200, 20_000))
def test_pieces_fit_and_concatenate_back_to_the_batch(
    rows: list[tuple[str, int, float]], max_bytes: int
) -> None:
    batch = table(rows)
    pieces = encode(batch, max_bytes)
    assert all(len(data) <= max_bytes for _, data in pieces)
    decoded = [decode(data) for _, data in pieces]
    assert [n for n, _ in pieces] == [t.num_rows for t in decoded]
    assert pa.concat_tables(decoded).equals(batch, check_metadata=True)


def test_a_batch_that_fits_is_one_message() -> None:
    batch = table([("a.b", 1, 1.5)] * 1000)
    ((rows, data),) = encode(batch, 1 << 20)
    assert rows == 1000 and len(data) < batch.nbytes  # compressed


def test_a_row_larger_than_a_message_names_the_server_setting() -> None:
    with pytest.raises(BatchTooLarge, match="max_payload"):
        encode(table([(secrets.token_hex(5000), 1, 1.0)]), 1000)
