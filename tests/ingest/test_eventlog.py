"""The event-log JSON-lines parser: rules per field, and fast path == reference parser."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.ingest import eventlog
from vigil.ingest.eventlog import parse_chunk
from vigil.ingest.logrules import LogRules

NOW_MS = 1_763_900_000_000
NOW = NOW_MS / 1000
RULES = LogRules(max_entry_bytes=4096)


def line(**fields: object) -> bytes:
    return orjson.dumps({"ts": NOW, **fields}) + b"\n"


def test_entry_fields_and_defaults() -> None:
    chunk = line(
        kind="end", host="web01", cluster="c1", dc="ams", app="shop", type="URL",
        name="GET /", status=500, duration_ms=12.5, id="a1", parent="a0",
        message="boom\n  at x", data={"user": "u1", "n": 3, "ok": True, "gone": None},
    ) + line()  # fmt: skip
    result = parse_chunk(chunk, 1, NOW_MS, RULES)
    assert result.rejects == []
    first, second = result.entries.to_pylist()
    assert first["kind"] == "end" and first["status"] == 500 and first["parent"] == "a0"
    assert first["message"] == "boom\n  at x"
    assert dict(first["data"]) == {"user": "u1", "n": "3", "ok": "true"}
    assert first["ts"].timestamp() == pytest.approx(NOW)
    assert second["kind"] == "line" and second["severity"] == -1 and second["data"] == []


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"not json", "not a JSON object"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({"kind": "line"}), "ts: missing"),
        (orjson.dumps({"ts": "yesterday"}), "ts: not a number or RFC 3339 time"),
        (orjson.dumps({"ts": NOW + 3600}), "ts: more than 600 s in the future"),
        (orjson.dumps({"ts": NOW - 8 * 86400}), "ts: more than 604800 s in the past"),
        (orjson.dumps({"ts": NOW, "kind": "start"}), "kind: not one of"),
        (orjson.dumps({"ts": NOW, "kind": "end"}), "id: an end needs the id"),
        (orjson.dumps({"ts": NOW, "host": 5}), "host: expected a string"),
        (orjson.dumps({"ts": NOW, "status": "500"}), "status: expected an integer"),
        (orjson.dumps({"ts": NOW, "status": 2**40}), "status: outside"),
        (orjson.dumps({"ts": NOW, "severity": 9}), "severity: outside 0..7"),
        (orjson.dumps({"ts": NOW, "duration_ms": -1}), "duration_ms: expected a finite number"),
        (orjson.dumps({"ts": NOW, "data": [1]}), "data: expected an object"),
        (orjson.dumps({"ts": NOW, "message": "x" * 5000}), "entry longer than 4096 bytes"),
    ],
)
def test_rejects_name_the_line_and_reason(raw: bytes, error: str) -> None:
    chunk = line(name="good") + raw + b"\n" + line(name="also good")
    result = parse_chunk(chunk, 10, NOW_MS, RULES)
    assert result.entries.column("name").to_pylist() == ["good", "also good"]
    assert [r.line for r in result.rejects] == [11]
    assert result.rejects[0].error.startswith(error)


def test_a_type_naming_a_kind_is_the_kind_when_kind_is_missing() -> None:
    chunk = line(type="heartbeat") + line(type="URL") + line(kind="event", type="line")
    entries = parse_chunk(chunk, 1, NOW_MS, RULES).entries
    assert entries.column("kind").to_pylist() == ["heartbeat", "line", "event"]
    assert entries.column("type").to_pylist() == ["heartbeat", "URL", "line"]


def test_rfc3339_and_nested_data() -> None:
    chunk = b'{"ts": "2025-11-23T12:13:20.125Z", "data": {"a": {"b": [1]}}}\n'
    (entry,) = parse_chunk(chunk, 1, NOW_MS, RULES).entries.to_pylist()
    assert entry["ts"].isoformat() == "2025-11-23T12:13:20.125000"
    assert dict(entry["data"]) == {"a": '{"b":[1]}'}


def test_invalid_utf8_is_replaced_and_counted() -> None:
    chunk = b'{"ts": %f, "message": "caf\xe9"}\n' % NOW
    result = parse_chunk(chunk, 1, NOW_MS, RULES)
    assert result.entries.column("message").to_pylist() == ["caf\ufffd"]
    assert result.repaired == 1 and result.rejects == []


def test_blank_lines_and_crlf_keep_line_numbers() -> None:
    chunk = b"\r\n" + line(name="a").replace(b"\n", b"\r\n") + b"  \n" + b"oops\n"
    result = parse_chunk(chunk, 1, NOW_MS, RULES)
    assert result.entries.column("name").to_pylist() == ["a"]
    assert [r.line for r in result.rejects] == [4]


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**50), 2**50),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    _text,
)
_entry = st.fixed_dictionaries(
    {"ts": st.one_of(st.floats(NOW - 3600, NOW + 60), st.integers(int(NOW) - 60, int(NOW)))},
    optional={
        "kind": st.sampled_from([*eventlog.ENTRY_KINDS, "bogus"]),
        "host": st.one_of(_text, st.integers(0, 3)),
        "type": st.sampled_from(["URL", "event", "end", ""]),
        "name": _text,
        "id": _text,
        "status": st.integers(-(2**33), 2**33),
        "severity": st.integers(-1, 9),
        "duration_ms": st.floats(-1, 1e9),
        "message": _text,
        "data": st.one_of(
            st.dictionaries(st.sampled_from("abc"), _scalar, max_size=3),
            st.dictionaries(st.sampled_from("abc"), st.lists(st.integers(-9, 9), max_size=2)),
        ),
        "extra": _scalar,
    },
)
_lines = st.lists(
    st.one_of(_entry.map(orjson.dumps), st.sampled_from([b"", b"  ", b"{", b"null", b"\xff"])),
    max_size=12,
)


@given(_lines)
def test_fast_path_agrees_with_reference_parser(lines: list[bytes]) -> None:
    chunk = b"\n".join(lines) + b"\n"
    got = parse_chunk(chunk, 1, NOW_MS, RULES)
    want = eventlog._parse_lines(chunk, 1, NOW_MS, RULES)
    assert got.entries.to_pylist() == want.entries.to_pylist()
    assert [(r.line, r.error) for r in got.rejects] == [(r.line, r.error) for r in want.rejects]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(chunk: bytes) -> None:
    result = parse_chunk(chunk, 1, NOW_MS, RULES)
    assert result.entries.num_rows + len(result.rejects) <= chunk.count(b"\n") + 1
