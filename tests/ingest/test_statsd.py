"""The StatsD parser: every type, sample rates, deltas, tags, rejects, and agreement with the reference."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ingest.statsd import (
    GAUGES_SCHEMA,
    SAMPLED_SCHEMA,
    SETS_SCHEMA,
    StatsdBatch,
    StatsdLine,
    parse_line,
    parse_statsd,
)
from vigil.model import Reject


def rows(batch: StatsdBatch) -> dict[str, list[dict[str, Any]]]:
    """The non-empty tables of a batch as rows, by type."""
    tables = {
        "counters": batch.counters,
        "gauges": batch.gauges,
        "timers": batch.timers,
        "sets": batch.sets,
    }
    return {kind: table.to_pylist() for kind, table in tables.items() if table.num_rows}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"hits:1|c", {"counters": [{"name": "hits", "value": 1.0, "rate": 1.0}]}),
        (b"hits:-2.5|c", {"counters": [{"name": "hits", "value": -2.5, "rate": 1.0}]}),
        (b"hits:3|c|@0.1", {"counters": [{"name": "hits", "value": 3.0, "rate": 0.1}]}),
        (b"hits:1|c|@1", {"counters": [{"name": "hits", "value": 1.0, "rate": 1.0}]}),
        (b"hits:1e3|c|@.5", {"counters": [{"name": "hits", "value": 1000.0, "rate": 0.5}]}),
        (b"temp:21.5|g", {"gauges": [{"name": "temp", "value": 21.5, "delta": False}]}),
        (b"temp:+4|g", {"gauges": [{"name": "temp", "value": 4.0, "delta": True}]}),
        (b"temp:-4|g", {"gauges": [{"name": "temp", "value": -4.0, "delta": True}]}),
        (b"temp:0|g|@0.5", {"gauges": [{"name": "temp", "value": 0.0, "delta": False}]}),
        (b"req:320|ms", {"timers": [{"name": "req", "value": 320.0, "rate": 1.0}]}),
        (b"req:320|ms|@0.25", {"timers": [{"name": "req", "value": 320.0, "rate": 0.25}]}),
        (b"size:-7|h", {"timers": [{"name": "size", "value": -7.0, "rate": 1.0}]}),
        (b"lat:0.5|d|@0.5", {"timers": [{"name": "lat", "value": 0.5, "rate": 0.5}]}),
        (b"users:alice|s", {"sets": [{"name": "users", "member": "alice"}]}),
        (b"users:a:b|s", {"sets": [{"name": "users", "member": "a:b"}]}),
        (b"users:42|s|@0.5", {"sets": [{"name": "users", "member": "42"}]}),
        # DogStatsD tags become sorted Graphite tags; a bare tag is "true".
        (
            b"req:1|ms|#route:/api,env:prod",
            {"timers": [{"name": "req;env=prod;route=/api", "value": 1.0, "rate": 1.0}]},
        ),
        (
            b"req:1|c|@0.5|#canary",
            {"counters": [{"name": "req;canary=true", "value": 1.0, "rate": 0.5}]},
        ),
        (
            b"req:1|c|#url:http://x:80/a",
            {"counters": [{"name": "req;url=http://x:80/a", "value": 1.0, "rate": 1.0}]},
        ),
        (b"req:1|c|#", {"counters": [{"name": "req", "value": 1.0, "rate": 1.0}]}),
        (b"req:1|c|#a:1,,b:2", {"counters": [{"name": "req;a=1;b=2", "value": 1.0, "rate": 1.0}]}),
        (b"req:1|c|#a:1,a:2", {"counters": [{"name": "req;a=2", "value": 1.0, "rate": 1.0}]}),
        # Tags before the rate, Graphite tags in the name, merged with DogStatsD ones.
        (b"req:1|c|#a:1|@0.5", {"counters": [{"name": "req;a=1", "value": 1.0, "rate": 0.5}]}),
        (b"req;z=1;a=2:1|c", {"counters": [{"name": "req;a=2;z=1", "value": 1.0, "rate": 1.0}]}),
        (b"req;h=a:1|c|#h:b", {"counters": [{"name": "req;h=b", "value": 1.0, "rate": 1.0}]}),
        # Names are cleaned as etsy's statsd does.
        (
            b"my app/req time:1|c",
            {"counters": [{"name": "my_app-req_time", "value": 1.0, "rate": 1.0}]},
        ),
        (b"caf\xc3\xa9.hits!:1|c", {"counters": [{"name": "caf.hits", "value": 1.0, "rate": 1.0}]}),
        (b"  hits:1|c \r", {"counters": [{"name": "hits", "value": 1.0, "rate": 1.0}]}),
    ],
)
def test_good_lines(line: bytes, expected: dict[str, list[dict[str, Any]]]) -> None:
    assert rows(parse_statsd([line])) == expected
    assert parse_statsd([line]).rejects == []
    assert isinstance(parse_line(line), StatsdLine)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"hits", "missing ':' between name and value (expected name:value|type)"),
        (b"hits:1", "missing '|type' after the value (expected name:value|type)"),
        (b"hits:|c", "missing value"),
        (b"users:|s", "missing value"),
        (b"hits:1|x", "unknown metric type (expected c, g, ms, h, d or s)"),
        (b"hits:1|", "unknown metric type (expected c, g, ms, h, d or s)"),
        (b"hits:1|C", "unknown metric type (expected c, g, ms, h, d or s)"),
        (b"hits:one|c", "value is not a number"),
        (b"hits:0x10|c", "value is not a number"),
        (b"hits:1,5|ms", "value is not a number"),
        (b"hits:1:2|h", "value is not a number"),
        (b"hits:nan|c", "value is NaN or infinite"),
        (b"hits:-inf|g", "value is NaN or infinite"),
        (b"hits:1e999|ms", "value is NaN or infinite"),
        (b"hits:1|c|@0", "sample rate must be a number in (0, 1], as in @0.1"),
        (b"hits:1|c|@1.5", "sample rate must be a number in (0, 1], as in @0.1"),
        (b"hits:1|c|@-0.5", "sample rate must be a number in (0, 1], as in @0.1"),
        (b"hits:1|c|@", "sample rate must be a number in (0, 1], as in @0.1"),
        (b"hits:1|c|@nan", "sample rate must be a number in (0, 1], as in @0.1"),
        (
            b"hits:1|c|0.5",
            "unexpected field after the type (expected |@rate and |#tags, once each)",
        ),
        (
            b"hits:1|c|@0.5|@0.5",
            "unexpected field after the type (expected |@rate and |#tags, once each)",
        ),
        (b"hits:1|c|", "unexpected field after the type (expected |@rate and |#tags, once each)"),
        (
            b"hits:1|c|#a:b|#c:d",
            "unexpected field after the type (expected |@rate and |#tags, once each)",
        ),
        (b"!!!:1|c", "empty metric name"),
        (b":1|c", "empty metric name"),
        (b"hits:1|c|#:v", "malformed tag name (not empty; no ; ! ^ = ~ or whitespace)"),
        (b"hits:1|c|#a=b:v", "malformed tag name (not empty; no ; ! ^ = ~ or whitespace)"),
        (b"hits:1|c|#a:", "malformed tag value (not empty; no ; or whitespace; no leading ~)"),
        (b"hits:1|c|#a:~x", "malformed tag value (not empty; no ; or whitespace; no leading ~)"),
        (b"hits:1|c|#a:x y", "malformed tag value (not empty; no ; or whitespace; no leading ~)"),
        (b"hits:1|c|#a:x;y", "malformed tag value (not empty; no ; or whitespace; no leading ~)"),
        (b"hits;host:1|c", "malformed tag in name (use name;tag=value)"),
        (b"hits;host=:1|c", "malformed tag value (not empty; no ; or whitespace; no leading ~)"),
        (b"hits\xff:1|c", "invalid UTF-8"),
        (b"hits:1|c|#" + b"a" * 100, "line longer than 100 bytes"),
    ],
)
def test_bad_lines_are_rejected_with_a_reason_and_the_rest_is_kept(
    line: bytes, reason: str
) -> None:
    rejected = parse_line(line, max_line_bytes=100)
    assert isinstance(rejected, Reject) and rejected.reason == reason
    datagram = b"good.one:1|c\n" + line + b"\ngood.two:2|c"
    batch = parse_statsd([datagram], max_line_bytes=100)
    assert batch.counters.column("name").to_pylist() == ["good.one", "good.two"]
    assert [(r.reason, r.count) for r in batch.rejects] == [(reason, 1)]


def test_the_default_line_limit_is_8192_bytes() -> None:
    line = b"n:1|c|#t:" + b"v" * (8192 - 9)
    assert len(line) == 8192
    assert isinstance(parse_line(line), StatsdLine)
    assert [r.reason for r in parse_statsd([line + b"v"]).rejects] == [
        "line longer than 8192 bytes"
    ]


def test_rejects_are_folded_per_reason_with_the_first_line_as_example() -> None:
    batch = parse_statsd([b"a:x|c\nb:y|c", b"c:1|q\nd:z|ms"])
    assert batch.rejects == [
        Reject("value is not a number", "a:x|c", 3),
        Reject("unknown metric type (expected c, g, ms, h, d or s)", "c:1|q", 1),
    ]


def test_several_datagrams_of_several_lines_keep_their_order() -> None:
    batch = parse_statsd(
        [b"g:5|g\ng:+1|g\n", b"\n\nhits:1|c\r\ng:-2|g\n", b"g:7|g", b"g:+1|g|#\xff:x\ng:1|x"]
    )
    assert batch.gauges.to_pylist() == [
        {"name": "g", "value": 5.0, "delta": False},
        {"name": "g", "value": 1.0, "delta": True},
        {"name": "g", "value": -2.0, "delta": True},
        {"name": "g", "value": 7.0, "delta": False},
    ]
    assert batch.counters.num_rows == 1
    assert sorted(r.reason for r in batch.rejects) == [
        "invalid UTF-8",
        "unknown metric type (expected c, g, ms, h, d or s)",
    ]


def test_lines_the_fast_path_hands_over_keep_their_place_among_the_others() -> None:
    # The middle line (tags before rate) is parsed by the reference parser.
    batch = parse_statsd([b"g:1|g\ng:+1|g|#a:b|@0.5\ng;a=b:9|g\ng:+2|g|@0.5|#a:b"])
    assert batch.gauges.to_pylist() == [
        {"name": "g", "value": 1.0, "delta": False},
        {"name": "g;a=b", "value": 1.0, "delta": True},
        {"name": "g;a=b", "value": 9.0, "delta": False},
        {"name": "g;a=b", "value": 2.0, "delta": True},
    ]


def test_empty_input_gives_empty_tables_of_the_right_schemas() -> None:
    for datagrams in ([], [b""], [b"\n\n  \n"]):
        batch = parse_statsd(datagrams)
        assert batch.counters.schema == SAMPLED_SCHEMA and batch.counters.num_rows == 0
        assert batch.timers.schema == SAMPLED_SCHEMA and batch.timers.num_rows == 0
        assert batch.gauges.schema == GAUGES_SCHEMA and batch.gauges.num_rows == 0
        assert batch.sets.schema == SETS_SCHEMA and batch.sets.num_rows == 0
        assert batch.rejects == []


def test_blank_lines_are_neither_points_nor_rejects() -> None:
    assert parse_line(b"  \r") is None


def reference(datagrams: list[bytes]) -> tuple[dict[str, list[dict[str, Any]]], Counter[str]]:
    """What the per-line reference parser makes of the datagrams, in the shape of ``rows``."""
    out: dict[str, list[dict[str, Any]]] = {}
    reasons: Counter[str] = Counter()
    for line in b"\n".join(datagrams).split(b"\n"):
        parsed = parse_line(line)
        if isinstance(parsed, Reject):
            reasons[parsed.reason] += 1
        elif parsed is not None:
            row: dict[str, Any]
            if parsed.kind == "s":
                kind, row = "sets", {"name": parsed.name, "member": parsed.member}
            elif parsed.kind == "g":
                kind = "gauges"
                row = {"name": parsed.name, "value": parsed.value, "delta": parsed.delta}
            else:
                kind = "counters" if parsed.kind == "c" else "timers"
                row = {"name": parsed.name, "value": parsed.value, "rate": parsed.rate}
            out.setdefault(kind, []).append(row)
    return out, reasons


def assert_agrees_with_reference(datagrams: list[bytes]) -> None:
    batch = parse_statsd(datagrams)
    expected_rows, expected_reasons = reference(datagrams)
    assert rows(batch) == expected_rows
    assert Counter({r.reason: r.count for r in batch.rejects}) == expected_reasons


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=5))
def test_arbitrary_bytes_never_raise_and_agree_with_the_reference(datagrams: list[bytes]) -> None:
    assert_agrees_with_reference(datagrams)


statsd_ish = st.text(alphabet="ab.:|@#,;=~+-019e. \t\x0b\u2003\x00/\r\né!", max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(statsd_ish, max_size=8))
def test_statsd_like_text_agrees_with_the_reference(lines: list[str]) -> None:
    assert_agrees_with_reference([line.encode() for line in lines])


def line_parts() -> st.SearchStrategy[tuple[str, str, float, float | None, dict[str, str]]]:
    name = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,20}", fullmatch=True)
    kind = st.sampled_from(["c", "g", "ms", "h", "d", "s"])
    value = st.floats(allow_nan=False, allow_infinity=False)
    rate = st.one_of(st.none(), st.floats(min_value=1e-6, max_value=1.0, exclude_min=False))
    tag_key = st.from_regex(r"[a-z][a-z0-9_.]{0,6}", fullmatch=True)
    tag_value = st.from_regex(r"[a-z0-9/._:=-]{1,8}", fullmatch=True)
    tags = st.dictionaries(tag_key, tag_value, max_size=4)
    return st.tuples(name, kind, value, rate, tags)


@settings(max_examples=300, deadline=None)
@given(st.lists(line_parts(), min_size=1, max_size=20))
def test_well_formed_lines_parse_to_the_values_generated(
    parts: list[tuple[str, str, float, float | None, dict[str, str]]],
) -> None:
    lines = []
    expected: dict[str, list[dict[str, Any]]] = {}
    for name, kind, value, rate, tags in parts:
        text = repr(value) if kind != "g" else f"{abs(value)!r}"
        if kind == "s":
            text = f"m{value!r}"
        line = f"{name}:{text}|{kind}"
        if rate is not None:
            line += f"|@{rate!r}"
        if tags:
            line += "|#" + ",".join(f"{k}:{v}" for k, v in tags.items())
        lines.append(line.encode())
        full = name + "".join(f";{k}={tags[k]}" for k in sorted(tags))
        if kind == "s":
            expected.setdefault("sets", []).append({"name": full, "member": text})
        elif kind == "g":
            row = {"name": full, "value": abs(value), "delta": False}
            expected.setdefault("gauges", []).append(row)
        else:
            table = "counters" if kind == "c" else "timers"
            row = {"name": full, "value": value, "rate": 1.0 if rate is None else rate}
            expected.setdefault(table, []).append(row)
    batch = parse_statsd([b"\n".join(lines)])
    assert batch.rejects == []
    assert rows(batch) == expected


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["+", "-"]))
def test_signed_gauges_are_deltas(value: float, sign: str) -> None:
    batch = parse_statsd([f"g:{sign}{abs(value)!r}|g".encode()])
    (row,) = batch.gauges.to_pylist()
    assert row["delta"] is True
    assert row["value"] == (abs(value) if sign == "+" else -abs(value))
    assert not math.isnan(row["value"])
