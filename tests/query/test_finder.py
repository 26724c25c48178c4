"""Metric browser answers in graphite-web's shapes."""

from __future__ import annotations

import pytest

from tests.query.memsource import MemorySource
from vigil.query.errors import RenderError
from vigil.query.finder import expand_metrics, find_metrics, metric_index
from vigil.query.source import MetricNode

BRANCH = {"allowChildren": 1, "expandable": 1, "leaf": 0, "context": {}}
LEAF = {"allowChildren": 0, "expandable": 0, "leaf": 1, "context": {}}


@pytest.fixture
def source() -> MemorySource:
    src = MemorySource()
    for path in ("servers.web1.cpu", "servers.web1.mem", "servers.web2.cpu", "servers.db", "top"):
        src.add(path, 0, [1.0])
    return src


class BothSource(MemorySource):
    """Reports ``servers.db`` as a branch too, as a store with ``servers.db.disk`` would."""

    def find(self, pattern: str) -> list[MetricNode]:
        nodes = super().find(pattern)
        if any(n.path == "servers.db" for n in nodes):
            nodes.append(MetricNode("servers.db", False))
        return nodes


def test_treejson_lists_branches_then_leaves(source: MemorySource) -> None:
    assert find_metrics(source, "servers.*") == [
        {"text": "web1", "id": "servers.web1", **BRANCH},
        {"text": "web2", "id": "servers.web2", **BRANCH},
        {"text": "db", "id": "servers.db", **LEAF},
    ]
    assert find_metrics(source, "*") == [
        {"text": "servers", "id": "servers", **BRANCH},
        {"text": "top", "id": "top", **LEAF},
    ]


def test_treejson_wildcard_entry(source: MemorySource) -> None:
    result = find_metrics(source, "servers.web1.*", wildcards=True)
    assert result[0] == {
        "text": "*",
        "id": "servers.web1.*",
        "allowChildren": 0,
        "expandable": 0,
        "leaf": 1,
    }
    assert [r["text"] for r in result] == ["*", "cpu", "mem"]
    assert find_metrics(source, "top", wildcards=True) == [{"text": "top", "id": "top", **LEAF}]


def test_node_that_is_branch_and_leaf_appears_as_both() -> None:
    src = BothSource()
    src.add("servers.db", 0, [1.0])
    src.add("servers.web", 0, [1.0])
    assert find_metrics(src, "servers.*") == [
        {"text": "db", "id": "servers.db", **BRANCH},
        {"text": "db", "id": "servers.db", **LEAF},
        {"text": "web", "id": "servers.web", **LEAF},
    ]
    assert find_metrics(src, "servers.d", format="completer") == {
        "metrics": [
            {"path": "servers.db.", "name": "db", "is_leaf": "0"},
            {"path": "servers.db", "name": "db", "is_leaf": "1"},
        ]
    }


def test_completer_completes_the_last_part(source: MemorySource) -> None:
    assert find_metrics(source, "servers.w", format="completer") == {
        "metrics": [
            {"path": "servers.web1.", "name": "web1", "is_leaf": "0"},
            {"path": "servers.web2.", "name": "web2", "is_leaf": "0"},
        ]
    }
    # graphite-web reads "serv..w" as "serv*.w*"
    assert find_metrics(source, "serv..w", format="completer", wildcards=True) == {
        "metrics": [
            {"path": "servers.web1.", "name": "web1", "is_leaf": "0"},
            {"path": "servers.web2.", "name": "web2", "is_leaf": "0"},
            {"name": "*"},
        ]
    }


@pytest.mark.parametrize(
    ("query", "fmt", "message"),
    [("*", "pickle", "unknown find format 'pickle'"), ("", "treejson", "find needs a query")],
)
def test_bad_find(source: MemorySource, query: str, fmt: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        find_metrics(source, query, format=fmt)


def test_expand(source: MemorySource) -> None:
    assert expand_metrics(source, ["servers.*", "servers.web*.cpu"]) == {
        "results": [
            "servers.db",
            "servers.web1",
            "servers.web1.cpu",
            "servers.web2",
            "servers.web2.cpu",
        ]
    }
    assert expand_metrics(source, ["servers.*"], leaves_only=True) == {"results": ["servers.db"]}
    assert expand_metrics(source, ["servers.*", "t*"], leaves_only=True, group_by_expr=True) == {
        "results": {"servers.*": ["servers.db"], "t*": ["top"]}
    }
    with pytest.raises(RenderError, match="at least one query"):
        expand_metrics(source, [])


def test_index_lists_every_leaf(source: MemorySource) -> None:
    source.add("servers.db.disk.sda", 0, [1.0])  # servers.db is now branch and leaf
    assert metric_index(source) == [
        "servers.db",
        "servers.db.disk.sda",
        "servers.web1.cpu",
        "servers.web1.mem",
        "servers.web2.cpu",
        "top",
    ]
    assert metric_index(MemorySource()) == []
