"""Graphite's from/until syntax and interval arguments, with a fixed now."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.query.errors import RenderError
from vigil.query.timeparse import parse_interval, parse_time, parse_timezone

NOW = 1_700_000_000  # Tuesday 2023-11-14 22:13:20 UTC
MIDNIGHT = 1_699_920_000  # 2023-11-14 00:00 UTC
HOUR, DAY = 3600, 86400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("", None),
        ("-1h", NOW - HOUR),
        ("-10min", NOW - 600),
        ("-30s", NOW - 30),
        ("-30sec", NOW - 30),
        ("-2d", NOW - 2 * DAY),
        ("-2days", NOW - 2 * DAY),
        ("-1w", NOW - 7 * DAY),
        ("-3mon", NOW - 90 * DAY),
        ("-1y", NOW - 365 * DAY),
        ("-1h30min", NOW - 5400),
        ("now-1h", NOW - HOUR),
        ("NOW-1H", NOW - HOUR),
        ("now+1d", NOW + DAY),
        ("today", MIDNIGHT),
        ("yesterday", MIDNIGHT - DAY),
        ("tomorrow", MIDNIGHT + DAY),
        ("midnight", MIDNIGHT),
        ("Midnight", MIDNIGHT),
        ("noon", MIDNIGHT + 12 * HOUR),
        ("teatime", MIDNIGHT + 16 * HOUR),
        ("midnight+1h", MIDNIGHT + HOUR),
        ("noon+30min", MIDNIGHT + 12 * HOUR + 1800),
        ("noon yesterday", MIDNIGHT - DAY + 12 * HOUR),
        ("2pm", MIDNIGHT + 14 * HOUR),
        ("3am", MIDNIGHT + 3 * HOUR),
        ("9:15am", MIDNIGHT + 9 * HOUR + 900),
        ("14:30_20240131", 1_706_711_400),
        ("20240131", 1_706_659_200),
        ("01/31/24", 1_706_659_200),
        ("01/31/2024", 1_706_659_200),
        ("jan15", 1_673_740_800),
        ("monday", MIDNIGHT - DAY),
        ("tuesday", MIDNIGHT),
        ("1700000000", NOW),
        ("1700000000.9", NOW),
        ("20241341", 20_241_341),
    ],
)
def test_parse_time(text: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(RenderError):
            parse_time(text, NOW)
    else:
        assert parse_time(text, NOW) == expected


def test_time_zone_moves_day_references_but_not_offsets() -> None:
    new_york = parse_timezone("America/New_York")  # UTC-5 in November
    assert parse_time("midnight", NOW, new_york) == MIDNIGHT + 5 * HOUR
    assert parse_time("-1h", NOW, new_york) == NOW - HOUR


@pytest.mark.parametrize("text", ["-1x", "abc", "25:00", "13/45/2020", "now+", "-h", "jan"])
def test_bad_time_names_value_and_gives_example(text: str) -> None:
    with pytest.raises(RenderError) as err:
        parse_time(text, NOW)
    assert repr(text) in str(err.value)
    assert "-1h" in str(err.value)


def test_unknown_time_zone() -> None:
    with pytest.raises(RenderError, match="Europe/Paris"):
        parse_timezone("Mars/Olympus")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3600),
        ("5min", 300),
        ("-1d", -86400),
        ("+1h", 3600),
        ("30s", 30),
        ("10seconds", 10),
        ("2w", 14 * DAY),
        ("1mon", 30 * DAY),
        ("2months", 60 * DAY),
        ("1y", 365 * DAY),
        ("1h30min", 5400),
        ("3 days", 3 * DAY),
    ],
)
def test_parse_interval(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5m", "1x", "-", "1h-2h", "1.5h"])
def test_bad_interval(text: str) -> None:
    with pytest.raises(RenderError) as err:
        parse_interval(text)
    assert repr(text) in str(err.value)
    assert "'1h'" in str(err.value)


_UNITS = st.sampled_from(["s", "min", "h", "d", "w", "mon", "y", "hours", "days"])
_TERMS = st.tuples(st.integers(0, 500), _UNITS).map(lambda t: f"{t[0]}{t[1]}")


@given(_TERMS, _TERMS)
def test_relative_offsets_compose(first: str, second: str) -> None:
    total = parse_interval(first) + parse_interval(second)
    assert parse_interval(first + second) == total
    assert parse_time(f"-{first}{second}", NOW) == NOW - total
    assert parse_time(f"now+{first}{second}", NOW) == NOW + total
    earlier = parse_time(f"-{first}", NOW)
    assert parse_time(f"-{second}", earlier) == NOW - total
