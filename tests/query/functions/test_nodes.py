"""The node-or-tag rule shared by aliasByNode, groupByNode and the other node-aware functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.query.functions.nodes import metric_path, node_value

CASES = [
    # series name, node, tags given by the caller, expected
    ("servers.web01.cpu", 0, None, "servers"),
    ("servers.web01.cpu", 1, None, "web01"),
    ("servers.web01.cpu", -1, None, "cpu"),
    ("servers.web01.cpu", -3, None, "servers"),
    ("servers.web01.cpu", 3, None, ""),
    ("servers.web01.cpu", -4, None, ""),
    ("servers.web01.cpu", "host", None, ""),
    ("scale(servers.web01.cpu,2)", 1, None, "web01"),
    ("sumSeries(movingAverage(a.{b,c}.d,'5min'),x.y)", 1, None, "{b,c}"),
    ("aliasSub(a.b, 'x.y', 'z')", 1, None, "b"),
    ("cpu.load;host=a;dc=x", 1, None, "load"),
    ("cpu.load;host=a;dc=x", "dc", None, "x"),
    ("cpu.load;host=a;dc=x", "name", None, "cpu.load"),
    ("sumSeries(cpu.load;host=a)", "host", None, "a"),
    ("sumSeries(cpu.load;host=a)", 0, None, "cpu"),
    ("cpu.load", "dc", {"name": "cpu.load", "dc": "from-tags"}, "from-tags"),
    ("cpu.load", 5, {"name": "cpu.load", "5": "numbered tag"}, "numbered tag"),
    # A call whose first argument is not a path: the whole name is split.
    ("constantLine(5)", 0, None, "constantLine(5)"),
    ("seriesByTag('name=cpu')", 0, None, "seriesByTag('name=cpu')"),
    ('identity("a.b")', 1, None, 'b")'),
    # An alias with parentheses that is not a call.
    ("requests (per second)", 0, None, "requests (per second)"),
]


@pytest.mark.parametrize(("name", "node", "tags", "expected"), CASES)
def test_node_value(name: str, node: int | str, tags: dict[str, str] | None, expected: str) -> None:
    assert node_value(name, node, tags) == expected


part = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,6}", fullmatch=True).filter(
    lambda p: p.lower() not in ("true", "false")
)


@given(parts=st.lists(part, min_size=1, max_size=6), data=st.data())
def test_plain_and_wrapped_paths_split_on_dots(parts: list[str], data: st.DataObject) -> None:
    path = ".".join(parts)
    index = data.draw(st.integers(-len(parts), len(parts) - 1))
    for name in (path, f"scale({path},2)", f"sumSeries(offset({path},1),other.x)"):
        assert metric_path(name) == path
        assert node_value(name, index) == parts[index]
