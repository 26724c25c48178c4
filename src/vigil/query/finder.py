"""The metric browser endpoints as graphite-web shapes them, built on ``SeriesSource.find``.

Follows graphite-web's ``webapp/graphite/metrics/views.py``
(https://graphite.readthedocs.io/en/latest/metrics_api.html) so that Grafana's
query editor and graphite-web's own tree work unchanged:

- ``/metrics/find`` in ``treejson`` (the default) and ``completer`` formats;
- ``/metrics/expand`` with ``leavesOnly`` and ``groupByExpr``;
- ``/metrics/index.json``, every leaf path.

A node that is both a branch and a leaf (``a.b`` has data and so does
``a.b.c``) is listed twice, once expandable and once selectable. A source may
say so with two nodes of the same path, or one node of each kind.

Each function returns the JSON value; the web layer serialises it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigil.query.errors import RenderError
from vigil.query.source import MetricNode, SeriesSource

FIND_FORMATS = ("treejson", "completer")
"""Formats ``/metrics/find`` answers in."""

_BRANCH = {"allowChildren": 1, "expandable": 1, "leaf": 0}
_LEAF = {"allowChildren": 0, "expandable": 0, "leaf": 1}


def find_metrics(
    source: SeriesSource, query: str, format: str = "treejson", wildcards: bool = False
) -> Any:
    """The ``/metrics/find`` answer for ``query`` (one glob level such as ``servers.*``).

    ``treejson`` is a list of tree items, branches first; ``completer`` is
    ``{"metrics": [{"path", "name", "is_leaf"}]}`` with a trailing dot on
    branch paths. ``wildcards`` adds a ``*`` entry when several nodes match.

    >>> find_metrics(source, "servers.*")  # doctest: +SKIP
    [{"text": "web1", "id": "servers.web1", "allowChildren": 1, "expandable": 1,
      "leaf": 0, "context": {}}]
    """
    if format not in FIND_FORMATS:
        raise RenderError(f"unknown find format {format!r}: use treejson or completer")
    if not query:
        raise RenderError("find needs a query such as query=* or query=servers.*")
    if format == "completer":
        query = query.replace("..", "*.")
        if not query.endswith("*"):
            query += "*"
    nodes = _split(source.find(query))
    if format == "completer":
        return {"metrics": _completer(nodes, wildcards)}
    base = query.rsplit(".", 1)[0] + "." if "." in query else ""
    return _tree_json(nodes, base, wildcards)


def _split(found: Sequence[MetricNode]) -> list[MetricNode]:
    """One node per (path, kind), sorted by name like graphite-web, branches before leaves."""
    unique = {(n.path, n.is_leaf): n for n in found}
    return sorted(unique.values(), key=lambda n: (n.name, n.path, n.is_leaf))


def _tree_json(nodes: list[MetricNode], base: str, wildcards: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    if wildcards and len(nodes) > 1:
        kind = _BRANCH if any(not n.is_leaf for n in nodes) else _LEAF
        results.append({"text": "*", "id": base + "*", **kind})
    branches = [n for n in nodes if not n.is_leaf]
    leaves = [n for n in nodes if n.is_leaf]
    for node in branches + leaves:
        kind = _LEAF if node.is_leaf else _BRANCH
        results.append({"text": node.name, "id": base + node.name, **kind, "context": {}})
    return results


def _completer(nodes: list[MetricNode], wildcards: bool) -> list[dict[str, str]]:
    results = [
        {
            "path": node.path if node.is_leaf else node.path + ".",
            "name": node.name,
            "is_leaf": "1" if node.is_leaf else "0",
        }
        for node in nodes
    ]
    if wildcards and len(results) > 1:
        results.append({"name": "*"})
    return results


def expand_metrics(
    source: SeriesSource,
    queries: Sequence[str],
    leaves_only: bool = False,
    group_by_expr: bool = False,
) -> dict[str, Any]:
    """The ``/metrics/expand`` answer: the paths each glob matches.

    ``{"results": [paths...]}`` merged and sorted, or with ``group_by_expr``
    ``{"results": {query: [paths...]}}``; ``leaves_only`` drops branches.
    """
    if not queries:
        raise RenderError("expand needs at least one query such as query=servers.*")
    grouped: dict[str, list[str]] = {}
    for query in queries:
        paths = {n.path for n in source.find(query) if n.is_leaf or not leaves_only}
        grouped[query] = sorted(paths)
    if group_by_expr:
        return {"results": grouped}
    return {"results": sorted({p for paths in grouped.values() for p in paths})}


def metric_index(source: SeriesSource) -> list[str]:
    """Every leaf path, sorted: graphite-web's ``/metrics/index.json``.

    Walks one depth at a time (``*``, ``*.*``, ...) rather than node by node,
    so it costs one ``find`` per level and finds the children of a node that
    the source reports only as a leaf.
    """
    leaves: set[str] = set()
    pattern = "*"
    while True:
        nodes = source.find(pattern)
        if not nodes:
            return sorted(leaves)
        leaves.update(n.path for n in nodes if n.is_leaf)
        pattern += ".*"
