"""Nodes and tags of a series name, as graphite-web's ``aliasByNode`` and ``groupByNode`` see them.

A series name that ends with ``)`` came out of a function (``sumSeries(a.b.c)``
or ``scale(servers.web1.cpu,2)``); graphite-web then reads nodes from the
first path expression inside it, following the first argument of each nested
call. A plain name is used as it is. Tags (``;key=value``) are cut off before
the path is split on dots, so node 0 of ``cpu.load;host=a`` is ``cpu``.

A node given as ``int`` is an index into the dotted path (negative counts from
the end); a ``str`` node names a tag. An index past either end falls back to
a tag lookup of its decimal form, which is normally empty, as in graphite-web.

>>> node_value("scale(servers.web1.cpu,2)", 1)
'web1'
>>> node_value("cpu.load;host=a", "host")
'a'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vigil.query.series import parse_tags

_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\(")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_OPEN = {"(": ")", "{": "}", "[": "]"}


def _first_argument(text: str) -> str:
    """The text up to the first ``,`` or ``)`` outside brackets and quotes."""
    closers: list[str] = []
    quote = ""
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in _OPEN:
            closers.append(_OPEN[c])
        elif closers and c == closers[-1]:
            closers.pop()
        elif not closers and c in ",)":
            return text[:i].strip()
    return text.strip()


def _is_path(arg: str) -> bool:
    """Whether a call argument is a path expression rather than a literal or keyword."""
    return bool(
        arg
        and arg[0] not in "'\""
        and not _NUMBER.fullmatch(arg)
        and not _KEYWORD.match(arg)
        and arg.lower() not in ("true", "false")
    )


def metric_path(series_name: str) -> str:
    """The path expression a series name stands for, with any tags still on it.

    >>> metric_path("sumSeries(movingAverage(a.{b,c}.d,'5min'),x.y)")
    'a.{b,c}.d'
    >>> metric_path("seriesByTag('name=cpu')")
    "seriesByTag('name=cpu')"
    """
    if not series_name.endswith(")"):
        return series_name
    rest = series_name
    calls = 0
    while match := _CALL.match(rest):
        rest = rest[match.end() :]
        calls += 1
    if not calls:
        return series_name
    arg = _first_argument(rest)
    return arg if _is_path(arg) else series_name


def node_value(series_name: str, node: int | str, tags: Mapping[str, str] | None = None) -> str:
    """The node (``int``) or tag (``str``) of a series name, '' when it has none.

    ``tags`` are the series' own tags when the caller has them (graphite-web
    reads ``series.tags``); otherwise they are parsed from the metric path.
    """
    path = metric_path(series_name)
    if isinstance(node, int) and not isinstance(node, bool):
        parts = path.split(";", 1)[0].split(".")
        if -len(parts) <= node < len(parts):
            return parts[node]
    if tags is None:
        tags = parse_tags(path)
    return tags.get(str(node), "")
