"""Log files as event-log entries: the reader behind ``vigil logs import``.

Each line of a file becomes an entry in the wire format of
``docs/formats/eventlog.md``. A line holding a JSON object is taken as an
entry as it is (``host`` and ``app`` filled in when missing). Any other line
becomes a ``line`` entry: a leading timestamp sets ``ts`` (else the previous
entry's, else the file's mtime), a leading level word sets ``severity``, and
the rest is the ``message``. Continuation lines (indented, stack-trace
markers, or lines without a timestamp in a file whose lines have one) are
joined to the entry before them, so a stack trace stays one entry.

>>> from datetime import UTC
>>> lines = ["2025-11-23 12:00:00,125 ERROR boom", "Traceback (most recent call last):",
...          '  File "a.py", line 1, in <module>', "KeyError: 'x'"]
>>> [(n, e["ts"], e["severity"]) for n, e in parse_lines(lines, default_ts=0.0, tz=UTC)]
[(1, 1763899200.125, 3)]
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import orjson

# Syslog severities of the level words a log line may start with.
LEVELS = {
    "EMERG": 0,
    "ALERT": 1,
    "CRITICAL": 2,
    "CRIT": 2,
    "FATAL": 2,
    "ERROR": 3,
    "ERR": 3,
    "WARNING": 4,
    "WARN": 4,
    "NOTICE": 5,
    "INFO": 6,
    "DEBUG": 7,
    "TRACE": 7,
}
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_MON = "(?P<mon>" + "|".join(_MONTHS) + ")"
_END = r"(?=[\s\]|]|$)"  # what may follow a timestamp
_CLOCK = r"(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})(?:[.,](?P<frac>\d{1,9}))?"

# RFC 3339 / ISO 8601 with a space or T, Python logging's comma, Go's
# slashes; optionally in brackets: 2025-11-23T12:00:00.125+01:00, [2025/11/23 12:00:00]
_ISO = re.compile(
    r"(?P<br>\[)?(?P<Y>\d{4})[-/](?P<m>\d{2})[-/](?P<d>\d{2})[T ]"
    + _CLOCK
    + r"(?P<tz>[Zz]|[+-]\d{2}:?\d{2})?(?(br)\])"
    + _END
)
# Syslog (RFC 3164), no year: Nov 23 12:00:00, Nov  3 12:00:00
_SYSLOG = re.compile(_MON + r" {1,2}(?P<d>\d{1,2}) " + _CLOCK + _END)
# Common log format of nginx and Apache, leading or after "host ident user ":
# 127.0.0.1 - - [23/Nov/2025:12:00:00 +0000] "GET / HTTP/1.1" 200 ...
_CLF = re.compile(
    r"(?P<who>\S+ \S+ \S+ )?\[(?P<d>\d{2})/" + _MON + r"/(?P<Y>\d{4}):"
    r"(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2}) (?P<tz>[+-]\d{4})\]"
)
# Apache's error log: [Sun Nov 23 12:00:00.125 2025] [core:error] ...
_CTIME = re.compile(
    r"\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) " + _MON + r" {1,2}(?P<d>\d{1,2}) " + _CLOCK
    + r" (?P<Y>\d{4})\]"
)  # fmt: skip
# A level word (upper case) or a bracketed level in any case, e.g. [error], [core:warn].
_LEVEL = re.compile(r"(?:\[(?:[\w.-]+:)?(?P<bracketed>[A-Za-z]+)\]|(?P<word>[A-Z]+))(?=[\s:\]]|$)")
# Lines that continue a stack trace in Python, Java and Go.
_TRACE_STARTS = (
    "Traceback",
    "Caused by:",
    "goroutine ",
    "created by ",
    "[signal ",
    "During handling of the above exception",
    "The above exception was the direct cause",
)
_MORE = re.compile(r"\.\.\. \d+ more")
# A Go stack frame's function line, e.g. main.(*T).run(0x1, {0xc00001, 0x3})
_GO_FRAME = re.compile(r"[\w.$/*()\[\]-]+\(.*\)$")


def parse_timestamp(
    line: str, reference: float, tz: datetime.tzinfo | None = None
) -> tuple[float, str] | None:
    """The leading timestamp of ``line`` as epoch seconds, and the line's message.

    Times without a zone are in ``tz`` (None: the local zone); syslog times
    lack a year and take the one that puts them at most a day after
    ``reference`` (the file's mtime). The message is the line without the
    timestamp, except for access logs, where the time sits mid-line.

    >>> parse_timestamp("2025-11-23T12:00:00.5Z GET /", 0.0)
    (1763899200.5, 'GET /')
    """
    first = line[:1]
    if first.isdigit() or first == "[":
        if m := _ISO.match(line):
            ts = _epoch(int(m["Y"]), int(m["m"]), int(m["d"]), m, tz)
            return None if ts is None else (ts, line[m.end() :].lstrip())
        if first == "[" and (m := _CTIME.match(line)):
            ts = _epoch(int(m["Y"]), _MONTHS[m["mon"]], int(m["d"]), m, tz)
            return None if ts is None else (ts, line[m.end() :].lstrip())
    if m := _CLF.match(line):
        ts = _epoch(int(m["Y"]), _MONTHS[m["mon"]], int(m["d"]), m, tz)
        if ts is None:
            return None
        return ts, (line if m["who"] else line[m.end() :].lstrip())
    if first.isupper() and (m := _SYSLOG.match(line)):
        month, day = _MONTHS[m["mon"]], int(m["d"])
        year = datetime.datetime.fromtimestamp(reference, tz).year
        ts = _epoch(year, month, day, m, tz)
        if ts is not None and ts > reference + 86400:
            ts = _epoch(year - 1, month, day, m, tz)  # last year's, in a file written in January
        return None if ts is None else (ts, line[m.end() :].lstrip())
    return None


def _epoch(
    year: int, month: int, day: int, m: re.Match[str], tz: datetime.tzinfo | None
) -> float | None:
    """Epoch seconds of a matched date and clock, or None when it is no real time."""
    groups = m.groupdict()
    frac = groups.get("frac") or ""
    zone = groups.get("tz")
    try:
        if zone:
            zone = zone.upper()
            if zone != "Z":
                sign = -1 if zone[0] == "-" else 1
                digits = zone[1:].replace(":", "")
                offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                tz = datetime.timezone(sign * offset)
            else:
                tz = datetime.UTC
        t = datetime.datetime(
            year, month, day, int(m["H"]), int(m["M"]), int(m["S"]),
            int(frac[:6].ljust(6, "0")), tzinfo=tz,
        )  # fmt: skip
        return round(t.timestamp(), 3)
    except (ValueError, OverflowError):
        return None


def severity_of(message: str) -> int | None:
    """The syslog severity of the level word ``message`` starts with, if any.

    >>> severity_of("WARN disk 91% full"), severity_of("[core:error] denied"), severity_of("Warm")
    (4, 3, None)
    """
    m = _LEVEL.match(message)
    if not m:
        return None
    return LEVELS.get(m["word"] or m["bracketed"].upper())


class _Pending:
    """The entry being assembled from a first line and its continuation lines."""

    def __init__(self, line_no: int, entry: dict[str, Any], first: str) -> None:
        self.line_no = line_no
        self.entry = entry
        self.parts: list[str] = []
        self.trace = ""  # "python" or "go" once the entry holds such a stack trace
        self.last_indented = False
        self.add(first)

    def add(self, line: str) -> None:
        if line.startswith("Traceback"):
            self.trace = "python"
        elif line.startswith("goroutine "):
            self.trace = "go"
        self.last_indented = line[:1].isspace()
        self.parts.append(line)

    def continued_by(self, line: str) -> bool:
        """Whether ``line`` continues this entry by its shape, whatever the file's style."""
        if not line or line[:1].isspace() or line.startswith(_TRACE_STARTS):
            return True
        return bool(_MORE.match(line))

    def in_trace(self, line: str) -> bool:
        """Whether an unstamped ``line`` is part of the stack trace this entry ends with."""
        if self.trace == "python" and self.last_indented:
            return True  # the exception line that ends a traceback
        return self.trace == "go" and bool(_GO_FRAME.match(line))

    def finish(self) -> tuple[int, dict[str, Any]]:
        while len(self.parts) > 1 and not self.parts[-1]:
            self.parts.pop()  # blank lines between entries belong to none
        self.entry["message"] = "\n".join(self.parts)
        return self.line_no, self.entry


def parse_lines(
    lines: Iterable[str],
    *,
    default_ts: float,
    host: str = "",
    app: str = "",
    tz: datetime.tzinfo | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Entries from a file's lines, each with the number of the line it starts on.

    ``lines`` may keep their line ends. ``default_ts`` is the time of lines
    before the first timestamp (the file's mtime); ``tz`` is the zone of
    timestamps without one (None: the local zone).
    """
    pending: _Pending | None = None
    timestamped = False  # the file's lines start with timestamps
    last_ts = default_ts
    for line_no, raw in enumerate(lines, 1):
        line = raw.rstrip("\n").removesuffix("\r")
        if line_no == 1:
            line = line.removeprefix("\ufeff")
        if line[:1] == "{" and isinstance(obj := _json_object(line), dict):
            if pending:
                yield pending.finish()
                pending = None
            if host:
                obj.setdefault("host", host)
            if app:
                obj.setdefault("app", app)
            last_ts = _entry_ts(obj.get("ts"), last_ts, tz)
            yield line_no, obj
            continue
        if pending and pending.continued_by(line):
            pending.add(line)
            continue
        stamped = parse_timestamp(line, default_ts, tz)
        if stamped is None and pending and (timestamped or pending.in_trace(line)):
            pending.add(line)
            continue
        if pending:
            yield pending.finish()
            pending = None
        if not line.strip():
            continue  # blank lines before any entry
        if stamped:
            timestamped = True
            last_ts, message = stamped
        else:
            message = line
        entry: dict[str, Any] = {"ts": last_ts, "kind": "line"}
        if host:
            entry["host"] = host
        if app:
            entry["app"] = app
        severity = severity_of(message)
        if severity is not None:
            entry["severity"] = severity
        pending = _Pending(line_no, entry, message)
    if pending:
        yield pending.finish()


def _json_object(line: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _entry_ts(ts: Any, last_ts: float, tz: datetime.tzinfo | None) -> float:
    """The time of a JSON entry, to date the lines after it; ``last_ts`` if it has none."""
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts)
    if isinstance(ts, str) and (stamped := parse_timestamp(ts, last_ts, tz)):
        return stamped[0]
    return last_ts


class LogFileError(ValueError):
    """A log file that cannot be read to its end, such as a truncated gzip file."""


@contextlib.contextmanager
def open_log(path: Path) -> Iterator[tuple[IO[bytes], Iterator[str]]]:
    """Open a plain or gzipped log file: the raw file (for progress) and its decoded lines.

    Gzip is recognised by its magic bytes, so rotated files work whatever
    their name. Lines end at ``\\n`` only (``\\r\\n`` is taken off whole);
    invalid UTF-8 becomes U+FFFD. A corrupt or truncated gzip stream raises
    ``LogFileError`` after the lines before the damage.
    """
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not gzipped:
            yield raw, (b.decode("utf-8", "replace") for b in raw)
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            yield raw, _gzip_lines(path, cast(IO[bytes], stream))


def _gzip_lines(path: Path, stream: IO[bytes]) -> Iterator[str]:
    try:
        for b in stream:
            yield b.decode("utf-8", "replace")
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise LogFileError(f"{path}: {e}; the lines before the damage were read") from None


def read_file(
    path: Path, *, host: str = "", app: str = "", tz: datetime.tzinfo | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The entries of a log file with the line each starts on; see ``parse_lines``."""
    mtime = path.stat().st_mtime
    with open_log(path) as (_raw, lines):
        yield from parse_lines(lines, default_ts=mtime, host=host, app=app, tz=tz)
