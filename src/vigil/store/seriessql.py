"""SQL conditions on the series catalogue's paths: prefix ranges and seriesByTag expressions."""

from __future__ import annotations

import re

from vigil.store.schema import sql_string


def _upper_bound(prefix: str) -> str:
    """The least string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def path_range(prefix: str) -> str:
    """An index-friendly range condition on the sorted path column."""
    if not prefix:
        return "1"
    return f"path >= {sql_string(prefix)} AND path < {sql_string(_upper_bound(prefix))}"


_TAG_EXPR = re.compile(r"^([^!=~;]+)(!=~|=~|!=|=)(.*)$")


def tag_value_sql(tag: str) -> str:
    """SQL for the value of ``tag`` in a tagged path ('' when absent)."""
    if tag == "name":
        return "splitByChar(';', path)[1]"
    key = sql_string(tag + "=")
    return (
        f"substring(arrayFirst(x -> startsWith(x, {key}), arrayPopFront(splitByChar(';', path))),"
        f" {len(tag) + 2})"
    )


def tag_condition(expression: str) -> str:
    """SQL for one seriesByTag expression (``tag=v``, ``tag!=v``, ``tag=~re``, ``tag!=~re``)."""
    m = _TAG_EXPR.match(expression)
    if not m:
        raise ValueError(
            f"bad tag expression {expression!r}: use tag=value, tag!=value, tag=~regex or tag!=~regex"
        )
    tag, op, value = m.groups()
    have = tag_value_sql(tag)
    if op in ("=", "!="):
        return f"{have} {op} {sql_string(value)}"
    # Graphite anchors tag regexes at the start.
    cond = f"match({have}, {sql_string('^(?:' + value + ')')})"
    return cond if op == "=~" else f"NOT {cond}"
