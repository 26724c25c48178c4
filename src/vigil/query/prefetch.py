"""A ``SeriesSource`` that reads the paths of many expressions in one storage call.

Graphite-web prefetches every path of a request's targets before evaluating
them; alert rounds do the same over thousands of rule expressions, so a
round is a handful of engine queries instead of one per expression.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from vigil.query.grammar import Call, Expr, Path, parse
from vigil.query.pathglob import glob_to_regex, is_pattern, literal_prefix
from vigil.query.series import Series
from vigil.query.source import Event, MetricNode, SeriesSource


def paths_of(target: str) -> tuple[str, ...]:
    """Every path or glob an expression fetches (``RenderError`` if it does not parse)."""
    out: list[str] = []

    def walk(node: Expr | Any) -> None:
        if isinstance(node, Path):
            out.append(node.path)
        elif isinstance(node, Call):
            for arg in (*node.args, *(v for _, v in node.kwargs)):
                walk(arg)

    walk(parse(target))
    return tuple(out)


@functools.lru_cache(maxsize=65536)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A compiled glob; rounds reuse the same thousands (``re``'s own cache holds 512)."""
    return re.compile(glob_to_regex(pattern))


class Prefetch:
    """A ``SeriesSource`` that answers fetches of known patterns from one storage read.

    Fetches of other patterns or over another range (``timeShift``) go to
    storage as usual.
    """

    def __init__(self, storage: SeriesSource, patterns: Iterable[str], start: int, end: int):
        self.storage = storage
        self.start, self.end = start, end
        self.patterns = set(patterns)
        fetched = storage.fetch(sorted(self.patterns), start, end) if self.patterns else []
        self.by_name = {s.name: s for s in fetched}
        self.names = sorted(self.by_name)
        self._globbed: dict[str, list[Series]] = {}

    def fetch(self, patterns: Sequence[str], start: int, end: int) -> list[Series]:
        """Series of the patterns, from the prefetched read when it covers them."""
        if (start, end) != (self.start, self.end) or not self.patterns.issuperset(patterns):
            return self.storage.fetch(patterns, start, end)
        out: dict[str, Series] = {}
        for p in patterns:
            if not is_pattern(p):
                if p in self.by_name:
                    out[p] = self.by_name[p]
                continue
            if p not in self._globbed:
                # only names sharing the glob's literal prefix can match: a range of the sorted names
                prefix = literal_prefix(p)
                first = bisect.bisect_left(self.names, prefix)
                last = bisect.bisect_left(self.names, prefix + "\U0010ffff", first)
                regex = _glob_regex(p)
                self._globbed[p] = [
                    self.by_name[n] for n in self.names[first:last] if regex.match(n)
                ]
            out.update((s.name, s) for s in self._globbed[p])
        return sorted(out.values(), key=lambda s: s.name)

    def find(self, pattern: str) -> list[MetricNode]:
        """As storage."""
        return self.storage.find(pattern)

    def tagged(self, expressions: Sequence[str]) -> list[str]:
        """As storage."""
        return self.storage.tagged(expressions)

    def events(self, start: int, end: int, tags: Sequence[str] = ()) -> list[Event]:
        """As storage."""
        return self.storage.events(start, end, tags)

    def timer_quantile(self, pattern: str, start: int, end: int, q: float) -> Series | None:
        """As storage."""
        return self.storage.timer_quantile(pattern, start, end, q)
