"""Graphite path globs as regular expressions.

Graphite patterns match one path component per dot-separated part:
``*`` any run of characters but a dot, ``?`` one such character,
``[0-9]`` / ``[abc]`` a character class, ``{a,b}`` alternatives. The regex is
RE2-compatible so that the storage engine can evaluate it.

>>> glob_to_regex("servers.web{1,2}.cpu*")
'^servers\\\\.web(?:1|2)\\\\.cpu[^.]*$'
"""

from __future__ import annotations

import re

GLOB_CHARS = frozenset("*?[{")


def is_pattern(path: str) -> bool:
    """Whether ``path`` contains a glob character (else it names one node)."""
    return any(c in GLOB_CHARS for c in path)


def glob_body(pattern: str) -> str:
    """The regex for ``pattern`` without anchors."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^.]*")
        elif c == "?":
            out.append("[^.]")
        elif c == "[":
            close = pattern.find("]", i + 1)
            if close < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : close].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = close
        elif c == "{":
            close = pattern.find("}", i + 1)
            if close < 0:
                out.append(re.escape(c))
            else:
                alternatives = pattern[i + 1 : close].split(",")
                out.append("(?:" + "|".join(glob_body(a) for a in alternatives) + ")")
                i = close
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def glob_to_regex(pattern: str) -> str:
    """An anchored regex matching exactly the paths ``pattern`` matches."""
    return f"^{glob_body(pattern)}$"


def literal_prefix(pattern: str) -> str:
    """The longest leading part of ``pattern`` free of glob characters.

    Storage uses it as a range condition on the sorted path column.
    """
    for i, c in enumerate(pattern):
        if c in GLOB_CHARS:
            return pattern[:i]
    return pattern
