"""The vectorised fast path of ``parse_syslog``: typical messages a whole batch at a time.

The per-message parser in ``vigil.ingest.syslog`` is the reference; this
module takes only the messages whose parse it can reproduce exactly and
leaves every other one to it (a property test holds the two to the same
tables). What it takes is decided by two RE2 patterns run by Arrow (C++,
without the GIL, as a DFA that only says yes or no):

* RFC 5424 with nil structured data:
  ``<34>1 2003-10-11T22:14:15.003Z host app procid msgid - message``
  (the timestamp may also be ``-``);
* RFC 3164 with a host name and a tag:
  ``<13>Oct 11 22:14:15 host sshd[4242]: message`` (or ``tag:``).

Within those shapes every field lies between known separators, so the
fields are found with numpy on the batch's one UTF-8 buffer (the positions
of its spaces, a few bytes at fixed distances) and cut out with one Arrow
``take`` per column; timestamps are computed from their digits. Messages
that are over-long, not UTF-8, with a bad PRI, or whose time is invalid or
outside the window are left to the reference parser, which repairs them.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.model import LOGS_SCHEMA

Ints = np.ndarray[Any, np.dtype[np.int64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]

_MS_PER_DAY = 86_400_000
_MAX_PRI = 191
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Month names as 24-bit keys, sorted, and the month number of each.
_MONTH_KEYS = np.array(
    sorted(int.from_bytes(name.encode(), "big") for name in _MONTH_NAMES), np.int64
)
_MONTH_OF_KEY = np.array(
    [_MONTH_NAMES.index(int(key).to_bytes(3, "big").decode()) + 1 for key in _MONTH_KEYS],
    np.int64,
)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)
_SPACE, _DASH, _DOT, _COLON, _GT, _LB, _RB, _ZULU = b" -.:>[]Z"

# Python's ASCII ``\S`` (RE2's ``\S`` leaves out ``\v``).
_TOKEN = r"[^ \t\n\r\f\v]"
# The shapes the fast path takes. They are the reference parser's patterns
# narrowed so that every field is delimited by a space: nil structured data
# for RFC 5424; for RFC 3164 a host name (a token not ending in ':' or ']',
# which the reference takes as the host), then a tag with an optional numeric
# pid, then a space or the end.
_RFC5424 = (
    r"\A<\d{1,3}>1 (?:-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
    rf"{_TOKEN}+ {_TOKEN}+ {_TOKEN}+ {_TOKEN}+ -(?: |\z)"
)
_RFC3164 = (
    rf"\A<\d{{1,3}}>(?:{'|'.join(_MONTH_NAMES)}) {{1,2}}\d{{1,2}} \d\d:\d\d:\d\d(?:\.\d{{1,6}})? "
    rf"{_TOKEN}*[^ \t\n\r\f\v:\]] "
    r"[^ \t\n\r\f\v\[\]:]{1,48}(?:\[\d{0,10}\]:?|:)(?: |\z)"
)
# Well-formed UTF-8 as Python's strict decoder has it (no overlong forms, no
# surrogates, nothing above U+10FFFF), for a binary array (RE2 in Latin-1 mode).
_UTF8 = (
    r"\A(?:[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    r"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    r"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*\z"
)
_KEYS = pa.array(["procid", "msgid"], pa.string())


@dataclasses.dataclass(frozen=True)
class FastSplit:
    """A batch split between the fast path and the reference parser.

    ``entries`` are the fast path's entries, in batch order; ``slow`` the
    indices of the messages left to the reference parser (each non-empty),
    ``taken`` those of the entries; ``empty`` counts the empty messages.
    """

    entries: pa.Table
    taken: Ints
    slow: Ints
    empty: int


def split_fast(
    messages: Sequence[bytes], now_ms: int, lo: int, hi: int, max_bytes: int
) -> FastSplit:
    """Parse the typical messages of a batch; say which ones are left to the reference parser.

    ``lo`` and ``hi`` are the accepted time window (inclusive), ``max_bytes``
    the length above which a message is cut (which the fast path leaves alone).
    """
    raw = pa.array(messages, pa.binary())
    try:
        text = raw.cast(pa.string())
        valid: Mask | None = None
    except pa.ArrowInvalid:
        utf8 = pc.match_substring_regex(raw, _UTF8)
        valid = np.asarray(utf8, dtype=bool)
        text = pc.if_else(utf8, raw, pa.scalar(None, pa.binary())).cast(pa.string())
    text = pc.utf8_rtrim(text, characters="\r\n\x00")
    n = len(text)
    starts, ends, data = _layout(text)
    size = ends - starts
    usable = (size > 0) & (size <= max_bytes)
    empty = size == 0
    if valid is not None:
        usable &= valid
        empty &= valid
    buf = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    spaces = np.flatnonzero(buf == _SPACE)

    rows5 = np.flatnonzero(usable & _matches(text, _RFC5424))
    rows3 = np.flatnonzero(usable & _matches(text, _RFC3164))
    f5 = _Fields.of_5424(buf, spaces, starts[rows5], ends[rows5], now_ms, lo, hi)
    f3 = _Fields.of_3164(buf, spaces, starts[rows3], ends[rows3], now_ms, lo, hi)

    fast = np.zeros(n, dtype=bool)
    fast[rows5[f5.ok]] = True
    fast[rows3[f3.ok]] = True
    taken = np.flatnonzero(fast)
    # Scatter both formats' fields into batch order (an entry's fields lie in
    # its message, so the positions grow with the index, as _cut needs).
    merged = _Fields.empty(n)
    merged.put(rows5, f5)
    merged.put(rows3, f3)
    entries = merged.take(taken).table(data)
    slow = np.flatnonzero(~fast & ~empty)
    return FastSplit(entries, taken, slow, int(empty.sum()))


def merge(split: FastSplit, slow_entries: pa.Table) -> pa.Table:
    """The fast and the reference entries interleaved back into batch order."""
    if not len(split.slow):
        return split.entries
    if not len(split.taken):
        return slow_entries
    kept = np.concatenate((split.taken, split.slow))
    order = np.argsort(kept, kind="stable")
    return pa.concat_tables([split.entries, slow_entries]).take(pa.array(order)).combine_chunks()


def _layout(text: pa.Array) -> tuple[Ints, Ints, pa.Buffer | None]:
    """Each string's start and end in the array's data buffer, and that buffer."""
    _, offsets_buf, data = text.buffers()
    assert offsets_buf is not None
    window = np.frombuffer(offsets_buf, np.int32)[text.offset : text.offset + len(text) + 1]
    offsets: Ints = window.astype(np.int64)
    return offsets[:-1], offsets[1:], data


def _matches(text: pa.Array, pattern: str) -> Mask:
    return np.asarray(pc.fill_null(pc.match_substring_regex(text, pattern), False), dtype=bool)


@dataclasses.dataclass
class _Fields:
    """Entries as positions in the data buffer (``[start, end)`` per field) and numbers."""

    ok: Mask
    ts: Ints
    pri: Ints
    bounds: dict[str, tuple[Ints, Ints]]
    # procid and msgid: whether present.
    has: dict[str, Mask]

    @classmethod
    def empty(cls, n: int) -> _Fields:
        zeros = np.zeros(n, np.int64)
        names = ("host", "app", "message", "procid", "msgid")
        return cls(
            np.zeros(n, dtype=bool),
            zeros.copy(),
            zeros.copy(),
            {name: (zeros.copy(), zeros.copy()) for name in names},
            {name: np.zeros(n, dtype=bool) for name in ("procid", "msgid")},
        )

    def put(self, rows: Ints, other: _Fields) -> None:
        self.ok[rows] = other.ok
        self.ts[rows] = other.ts
        self.pri[rows] = other.pri
        for name, (start, end) in other.bounds.items():
            self.bounds[name][0][rows] = start
            self.bounds[name][1][rows] = end
        for name, mask in other.has.items():
            self.has[name][rows] = mask

    def take(self, rows: Ints) -> _Fields:
        return _Fields(
            self.ok[rows],
            self.ts[rows],
            self.pri[rows],
            {name: (start[rows], end[rows]) for name, (start, end) in self.bounds.items()},
            {name: mask[rows] for name, mask in self.has.items()},
        )

    @classmethod
    def of_5424(
        cls, buf: Any, spaces: Ints, start: Ints, end: Ints, now_ms: int, lo: int, hi: int
    ) -> _Fields:
        """RFC 5424 messages of the fast shape: ``<PRI>1 STAMP HOST APP PROCID MSGID - MSG``."""
        if not len(start):
            return cls.empty(0)
        gt, pri = _pri(buf, start)
        stamp = gt + 3
        first = np.searchsorted(spaces, stamp)
        sp = [spaces[first + k] for k in range(5)]
        nil = sp[0] - stamp == 1
        t = _rfc3339_ms(buf, stamp, sp[0], ~nil)
        in_window = (t >= lo) & (t <= hi)
        ok = (pri <= _MAX_PRI) & (nil | in_window)
        ts = np.where(nil, now_ms, t)
        # The message follows "- " after MSGID, without one leading BOM.
        msg = np.minimum(sp[4] + 3, end)
        bom = (msg + 3 <= end) & _bytes_at(buf, msg, b"\xef\xbb\xbf")
        msg = np.where(bom, msg + 3, msg)
        fields = {
            "host": (sp[0] + 1, sp[1]),
            "app": (sp[1] + 1, sp[2]),
            "procid": (sp[2] + 1, sp[3]),
            "msgid": (sp[3] + 1, sp[4]),
        }
        nils = {name: (b - a == 1) & (buf[a] == _DASH) for name, (a, b) in fields.items()}
        bounds = {name: (a, np.where(nils[name], a, b)) for name, (a, b) in fields.items()}
        bounds["message"] = (msg, end)
        has = {"procid": ~nils["procid"], "msgid": ~nils["msgid"]}
        return cls(ok, ts, pri, bounds, has)

    @classmethod
    def of_3164(
        cls, buf: Any, spaces: Ints, start: Ints, end: Ints, now_ms: int, lo: int, hi: int
    ) -> _Fields:
        """RFC 3164 messages of the fast shape: ``<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG``."""
        if not len(start):
            return cls.empty(0)
        gt, pri = _pri(buf, start)
        key = (
            (buf[gt + 1].astype(np.int64) << 16) | (buf[gt + 2].astype(np.int64) << 8) | buf[gt + 3]
        )
        month = _MONTH_OF_KEY[np.searchsorted(_MONTH_KEYS, key)]
        # "Oct 11", "Oct 1", "Oct  1" (and "Oct  11"): one or two spaces, one or two digits.
        day_at = np.where(buf[gt + 5] == _SPACE, gt + 6, gt + 5)
        two = _is_digit(buf[day_at + 1])
        day = np.where(two, _digits(buf, day_at, 2), _digits(buf, day_at, 1))
        clock_at = np.where(two, day_at + 3, day_at + 2)
        clock, clock_ok = _clock_ms(buf, clock_at)
        # The first space after the clock (or its fraction) ends the timestamp.
        first = np.searchsorted(spaces, clock_at + 8)
        last = len(spaces) - 1
        host_at = spaces[np.minimum(first, last)] + 1
        host_end = spaces[np.minimum(first + 1, last)]
        third = np.minimum(first + 2, last)
        tag_end = np.where((first + 2 <= last) & (spaces[third] < end), spaces[third], end)
        frac = _fraction_ms(buf, clock_at + 8, host_at - 1)

        year = datetime.datetime.fromtimestamp(now_ms / 1000, datetime.UTC).year
        t = np.zeros(len(start), np.int64)
        found = np.zeros(len(start), dtype=bool)
        for candidate in (year + 1, year, year - 1):
            days, valid = _days(np.full(len(start), candidate, np.int64), month, day)
            t_year = days * _MS_PER_DAY + clock
            fits = valid & clock_ok & (t_year <= now_ms + _MS_PER_DAY) & ~found
            t = np.where(fits, t_year, t)
            found |= fits
        t += frac
        ok = (pri <= _MAX_PRI) & found & (t >= lo) & (t <= hi)

        # TAG:, TAG[PID] or TAG[PID]: (PID digits only, up to ten).
        colon = buf[tag_end - 1] == _COLON
        rb = np.where(colon, tag_end - 2, tag_end - 1)
        bracket = buf[rb] == _RB
        lb = rb.copy()
        for _ in range(11):
            lb = np.where(bracket & (buf[lb] != _LB), lb - 1, lb)
        tag_stop = np.where(bracket, lb, tag_end - 1)
        msg = np.minimum(tag_end + 1, end)
        bounds = {
            "host": (host_at, host_end),
            "app": (host_end + 1, tag_stop),
            "procid": (np.where(bracket, lb + 1, tag_stop), np.where(bracket, rb, tag_stop)),
            "msgid": (tag_stop, tag_stop),
            "message": (msg, end),
        }
        has = {"procid": bracket & (rb > lb + 1), "msgid": np.zeros(len(start), dtype=bool)}
        return cls(ok, t, pri, bounds, has)

    def table(self, data: pa.Buffer | None) -> pa.Table:
        """The entries as a ``LOGS_SCHEMA`` table; ``data`` is the buffer the positions are in."""
        n = len(self.ts)
        blank = pa.repeat("", n).cast(pa.string())
        zeros = np.zeros(n, dtype=np.int64)
        # The map's entries row by row, procid before msgid, as the reference adds them.
        has = np.stack([self.has["procid"], self.has["msgid"]], axis=1)
        value_start = np.stack([self.bounds["procid"][0], self.bounds["msgid"][0]], axis=1)[has]
        value_end = np.stack([self.bounds["procid"][1], self.bounds["msgid"][1]], axis=1)[has]
        key_index = np.nonzero(has)[1]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(has.sum(axis=1), out=offsets[1:])
        columns = {
            "ts": pa.array(self.ts, pa.int64()).view(pa.timestamp("ms")),
            "uid": pa.array(zeros.astype(np.uint64)),
            "kind": pa.repeat("line", n).cast(pa.string()),
            "host": _cut(data, *self.bounds["host"]),
            "cluster": blank,
            "dc": blank,
            "app": _cut(data, *self.bounds["app"]),
            "type": blank,
            "name": blank,
            "status": pa.array(zeros.astype(np.int32)),
            "duration_ms": pa.array(zeros.astype(np.float64)),
            "id": blank,
            "parent": blank,
            "severity": pa.array((self.pri & 7).astype(np.int8)),
            "facility": pa.array((self.pri >> 3).astype(np.int8)),
            "message": _cut(data, *self.bounds["message"]),
            "data": pa.MapArray.from_arrays(
                pa.array(offsets),
                _KEYS.take(pa.array(key_index)),
                _cut(data, value_start, value_end),
                type=LOGS_SCHEMA.field("data").type,
            ),
        }
        return pa.Table.from_arrays(list(columns.values()), schema=LOGS_SCHEMA)


def _cut(data: pa.Buffer | None, start: Ints, end: Ints) -> pa.Array:
    """The strings ``data[start[i]:end[i]]``, for ranges in increasing order and not overlapping.

    Zero-copy, the ranges and the gaps between them are one string array;
    ``take`` keeps the ranges.
    """
    k = len(start)
    if k == 0 or data is None:
        return pa.array([""] * k, pa.string())
    bounds = np.empty(2 * k, np.int32)
    bounds[0::2] = start
    bounds[1::2] = end
    spans = pa.StringArray.from_buffers(2 * k - 1, pa.py_buffer(bounds), data)
    return spans.take(pa.array(np.arange(0, 2 * k, 2)))


def _pri(buf: Any, start: Ints) -> tuple[Ints, Ints]:
    """The position of the ``>`` closing ``<PRI>`` (1 to 3 digits), and PRI."""
    gt = np.where(
        buf[start + 2] == _GT, start + 2, np.where(buf[start + 3] == _GT, start + 3, start + 4)
    )
    width = gt - start - 1
    pri = _digits(buf, start + 1, 1)
    pri = np.where(width >= 2, pri * 10 + _digits(buf, start + 2, 1), pri)
    pri = np.where(width >= 3, pri * 10 + _digits(buf, start + 3, 1), pri)
    return gt, pri


def _rfc3339_ms(buf: Any, at: Ints, stop: Ints, use: Mask) -> Ints:
    """``YYYY-MM-DDThh:mm:ss[.fff…](Z|±hh:mm)`` at ``at`` (ending at ``stop``) in epoch ms.

    Rows not in ``use``, or whose time is no valid time, get -2**62 (outside any window).
    """
    invalid = np.int64(-(2**62))
    t = np.full(len(at), invalid, np.int64)
    rows = np.flatnonzero(use)
    if not len(rows):
        return t
    a, b = at[rows], stop[rows]
    days, valid = _days(_digits(buf, a, 4), _digits(buf, a + 5, 2), _digits(buf, a + 8, 2))
    clock, clock_ok = _clock_ms(buf, a + 11)
    zulu = buf[b - 1] == _ZULU
    offset = _digits(buf, b - 5, 2) * 3_600_000 + _digits(buf, b - 2, 2) * 60_000
    offset = np.where(zulu, 0, np.where(buf[b - 6] == _DASH, -offset, offset))
    frac = _fraction_ms(buf, a + 19, np.where(zulu, b - 1, b - 6))
    t[rows] = np.where(valid & clock_ok, days * _MS_PER_DAY + clock + frac - offset, invalid)
    return t


def _fraction_ms(buf: Any, at: Ints, stop: Ints) -> Ints:
    """Milliseconds of an optional ``.digits`` at ``at`` ending at ``stop``, by its first 3 digits."""
    dot = (at < stop) & (buf[np.minimum(at, len(buf) - 1)] == _DOT)
    width = np.where(dot, np.minimum(stop - at - 1, 3), 0)
    ms = np.zeros(len(at), np.int64)
    for k, scale in enumerate((100, 10, 1)):
        has = width > k
        pos = np.where(has, at + 1 + k, 0)
        ms += np.where(has, (buf[pos].astype(np.int64) - 48) * scale, 0)
    return ms


def _clock_ms(buf: Any, at: Ints) -> tuple[Ints, Mask]:
    """``hh:mm:ss`` in ms since midnight, and whether it is in range (``:60`` allowed)."""
    hour, mins, secs = _digits(buf, at, 2), _digits(buf, at + 3, 2), _digits(buf, at + 6, 2)
    ok = (hour <= 23) & (mins <= 59) & (secs <= 60)
    return hour * 3_600_000 + mins * 60_000 + secs * 1000, ok


def _days(year: Ints, month: Ints, day: Ints) -> tuple[Ints, Mask]:
    """Days since 1970-01-01 of a proleptic Gregorian date, and whether it exists (years 1-9999).

    The day count is Howard Hinnant's ``days_from_civil``.
    """
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    length = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    valid = month_ok & (day >= 1) & (day <= length) & (year >= 1) & (year <= 9999)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468, valid


def _digits(buf: Any, at: Ints, width: int) -> Ints:
    """The decimal number of ``width`` ASCII digits at each position."""
    value = np.zeros(len(at), np.int64)
    for k in range(width):
        value = value * 10 + (buf[at + k].astype(np.int64) - 48)
    return value


def _is_digit(byte: Any) -> Mask:
    return np.asarray((byte >= 48) & (byte <= 57), dtype=bool)


def _bytes_at(buf: Any, at: Ints, pattern: bytes) -> Mask:
    """Whether ``pattern`` starts at each position (positions past the buffer are no match)."""
    match = np.ones(len(at), dtype=bool)
    for k, byte in enumerate(pattern):
        pos = at + k
        inside = pos < len(buf)
        match &= inside & (buf[np.where(inside, pos, 0)] == byte)
    return match
