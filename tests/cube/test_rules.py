"""Extraction rules: templates, captures, counts, filters, errors, RE2 vs Python, the rule book."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.cube.rules import (
    NOT_A_NUMBER,
    Rule,
    RuleError,
    RuleSet,
    load_rules,
    python_rows,
    regex_mode,
)
from vigil.model import POINTS_SCHEMA, logs_from_rows

T0 = 1_700_000_000_000


def batch(*messages: str, **fields: Any) -> pa.Table:
    return logs_from_rows(
        [{"ts": T0 + i * 10, "message": m, **fields} for i, m in enumerate(messages)]
    )


def points(rules: list[dict[str, Any]], entries: pa.Table) -> list[tuple[str, int, float]]:
    ruleset = RuleSet.from_dicts(rules)
    assert ruleset.errors == []
    table, errors = ruleset.apply(entries)
    assert table.schema == POINTS_SCHEMA
    assert errors == {}
    return sorted((r["path"], r["ts"], r["value"]) for r in table.to_pylist())


LATENCY = {
    "name": "nginx-latency",
    "match": r"upstream_response_time=(?P<latency>[0-9.]+)",
    "metric": "logs.{app}.{host}.upstream_ms",
    "value": "latency",
    "scale": 1000,
}


def test_captured_number_scaled_into_templated_path() -> None:
    entries = batch(
        "GET / upstream_response_time=0.012", "no match here", host="web.01", app="nginx"
    )
    assert points([LATENCY], entries) == [("logs.nginx.web_01.upstream_ms", T0 // 1000, 12.0)]


def test_count_sums_per_path_and_second() -> None:
    rule = {"name": "codes", "match": r"status=(?P<code>\d+)", "metric": "logs.{app}.{code}.count"}
    entries = logs_from_rows(
        [
            {"ts": T0, "app": "shop", "message": "status=200"},
            {"ts": T0 + 999, "app": "shop", "message": "status=200"},
            {"ts": T0 + 1000, "app": "shop", "message": "status=200"},
            {"ts": T0, "app": "shop", "message": "status=500"},
        ]
    )
    s = T0 // 1000
    assert points([rule], entries) == [
        ("logs.shop.200.count", s, 2.0),
        ("logs.shop.200.count", s + 1, 1.0),
        ("logs.shop.500.count", s, 1.0),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("web 01", "web_01"), ("a/b.c", "a_b_c"), ("", "_"), ("x*y", "x_y"), ("ok-1", "ok-1")],
)
def test_template_values_are_path_safe(value: str, expected: str) -> None:
    rule = {"name": "r", "match": "x", "metric": "logs.{host}.count"}
    assert points([rule], batch("x", host=value)) == [(f"logs.{expected}.count", T0 // 1000, 1.0)]


def test_group_takes_precedence_over_field_and_optional_group_is_underscore() -> None:
    rule = {"name": "r", "match": r"(?P<host>h\d)?;", "metric": "a.{host}.count"}
    assert points([rule], batch("h1;", ";", host="real")) == [
        ("a._.count", T0 // 1000, 1.0),
        ("a.h1.count", T0 // 1000, 1.0),
    ]


def test_field_filters_and_only_line_entries() -> None:
    rule = {
        "name": "r",
        "fields": {"app": ["nginx", "haproxy"], "status": 500},
        "metric": "e.count",
    }
    entries = logs_from_rows(
        [
            {"ts": T0, "app": "nginx", "status": 500},
            {"ts": T0, "app": "haproxy", "status": 500},
            {"ts": T0, "app": "nginx", "status": 200},
            {"ts": T0, "app": "shop", "status": 500},
            {"ts": T0, "app": "nginx", "status": 500, "kind": "event"},
        ]
    )
    assert points([rule], entries) == [("e.count", T0 // 1000, 2.0)]
    events = {"name": "deploys", "fields": {"kind": "event"}, "metric": "e.deploys.count"}
    assert points([events], entries) == [("e.deploys.count", T0 // 1000, 1.0)]


@pytest.mark.parametrize("agg, expected", [("none", [1.0, 3.0]), ("avg", [2.0]), ("max", [3.0])])
def test_value_aggregation(agg: str, expected: list[float]) -> None:
    rule = {"name": "r", "match": r"t=(?P<t>\d+)", "metric": "t", "value": "t", "agg": agg}
    assert [p[2] for p in points([rule], batch("t=1", "t=3"))] == expected


def test_non_numeric_capture_is_counted_not_fatal() -> None:
    rule = {"name": "r", "match": r"t=(?P<t>\S+)", "metric": "t", "value": "t"}
    ruleset = RuleSet.from_dicts([rule])
    table, errors = ruleset.apply(batch("t=1.5", "t=abc", "t=.", "t=1e999", "t=é"))
    assert table.column("value").to_pylist() == [1.5]
    assert errors == {"r": 4}
    assert ruleset.apply_detailed(batch("t=x")).errors == {"r": {NOT_A_NUMBER: 1}}


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"name": "r", "match": "(", "metric": "m"}, "bad regex"),
        ({"name": "r", "match": "x", "metric": "m.{nope}"}, "placeholder {nope}"),
        ({"name": "r", "match": "x", "metric": "m", "value": "v"}, "neither 'count' nor"),
        ({"name": "r", "match": "x"}, "missing metric"),
        ({"match": "x", "metric": "m"}, "name must be"),
        ({"name": "r", "metric": "m"}, "give match"),
        ({"name": "r", "match": "x", "metric": "m", "colour": 1}, "unknown key"),
        ({"name": "r", "fields": {"bogus": "x"}, "metric": "m"}, "cannot filter"),
        ({"name": "r", "fields": {"status": "500"}, "metric": "m"}, "must be a int"),
        ({"name": "r", "match": "x", "metric": "a b"}, "spaces"),
        ({"name": "r", "match": "x", "metric": "m", "agg": "p99"}, "agg must be"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(rule: dict[str, Any], error: str) -> None:
    with pytest.raises(RuleError, match=error):
        Rule.from_dict(rule)


def test_load_rules_keeps_good_rules_and_lists_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rule]]
name = "nginx-latency"
match = 'upstream_response_time=(?P<latency>[0-9.]+)'
metric = "logs.{app}.{host}.upstream_ms"
value = "latency"
scale = 1000
[rule.fields]
app = "nginx"

[[rule]]
name = "broken"
match = '(unclosed'
metric = "x"

[[rule]]
name = "nginx-latency"
match = 'x'
metric = "y"
"""
    )
    ruleset = load_rules(path)
    assert [r.name for r in ruleset.rules] == ["nginx-latency"]
    assert ruleset.rules[0].fields == (("app", ("nginx",)),)
    assert [e["rule"] for e in ruleset.errors] == ["broken", "nginx-latency"]
    assert "bad regex" in ruleset.errors[0]["error"]
    assert "defined twice" in ruleset.errors[1]["error"]


def test_unreadable_rules_file_is_an_error_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[[rule]\n")
    assert load_rules(tmp_path / "bad.toml").rules == []
    assert "bad.toml" in load_rules(tmp_path / "bad.toml").errors[0]["error"]
    assert load_rules(tmp_path / "missing.toml").errors


@pytest.mark.parametrize(
    ("pattern", "mode"),
    [
        (r"t=(?P<t>\d+)", "re2"),
        (r"t=(\w)(?P<t>\d+)", "re2-filter"),
        (r"(?<=t=)(?P<t>\d+)", "python"),
        (r"(?P<t>\d+)\Z", "python"),
        (r"(?P<t>a{,3})", "python"),
    ],
)
def test_regex_modes(pattern: str, mode: str) -> None:
    rule = Rule.from_dict({"name": "r", "match": pattern, "metric": "m", "value": "t"})
    assert regex_mode(rule) == mode


# Patterns that run through RE2, and the same meaning forced through Python
# (an empty lookahead, which always succeeds, makes RE2 refuse the pattern).
PATTERNS = [
    r"(?P<n>\d+)ms",
    r"status=(?P<code>[0-9]{3})\b",
    r"(?i)(?P<w>err\w*)",
    r"^(?P<first>\S+)\s",
    r"(?P<n>[0-9.]+)$",
    r"x(?P<n>.*?)y",
    r"(?P<a>a|ab)(?P<b>c|bcd)",
]
ALPHABET = st.sampled_from(
    list("abcdxy0123456789 .=\t\n") + ["ms", "ERR", "status=", "é", "\x1c", "\v"]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(ALPHABET, max_size=12).map("".join), max_size=20))
def test_re2_and_python_agree(messages: list[str]) -> None:
    entries = batch(*messages)
    for pattern in PATTERNS:
        names = sorted(re.compile(pattern).groupindex)
        metric = "m." + ".".join("{" + g + "}" for g in names) + ".count"
        fast = Rule.from_dict({"name": "f", "match": pattern, "metric": metric})
        slow = Rule.from_dict({"name": "f", "match": pattern + "(?=)", "metric": metric})
        assert regex_mode(fast) == "re2" and regex_mode(slow) == "python"
        got_fast = RuleSet([fast]).apply(entries)[0].sort_by([("path", "ascending")])
        got_slow = RuleSet([slow]).apply(entries)[0].sort_by([("path", "ascending")])
        assert got_fast.to_pylist() == got_slow.to_pylist(), pattern


def test_apply_never_raises_on_empty_or_odd_batches() -> None:
    ruleset = RuleSet.from_dicts([LATENCY])
    assert ruleset.apply(batch())[0].num_rows == 0
    assert RuleSet().apply(batch("x"))[0].num_rows == 0


def test_python_rows_on_sliced_and_empty_chunks() -> None:
    messages = pa.chunked_array(
        [
            pa.array(["é", "plain", "x\n", "b\x0bc", "d\x1e", "ok\tok"])[1:],
            pa.array([], pa.string()),
        ]
    )
    assert python_rows(messages).to_pylist() == [False, True, True, True, False]
    assert python_rows(pa.chunked_array([], pa.string())).to_pylist() == []
