"""Graphite's time syntax for ``from``/``until``/``now`` and for interval arguments.

Follows graphite-web's ``webapp/graphite/render/attime.py`` (documented at
https://graphite.readthedocs.io/en/latest/render_api.html#from-until), so that
URLs written for Graphite mean the same instants here:

- relative offsets ``-1h``, ``-10min``, ``-2d``, ``now-1w``, compounds such as
  ``-1h30min`` (``mon`` is 30 days and ``y`` 365 days, as in graphite-web);
- references ``now``, ``today``, ``yesterday``, ``tomorrow``, ``midnight``,
  ``noon``, ``teatime`` (16:00), times of day ``14:30`` / ``2pm``, dates
  ``YYYYMMDD``, ``MM/DD/YY[YY]``, ``jan15``, weekday names, joined as in
  ``HH:MM_YYYYMMDD`` and followed by an optional offset (``midnight+1h``);
- epoch seconds, with or without a fraction.

Everything is computed in one time zone (UTC unless the request names one);
an offset is added in absolute seconds, as pytz's ``normalize`` does in
graphite-web.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from vigil.query.errors import RenderError

UTC = dt.UTC

_UNIT_SECONDS: dict[str, int] = {
    name: seconds
    for names, seconds in (
        (("s", "sec", "secs", "second", "seconds"), 1),
        (("min", "mins", "minute", "minutes"), 60),
        (("h", "hour", "hours"), 3600),
        (("d", "day", "days"), 86400),
        (("w", "week", "weeks"), 7 * 86400),
        (("mon", "month", "months"), 30 * 86400),
        (("y", "year", "years"), 365 * 86400),
    )
    for name in names
}
_OFFSET_TERM = re.compile(r"(\d+)([a-z]+)")
_EPOCH = re.compile(r"\d+(\.\d*)?\Z")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME_EXAMPLES = (
    "e.g. '-1h', 'now-30min', 'midnight+8h', '14:30_20240131', '20240131' or epoch seconds"
)


def parse_timezone(name: str) -> dt.tzinfo:
    """The zone for a ``tz`` request parameter, refusing unknown names with a hint."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise RenderError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None


def parse_interval(value: str) -> int:
    """Seconds in a Graphite interval such as ``"1h"``, ``"5min"`` or ``"-1d"``; the sign is kept.

    Interval arguments of render functions (``summarize``, ``timeShift``,
    ``movingAverage`` ...) use it, as graphite-web's ``parseTimeOffset``.

    >>> parse_interval("-1h30min")
    -5400
    """
    text = value.strip().lower().replace(" ", "")
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if not text:
        raise RenderError(f"bad interval {value!r}: {_interval_hint()}")
    total = 0
    pos = 0
    while pos < len(text):
        term = _OFFSET_TERM.match(text, pos)
        if term is None:
            raise RenderError(f"bad interval {value!r}: {_interval_hint()}")
        unit = term.group(2)
        if unit not in _UNIT_SECONDS:
            raise RenderError(f"bad interval {value!r}: unknown unit {unit!r}; {_interval_hint()}")
        total += int(term.group(1)) * _UNIT_SECONDS[unit]
        pos = term.end()
    return sign * total


def _interval_hint() -> str:
    return (
        "write a count and a unit such as '1h', '-10min', '30s' or '2d' "
        "(units s, min, h, d, w, mon, y)"
    )


def parse_time(value: str, now: int, tz: dt.tzinfo = UTC) -> int:
    """Epoch seconds for a ``from``/``until`` value, relative to ``now`` in zone ``tz``.

    >>> parse_time("midnight+1h", now=1_700_000_000)
    1699923600
    """
    text = value.strip().lower().replace("_", "").replace(",", "").replace(" ", "")
    if not text:
        raise RenderError(f"bad time {value!r}: it is empty; {_TIME_EXAMPLES}")
    if _EPOCH.match(text) and not _is_yyyymmdd(text):
        return int(float(text))
    if "+" in text:
        ref, offset = text.split("+", 1)
        offset = "+" + offset
    elif "-" in text:
        ref, offset = text.split("-", 1)
        offset = "-" + offset
    else:
        ref, offset = text, ""
    try:
        base = _reference(ref, now, tz)
        shift = parse_interval(offset) if offset else 0
    except (RenderError, ValueError, OverflowError) as err:
        raise RenderError(f"bad time {value!r}: {_reason(err)}; {_TIME_EXAMPLES}") from None
    return base + shift


def _reason(err: Exception) -> str:
    text = str(err)
    if text.startswith("bad interval"):
        return "the offset after the reference is not an interval"
    return text


def _is_yyyymmdd(text: str) -> bool:
    return (
        len(text) == 8
        and text.isdigit()
        and int(text[:4]) > 1900
        and int(text[4:6]) < 13
        and int(text[6:]) < 32
    )


def _reference(ref: str, now: int, tz: dt.tzinfo) -> int:
    """The instant named by the part before the offset (graphite-web's ``parseTimeReference``)."""
    if not ref or ref == "now":
        return now
    hour = minute = 0
    colon = ref.find(":")
    if 0 < colon < 3:
        if not (ref[:colon].isdigit() and ref[colon + 1 : colon + 3].isdigit()):
            raise ValueError(f"{ref!r} is not a time of day such as 14:30")
        hour = int(ref[:colon])
        minute = int(ref[colon + 1 : colon + 3])
        ref = ref[colon + 3 :]
        if ref[:2] == "am":
            ref = ref[2:]
        elif ref[:2] == "pm":
            hour = (hour + 12) % 24
            ref = ref[2:]
    meridiem = ref.find("am")
    if 0 < meridiem < 3 and ref[:meridiem].isdigit():
        hour = int(ref[:meridiem])
        ref = ref[meridiem + 2 :]
    meridiem = ref.find("pm")
    if 0 < meridiem < 3 and ref[:meridiem].isdigit():
        hour = (int(ref[:meridiem]) + 12) % 24
        ref = ref[meridiem + 2 :]
    for word, word_hour in (("noon", 12), ("midnight", 0), ("teatime", 16)):
        if ref.startswith(word):
            hour, minute = word_hour, 0
            ref = ref[len(word) :]
            break

    today = dt.datetime.fromtimestamp(now, tz)
    day = today.date()
    if ref in ("", "today"):
        pass
    elif ref == "yesterday":
        day -= dt.timedelta(days=1)
    elif ref == "tomorrow":
        day += dt.timedelta(days=1)
    elif ref.count("/") == 2:
        month, mday, year = (int(p) for p in ref.split("/"))
        if year < 1900:
            year += 1900
        if year < 1970:
            year += 100
        day = dt.date(year, month, mday)
    elif len(ref) == 8 and ref.isdigit():
        day = dt.date(int(ref[:4]), int(ref[4:6]), int(ref[6:8]))
    elif ref[:3] in _MONTHS:
        digits = re.search(r"\d{1,2}\Z", ref)
        if digits is None:
            raise ValueError(f"a day of the month must follow the month name in {ref!r}")
        day = dt.date(day.year, _MONTHS.index(ref[:3]) + 1, int(digits.group()))
    elif ref[:3] in _WEEKDAYS:
        back = (day.weekday() - _WEEKDAYS.index(ref[:3])) % 7
        day -= dt.timedelta(days=back)
    else:
        raise ValueError(f"unknown time reference {ref!r}")
    moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    return int(moment.timestamp())
