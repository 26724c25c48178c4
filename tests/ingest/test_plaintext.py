"""The Graphite plaintext parser: fast path, fallback, rejects, and agreement with the reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ingest.plaintext import LineRules, parse_chunk, parse_line
from vigil.model import Reject

NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a.b.c 1.5 1700000000", ("a.b.c", 1700000000, 1.5)),
        (b"a 1e3 1699999999.9", ("a", 1699999999, 1000.0)),
        (b"a -2 1700000000\r", ("a", 1700000000, -2.0)),
        (b"a 1 -1", ("a", NOW, 1.0)),
        (b"cpu;host=a;dc=x 1 1700000000", ("cpu;host=a;dc=x", 1700000000, 1.0)),
        (b"a\t1   1700000000", ("a", 1700000000, 1.0)),
    ],
)
def test_good_lines(line: bytes, expected: tuple[str, int, float]) -> None:
    assert parse_line(line, NOW) == expected
    assert parse_chunk(line + b"\n", NOW).points.to_pylist() == [
        dict(zip(("path", "ts", "value"), expected))
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"a 1", "expected 3 fields (path value timestamp), got 2"),
        (b"a 1 2 3", "expected 3 fields (path value timestamp), got 4"),
        (b"a x 1700000000", "value is not a number"),
        (b"a nan 1700000000", "value is NaN or infinite"),
        (b"a inf 1700000000", "value is NaN or infinite"),
        (b"a 1 yesterday", "timestamp is not a number"),
        (b"a 1 -5", "timestamp out of range"),
        (b"a 1 99999999999", "timestamp out of range"),
        (b"a 1 1700090000", "timestamp more than 3600s in the future"),
        (b"a\xff 1 1700000000", "invalid UTF-8"),
        (b"cpu;host 1 1700000000", "malformed tags (use name;tag=value;...)"),
        (b"cpu;host= 1 1700000000", "malformed tags (use name;tag=value;...)"),
        (b"x" * 101 + b" 1 1700000000", "line longer than 100 bytes"),
    ],
)
def test_bad_lines_are_rejected_with_a_reason_and_the_rest_is_kept(
    line: bytes, reason: str
) -> None:
    rules = LineRules(max_line_bytes=100, future_seconds=3600)
    rejected = parse_line(line, NOW, rules)
    assert isinstance(rejected, Reject) and rejected.reason == reason
    chunk = b"good.one 1 1700000000\n" + line + b"\ngood.two 2 1700000000\n"
    result = parse_chunk(chunk, NOW, rules)
    assert result.points.column("path").to_pylist() == ["good.one", "good.two"]
    assert [(r.reason, r.count) for r in result.rejects] == [(reason, 1)]


def test_a_bad_line_in_a_big_chunk_costs_only_its_neighbourhood() -> None:
    good = b"".join(b"s.%d %d 1700000000\n" % (i, i) for i in range(10_000))
    result = parse_chunk(good + b"s.bad 1 x\n" + good, NOW)
    assert result.points.num_rows == 20_000
    assert [r.reason for r in result.rejects] == ["timestamp is not a number"]


def test_empty_lines_and_crlf() -> None:
    result = parse_chunk(b"\n\na 1 1700000000\r\n\r\nb 2 1700000000\r\n", NOW)
    assert result.points.column("path").to_pylist() == ["a", "b"]
    assert result.rejects == []


line_parts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True),
    st.text(max_size=12),
    st.sampled_from(["nan", "-1", "1e400", "a;b=c", "a;b", "0x10", ""]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10, 2**33).map(str),
    line_parts,
)
lines = st.one_of(
    st.tuples(line_parts, numbers, numbers).map(
        lambda t: " ".join(t).encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=30))
def test_vectorised_parser_agrees_with_the_reference(batch: list[bytes]) -> None:
    batch = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in batch]
    chunk = b"".join(line + b"\n" for line in batch)
    result = parse_chunk(chunk, NOW)
    expected = [parse_line(line, NOW) for line in batch if line.strip()]
    good = [dict(zip(("path", "ts", "value"), p)) for p in expected if not isinstance(p, Reject)]
    assert result.points.to_pylist() == good
    assert sum(r.count for r in result.rejects) == sum(isinstance(p, Reject) for p in expected)


def test_a_leading_byte_order_mark_is_part_of_the_first_line() -> None:
    # Arrow's CSV reader would drop it; the reference parser keeps it (and rejects a bare one).
    assert sum(r.count for r in parse_chunk(b"\xef\xbb\xbf\n", NOW).rejects) == 1
    points = parse_chunk(b"\xef\xbb\xbfa 1 %d\n" % NOW, NOW).points
    assert points.column("path").to_pylist() == ["\ufeffa"]


def test_a_nan_timestamp_hides_neither_now_nor_the_future() -> None:
    # NaN made the column's min and max NaN, so "-1 = now" and the future check were skipped.
    chunk = b"a 1 NAN\nb 2 -1\nc 3 %d\n" % (NOW + 10**6)
    result = parse_chunk(chunk, NOW)
    assert result.points.to_pylist() == [{"path": "b", "ts": NOW, "value": 2.0}]
    assert sum(r.count for r in result.rejects) == 2
