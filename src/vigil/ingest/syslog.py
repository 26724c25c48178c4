"""Syslog messages (RFC 5424 and RFC 3164) as a batch of ``line`` log entries.

Specs: https://www.rfc-editor.org/rfc/rfc5424 (the syslog protocol),
https://www.rfc-editor.org/rfc/rfc3164 (BSD syslog, what most devices still
send) and https://www.rfc-editor.org/rfc/rfc6587 (framing over TCP). The format
is detected per message: a ``1`` and a space right after ``<PRI>`` is RFC 5424.
How fields map to entries, and how bad input is repaired rather than rejected
(a syslog sender never hears of an error), is in docs/formats/eventlog.md.

Each format has one precompiled regex that takes a typical message apart in
a single match (on the text decoded once in C: as fast as a bytes regex, and
the fields come out as ``str`` without a decode each); timestamps are converted through per-batch caches keyed by
the second, and the Arrow columns are built from flat lists, because the
pipeline's goal is 200,000 entries/s on two cores.

>>> table, rejects = parse_syslog(
...     [b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed"], 1065910455000, LogRules()
... )
>>> row = table.to_pylist()[0]
>>> row["host"], row["app"], row["severity"], row["facility"], row["message"]
('mymachine', 'su', 2, 4, "'su root' failed")
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from vigil.ingest.logrules import LogRules
from vigil.ingest.syslog_fast import merge, split_fast
from vigil.model import LOGS_SCHEMA, Reject

EMPTY_MESSAGE = "empty syslog message"
# RFC 3164 section 4.3.3: a message without a valid PRI is taken as PRI 13
# (facility user, severity notice), the whole message its content.
DEFAULT_PRI = 13
MAX_PRI = 191
# Data keys the parser adds when it repairs a message (docs/formats/eventlog.md).
ORIG_TS = "orig_ts"
TRUNCATED = "truncated"
INVALID_UTF8 = "invalid_utf8"
# Batches smaller than this are parsed message by message: the fast path's
# fixed cost (a few dozen Arrow and numpy calls) would outweigh its gain.
FAST_PATH_MIN = 32

_MS_PER_DAY = 86_400_000
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
# Milliseconds of a fraction of a second by its first three digits ("5" is 500).
_FRACTION_MS = {
    f"{ms:0{width}d}": ms * 10 ** (3 - width) for width in (1, 2, 3) for ms in range(10**width)
}

# RFC 5424 section 6: PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG].
# The timestamp is split into its second (the cache key), fraction (its first
# three digits) and offset; one that is not RFC 3339 lands in group 5 and is
# kept as text.
# Structured data must be well formed to match; a message whose SD is not
# takes the slower path that keeps it as part of the message.
_RFC5424 = re.compile(
    r"<(\d{1,3})>1 "
    r"(?:(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,3})\d*)?(Z|[+-]\d\d:\d\d)|(\S+)) "
    r"(\S+) (\S+) (\S+) (\S+) "
    r"(-|(?:\[[^ \]\"=]+(?: [^ \]\"=]+=\"[^\"\\]*(?:\\.[^\"\\]*)*\")*\])+)"
    r"(?: (.*))?",
    re.ASCII | re.DOTALL,
)
# The header alone, for a message whose structured data is malformed.
_RFC5424_HEADER = re.compile(
    r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ?(.*)", re.ASCII | re.DOTALL
)
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,3})\d*)?(Z|[+-]\d\d:\d\d)", re.ASCII
)
# Structured data that matched above, as (SD-ID, "", "") at each element's
# start and ("", PARAM-NAME, PARAM-VALUE) for each parameter.
_SD_PART = re.compile(r"\[([^ \]\"=]+)| ([^ \]\"=]+)=\"([^\"\\]*(?:\\.[^\"\\]*)*)\"", re.DOTALL)
# RFC 5424 section 6.3.3: only '"', '\' and ']' are escaped; any other
# backslash is kept as it is.
_SD_ESCAPE = re.compile(r"\\([\"\\\]])")

# RFC 3164 section 4.1.2: PRI "Mmm dd hh:mm:ss" HOSTNAME, then TAG[pid]: and
# the content. Senders that leave out HOSTNAME are common; a token ending in
# ':' or ']' is a TAG, not a host name. A TAG must be followed by a space (or
# the end), so that "http://..." in a message without TAG stays whole.
_RFC3164 = re.compile(
    r"<(\d{1,3})>((?:" + "|".join(_MONTH_NAMES) + r") {1,2}\d{1,2} \d\d:\d\d:\d\d)"
    r"(?:\.(\d{1,3})\d{0,3})? "
    r"(?:(\S*[^\s:\]]) )?"
    r"(?:([^\s\[\]:]{1,48})(?:\[([^\]]*)\]:?|:)(?: |$))?"
    r"(.*)",
    re.ASCII | re.DOTALL,
)
_PRI = re.compile(r"<(\d{1,3})>")


def parse_syslog(
    messages: Sequence[bytes], now_ms: int, rules: LogRules
) -> tuple[pa.Table, list[Reject]]:
    """Syslog messages as a ``LOGS_SCHEMA`` batch of ``line`` entries (``uid`` 0), plus rejects.

    What ``parse_syslog_reference`` gives, faster: a batch of at least
    ``FAST_PATH_MIN`` messages goes through the vectorised fast path
    (``vigil.ingest.syslog_fast``), which leaves the messages it does not
    take to the reference parser and merges both back in batch order.
    """
    if len(messages) < FAST_PATH_MIN:
        return parse_syslog_reference(messages, now_ms, rules)
    return parse_syslog_vectorised(messages, now_ms, rules)


def parse_syslog_vectorised(
    messages: Sequence[bytes], now_ms: int, rules: LogRules
) -> tuple[pa.Table, list[Reject]]:
    """``parse_syslog`` through the fast path, whatever the batch size (for tests)."""
    lo, hi = rules.ts_window_ms(now_ms)
    try:
        split = split_fast(messages, now_ms, lo, hi, rules.max_entry_bytes)
    except (pa.ArrowException, TypeError, ValueError):
        return parse_syslog_reference(messages, now_ms, rules)
    slow, _ = parse_syslog_reference([messages[i] for i in split.slow], now_ms, rules)
    rejects = [Reject.of(EMPTY_MESSAGE, b"", split.empty)] if split.empty else []
    return merge(split, slow), rejects


def parse_syslog_reference(
    messages: Sequence[bytes], now_ms: int, rules: LogRules
) -> tuple[pa.Table, list[Reject]]:
    """Syslog messages parsed one by one: the reference the fast path agrees with.

    Each element is one message with its framing removed (a UDP datagram, or a
    frame cut by ``SyslogFramer``); trailing CR, LF and NUL bytes are ignored.
    Only empty messages are dropped; everything else becomes an entry, repaired
    as docs/formats/eventlog.md says: a timestamp outside the accepted window
    becomes ``now_ms`` (the text kept in ``data["orig_ts"]``), a message
    longer than ``rules.max_entry_bytes`` (header included) is cut at a UTF-8
    boundary before parsing (its length kept in ``data["truncated"]``), invalid UTF-8 is replaced by U+FFFD
    (marked by ``data["invalid_utf8"] = "replaced"`` so that it can be counted).
    A missing or unparseable timestamp is the receive time ``now_ms``; RFC 3164
    timestamps have no zone and are taken as UTC, in the year that puts them
    closest to ``now_ms``.
    """
    lo, hi = rules.ts_window_ms(now_ms)
    max_bytes = rules.max_entry_bytes
    ts: list[int] = []
    host: list[str] = []
    app: list[str] = []
    severity: list[int] = []
    facility: list[int] = []
    message: list[str] = []
    offsets: list[int] = [0]
    keys: list[str] = []
    values: list[str] = []
    # Per-batch caches: a batch's timestamps share a few seconds and offsets.
    seconds_5424: dict[str, int | None] = {}
    seconds_3164: dict[str, int | None] = {}
    offset_ms: dict[str, int] = {"Z": 0}
    empty: list[bytes] = []
    match_5424 = _RFC5424.fullmatch
    match_3164 = _RFC3164.fullmatch

    for raw in messages:
        raw = raw.rstrip(b"\r\n\x00")
        if not raw:
            empty.append(raw)
            continue
        size = len(raw)
        cut = size > max_bytes
        if cut:
            raw = _cut_utf8(raw, max_bytes)
        try:
            text = raw.decode()
            replaced = False
        except UnicodeDecodeError:
            text, grew = _decode_replacing(raw, max_bytes)
            cut = cut or grew
            replaced = True
        t: int | None = None
        orig = ""
        m = match_5424(text)
        if m is not None:
            pri, second, frac, off, other, h, a, procid, msgid, sd, msg = m.groups()
            p = int(pri)
            if p > MAX_PRI:
                _add_whole(text, severity, facility, host, app, message)
            else:
                severity.append(p & 7)
                facility.append(p >> 3)
                host.append("" if h == "-" else h)
                app.append("" if a == "-" else a)
                if msg is None:
                    message.append("")
                else:
                    message.append(msg[1:] if msg.startswith("\ufeff") else msg)
                if second is not None:
                    # -1 marks a miss: a valid second is a multiple of 1000.
                    t = seconds_5424.get(second, -1)
                    if t == -1:
                        t = seconds_5424[second] = _second_5424(second)
                    if t is not None:
                        if frac:
                            t += _FRACTION_MS[frac]
                        if off != "Z":
                            shift = offset_ms.get(off)
                            if shift is None:
                                shift = offset_ms[off] = _offset_ms(off)
                            t -= shift
                    if t is None or not lo <= t <= hi:
                        orig = text[m.start(2) : m.end(4)]
                elif other != "-":
                    orig = other
                _add_ids(procid, msgid, keys, values)
                if sd != "-":
                    _add_structured_data(sd, keys, values)
        else:
            m = match_3164(text)
            p = int(m.group(1)) if m is not None else MAX_PRI + 1
            if m is None or p > MAX_PRI:
                t, orig = _add_other(text, severity, facility, host, app, message, keys, values)
            else:
                _, second, frac, h, tag, pid, msg = m.groups()
                severity.append(p & 7)
                facility.append(p >> 3)
                host.append(h or "")
                app.append(tag or "")
                message.append(msg)
                t = seconds_3164.get(second, -1)
                if t == -1:
                    t = seconds_3164[second] = _second_3164(second, now_ms)
                if t is not None and frac:
                    t += _FRACTION_MS[frac]
                if t is None or not lo <= t <= hi:
                    orig = text[m.start(2) : m.end(3) if frac else m.end(2)]
                if pid:
                    keys.append("procid")
                    values.append(pid)
        if orig:
            keys.append(ORIG_TS)
            values.append(orig)
        ts.append(now_ms if orig or t is None else t)
        if cut:
            keys.append(TRUNCATED)
            values.append(str(size))
        if replaced:
            keys.append(INVALID_UTF8)
            values.append("replaced")
        offsets.append(len(keys))

    rejects = [Reject.of(EMPTY_MESSAGE, empty[0], len(empty))] if empty else []
    return _table(ts, host, app, severity, facility, message, offsets, keys, values), rejects


def _add_whole(
    text: str,
    severity: list[int],
    facility: list[int],
    host: list[str],
    app: list[str],
    message: list[str],
) -> None:
    """A message without a usable PRI: all of it is content (RFC 3164 section 4.3.3)."""
    severity.append(DEFAULT_PRI & 7)
    facility.append(DEFAULT_PRI >> 3)
    host.append("")
    app.append("")
    message.append(text)


def _add_other(
    text: str,
    severity: list[int],
    facility: list[int],
    host: list[str],
    app: list[str],
    message: list[str],
    keys: list[str],
    values: list[str],
) -> tuple[int | None, str]:
    """A message the fast regexes did not take; returns its timestamp and original timestamp text.

    An RFC 5424 header with malformed structured data keeps the rest as the
    message; a valid PRI with no header we know makes the rest of the message
    the content (RFC 3164 section 4.3.2); anything else is all content.
    """
    m = _PRI.match(text)
    if m is None or int(m.group(1)) > MAX_PRI:
        _add_whole(text, severity, facility, host, app, message)
        return None, ""
    p = int(m.group(1))
    severity.append(p & 7)
    facility.append(p >> 3)
    header = _RFC5424_HEADER.fullmatch(text)
    if header is None:
        host.append("")
        app.append("")
        message.append(text[m.end() :])
        return None, ""
    _, stamp, h, a, procid, msgid, rest = header.groups()
    host.append("" if h == "-" else h)
    app.append("" if a == "-" else a)
    message.append(rest)
    _add_ids(procid, msgid, keys, values)
    if stamp == "-":
        return None, ""
    t = _rfc3339_ms(stamp)
    return t, stamp if t is None else ""


def _add_ids(procid: str, msgid: str, keys: list[str], values: list[str]) -> None:
    """RFC 5424's PROCID and MSGID as data keys, unless nil (``-``)."""
    for key, value in (("procid", procid), ("msgid", msgid)):
        if value != "-":
            keys.append(key)
            values.append(value)


def _add_structured_data(sd: str, keys: list[str], values: list[str]) -> None:
    """RFC 5424 structured data as ``SD-ID.PARAM`` keys; a repeated key keeps its last value.

    ``[exampleSDID@32473 iut="3" eventSource="Application"]`` becomes
    ``exampleSDID@32473.iut = 3`` and ``exampleSDID@32473.eventSource = Application``.
    """
    found: dict[str, str] = {}
    prefix = ""
    for sd_id, name, value in _SD_PART.findall(sd):
        if sd_id:
            prefix = sd_id + "."
        else:
            found[prefix + name] = _SD_ESCAPE.sub(r"\1", value) if "\\" in value else value
    keys.extend(found)
    values.extend(found.values())


def _second_5424(second: str) -> int | None:
    """``YYYY-MM-DDThh:mm:ss`` in epoch ms (UTC), or None when it is no valid time."""
    try:
        day = datetime.date(int(second[0:4]), int(second[5:7]), int(second[8:10]))
    except ValueError:
        return None
    clock = _clock_ms(second[11:])
    return None if clock is None else _day_ms(day) + clock


def _second_3164(second: str, now_ms: int) -> int | None:
    """``Mmm dd hh:mm:ss`` in epoch ms (UTC): the latest such time at most a day after ``now_ms``.

    RFC 3164 timestamps carry neither year nor zone. Logs tell of the past, so
    the year is the one that makes the time most recent without being more
    than a day ahead (clock skew): ``Dec 31`` received on January 1st belongs
    to the year before, ``Feb 5`` received in October to the same year.
    """
    month = _MONTHS[second[:3]]
    day_text, clock_text = second[4:].split()
    clock = _clock_ms(clock_text)
    if clock is None:
        return None
    year = datetime.datetime.fromtimestamp(now_ms / 1000, datetime.UTC).year
    for candidate in (year + 1, year, year - 1):
        try:
            day = datetime.date(candidate, month, int(day_text))
        except ValueError:
            continue  # Feb 29 outside a leap year, or Apr 31
        t = _day_ms(day) + clock
        if t <= now_ms + _MS_PER_DAY:
            return t
    return None


def _clock_ms(clock: str) -> int | None:
    """``hh:mm:ss`` in ms since midnight, or None when out of range.

    A leap second (``:60``) is accepted as the first ms of the next minute.
    """
    hour, mins, secs = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])
    if hour > 23 or mins > 59 or secs > 60:
        return None
    return hour * 3_600_000 + mins * 60_000 + secs * 1000


def _rfc3339_ms(stamp: str) -> int | None:
    """An RFC 3339 timestamp (RFC 5424 section 6.2.3) in epoch ms, or None."""
    m = _RFC3339.fullmatch(stamp)
    if m is None:
        return None
    second, frac, off = m.groups()
    t = _second_5424(second)
    if t is None:
        return None
    return t + (_FRACTION_MS[frac] if frac else 0) - _offset_ms(off)


def _offset_ms(offset: str) -> int:
    """A time offset (``Z``, ``+02:00``, ``-07:00``) in ms east of UTC."""
    if offset == "Z":
        return 0
    ms = int(offset[1:3]) * 3_600_000 + int(offset[4:6]) * 60_000
    return -ms if offset[0] == "-" else ms


def _day_ms(day: datetime.date) -> int:
    return (day.toordinal() - 719_163) * _MS_PER_DAY  # 719163: ordinal of 1970-01-01


def _decode_replacing(raw: bytes, limit: int) -> tuple[str, bool]:
    """Invalid UTF-8 decoded with U+FFFD, and whether it had to be cut to stay within ``limit``.

    U+FFFD takes three bytes where the bad byte took one, so the text can
    outgrow the limit the raw message kept.
    """
    text = raw.decode("utf-8", "replace")
    if len(raw) * 3 <= limit:
        return text, False
    encoded = text.encode()
    if len(encoded) <= limit:
        return text, False
    return _cut_utf8(encoded, limit).decode(), True


def _cut_utf8(raw: bytes, limit: int) -> bytes:
    """The longest prefix of ``raw`` of at most ``limit`` bytes that does not split a UTF-8 character."""
    end = limit
    # Back off over continuation bytes (10xxxxxx) to the start of the character
    # that straddles the limit; at most 3, so invalid input cannot loop long.
    while end > limit - 3 and end > 0 and raw[end] & 0xC0 == 0x80:
        end -= 1
    return raw[:end]


def _table(
    ts: list[int],
    host: list[str],
    app: list[str],
    severity: list[int],
    facility: list[int],
    message: list[str],
    offsets: list[int],
    keys: list[str],
    values: list[str],
) -> pa.Table:
    n = len(ts)
    blank = pa.repeat("", n).cast(pa.string())
    zeros = np.zeros(n, dtype=np.int64)
    columns = {
        "ts": pa.array(ts, pa.timestamp("ms")),
        "uid": pa.array(zeros.astype(np.uint64)),
        "kind": pa.repeat("line", n).cast(pa.string()),
        "host": pa.array(host, pa.string()),
        "cluster": blank,
        "dc": blank,
        "app": pa.array(app, pa.string()),
        "type": blank,
        "name": blank,
        "status": pa.array(zeros.astype(np.int32)),
        "duration_ms": pa.array(zeros.astype(np.float64)),
        "id": blank,
        "parent": blank,
        "severity": pa.array(severity, pa.int8()),
        "facility": pa.array(facility, pa.int8()),
        "message": pa.array(message, pa.string()),
        "data": pa.MapArray.from_arrays(
            pa.array(offsets, pa.int32()),
            pa.array(keys, pa.string()),
            pa.array(values, pa.string()),
            type=LOGS_SCHEMA.field("data").type,
        ),
    }
    return pa.Table.from_arrays(list(columns.values()), schema=LOGS_SCHEMA)
