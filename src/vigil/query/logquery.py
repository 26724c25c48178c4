"""A log search as data: time range, field filters, words and phrases, page cursor.

The web API and the CLI build a ``LogQuery`` from user input (errors name the
parameter); a storage backend answers it with a ``LogPage``. Entries come
newest first; the cursor is the position of the last entry returned, so the
next page starts strictly after it even when entries share a millisecond.

>>> parse_words('timeout "connection reset" db-7')
(('timeout', 'db', '7'), ('connection reset',))
"""

from __future__ import annotations

import base64
import dataclasses
import re
import shlex
from typing import Any

# The fields a search filters on, each an exact match on one or more values.
FILTER_FIELDS = ("host", "cluster", "dc", "app", "kind", "type", "name", "status")
MAX_LIMIT = 1000
MAX_CONTEXT = 50
# Words are what the engine's token index holds: runs of letters and digits.
_TOKEN = re.compile(r"[^\W_]+")


class LogQueryError(ValueError):
    """A search that cannot run as asked; the message says what to add or change."""


@dataclasses.dataclass(frozen=True)
class LogQuery:
    """One page of a search: ``start_ms`` inclusive, ``end_ms`` exclusive."""

    start_ms: int
    end_ms: int
    filters: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    limit: int = 100
    cursor: tuple[int, int] | None = None  # (ts_ms, uid) of the last entry seen
    context: int = 0

    def __post_init__(self) -> None:
        if self.end_ms <= self.start_ms:
            raise LogQueryError("until must be after from")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise LogQueryError(f"limit must be between 1 and {MAX_LIMIT}")
        if not 0 <= self.context <= MAX_CONTEXT:
            raise LogQueryError(f"context must be between 0 and {MAX_CONTEXT}")
        unknown = set(self.filters) - set(FILTER_FIELDS)
        if unknown:
            raise LogQueryError(
                f"cannot filter on {', '.join(sorted(unknown))}; filters: {', '.join(FILTER_FIELDS)}"
            )
        for value in self.filters.get("status", ()):
            if not re.fullmatch(r"-?\d+", value):
                raise LogQueryError(f"status={value!r}: expected an integer")


def parse_words(q: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Words and quoted phrases of a search string; a phrase's words are searched as words too.

    Raises ``LogQueryError`` for unbalanced quotes.
    """
    try:
        parts = shlex.split(q)
    except ValueError as e:
        raise LogQueryError(f"q: {e}") from None
    words: list[str] = []
    phrases: list[str] = []
    for part in parts:
        tokens = _TOKEN.findall(part)
        if " " in part.strip():
            phrases.append(part)
        words.extend(t for t in tokens if t not in words)
    return tuple(words), tuple(phrases)


def encode_cursor(ts_ms: int, uid: int) -> str:
    """An opaque cursor for the position after the entry ``(ts_ms, uid)``."""
    return base64.urlsafe_b64encode(f"{ts_ms}.{uid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The position a cursor from ``encode_cursor`` stands for."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts_ms, uid = raw.split(".")
        return int(ts_ms), int(uid)
    except (ValueError, UnicodeDecodeError):
        raise LogQueryError("cursor: not a cursor from a previous page") from None


@dataclasses.dataclass(frozen=True)
class LogPage:
    """Entries newest first (wire-format dicts) and the cursor of the next page, if any."""

    entries: list[dict[str, Any]]
    next_cursor: str | None
