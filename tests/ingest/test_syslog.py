"""Syslog (RFC 5424, RFC 3164) parsing into log entries, and RFC 6587 framing."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ingest.logrules import LogRules
from vigil.ingest.syslog import (
    EMPTY_MESSAGE,
    parse_syslog,
    parse_syslog_reference,
    parse_syslog_vectorised,
)
from vigil.ingest.syslog_fast import split_fast
from vigil.model import LOGS_SCHEMA, Reject

RULES = LogRules()
# The RFC examples are from 2001-2003; a window wide enough to keep their times.
WIDE = LogRules(past_seconds=40 * 365 * 86400, future_seconds=40 * 365 * 86400)
BOM = b"\xef\xbb\xbf"


def ms(text: str) -> int:
    """An ISO 8601 time with offset in epoch milliseconds."""
    return int(datetime.datetime.fromisoformat(text).timestamp() * 1000)


NOW = ms("2003-10-11T22:20:00+00:00")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def rfc3339(t: int, zone: datetime.tzinfo = datetime.UTC) -> str:
    """Epoch milliseconds as RFC 3339 text, exact to the millisecond."""
    when = EPOCH + datetime.timedelta(milliseconds=t)
    return when.astimezone(zone).isoformat(timespec="milliseconds")


def parse_one(raw: bytes, now: int = NOW, rules: LogRules = WIDE) -> dict[str, Any]:
    table, rejects = parse_syslog([raw], now, rules)
    assert rejects == []
    assert table.schema == LOGS_SCHEMA
    [row] = table.to_pylist()
    assert isinstance(row, dict)
    row["ts"] = int(row["ts"].replace(tzinfo=datetime.UTC).timestamp() * 1000)
    row["data"] = dict(row["data"])
    return row


def fields(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["ts"],
        row["severity"],
        row["facility"],
        row["host"],
        row["app"],
        row["message"],
        row["data"],
    )


# RFC 5424 section 6.5, examples 1-4 (BOM written out).
RFC5424_EXAMPLES: list[tuple[bytes, tuple[Any, ...]]] = [
    (
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        + BOM
        + b"'su root' failed for lonvick on /dev/pts/8",
        (
            ms("2003-10-11T22:14:15.003+00:00"),
            2,
            4,
            "mymachine.example.com",
            "su",
            "'su root' failed for lonvick on /dev/pts/8",
            {"msgid": "ID47"},
        ),
    ),
    (
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
        b"%% It's time to make the do-nuts.",
        (
            ms("2003-08-24T12:14:15+00:00"),
            5,
            20,
            "192.0.2.1",
            "myproc",
            "%% It's time to make the do-nuts.",
            {"procid": "8710"},
        ),
    ),
    (
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] '
        + BOM
        + b"An application event log entry...",
        (
            ms("2003-10-11T22:14:15.003+00:00"),
            5,
            20,
            "mymachine.example.com",
            "evntslog",
            "An application event log entry...",
            {
                "msgid": "ID47",
                "exampleSDID@32473.iut": "3",
                "exampleSDID@32473.eventSource": "Application",
                "exampleSDID@32473.eventID": "1011",
            },
        ),
    ),
    (
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        b'[examplePriority@32473 class="high"]',
        (
            ms("2003-10-11T22:14:15.003+00:00"),
            5,
            20,
            "mymachine.example.com",
            "evntslog",
            "",
            {
                "msgid": "ID47",
                "exampleSDID@32473.iut": "3",
                "exampleSDID@32473.eventSource": "Application",
                "exampleSDID@32473.eventID": "1011",
                "examplePriority@32473.class": "high",
            },
        ),
    ),
]


@pytest.mark.parametrize(("raw", "expected"), RFC5424_EXAMPLES)
def test_rfc5424_examples(raw: bytes, expected: tuple[Any, ...]) -> None:
    assert fields(parse_one(raw)) == expected


# RFC 3164 section 5.4. Example 2 came without PRI and header; examples 3 and 4
# have headers that RFC 3164 does not allow, so what follows the recognised
# part is content (and "CST" looks like a host name, as the RFC warns). With no
# year given, Feb 5 is the one closest to NOW (October 2003): in 2004.
RFC3164_EXAMPLES: list[tuple[bytes, tuple[Any, ...]]] = [
    (
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        (
            ms("2003-10-11T22:14:15+00:00"),
            2,
            4,
            "mymachine",
            "su",
            "'su root' failed for lonvick on /dev/pts/8",
            {},
        ),
    ),
    (b"Use the BFG!", (NOW, 5, 1, "", "", "Use the BFG!", {})),
    (
        b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
        (ms("2003-02-05T17:32:18+00:00"), 5, 1, "10.0.0.99", "", "Use the BFG!", {}),
    ),
    (
        b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.",
        (
            ms("2003-08-24T05:34:00+00:00"),
            5,
            20,
            "CST",
            "",
            "1987 mymachine myproc[10]: %% It's time to make the do-nuts.",
            {},
        ),
    ),
    (
        b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
        (
            NOW,
            0,
            0,
            "",
            "",
            "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
            {},
        ),
    ),
]


@pytest.mark.parametrize(("raw", "expected"), RFC3164_EXAMPLES)
def test_rfc3164_examples(raw: bytes, expected: tuple[Any, ...]) -> None:
    assert fields(parse_one(raw)) == expected


@pytest.mark.parametrize(
    ("raw", "app", "message", "data"),
    [
        (b"<13>Oct 11 22:14:15 host sshd[4242]: Accepted", "sshd", "Accepted", {"procid": "4242"}),
        (b"<13>Oct 11 22:14:15 host sshd[4242] Accepted", "sshd", "Accepted", {"procid": "4242"}),
        (b"<13>Oct 11 22:14:15 host kernel: oops", "kernel", "oops", {}),
        (b"<13>Oct 11 22:14:15 host kernel:", "kernel", "", {}),
        (b"<13>Oct 11 22:14:15 host http://example.com/", "", "http://example.com/", {}),
    ],
)
def test_rfc3164_tags(raw: bytes, app: str, message: str, data: dict[str, str]) -> None:
    row = parse_one(raw)
    assert (row["host"], row["app"], row["message"], row["data"]) == ("host", app, message, data)


@pytest.mark.parametrize(
    ("raw", "host", "app"),
    [
        (b"<13>Oct 11 22:14:15 su: hi", "", "su"),
        (b"<13>Oct 11 22:14:15 su[12]: hi", "", "su"),
        (b"<13>Oct 11 22:14:15 fe80::1 su: hi", "fe80::1", "su"),
    ],
)
def test_rfc3164_without_hostname_the_first_token_is_the_tag(
    raw: bytes, host: str, app: str
) -> None:
    row = parse_one(raw)
    assert (row["host"], row["app"], row["message"]) == (host, app, "hi")


def test_rfc3164_single_digit_days_and_fractions() -> None:
    assert parse_one(b"<13>Oct 1 22:14:15 h a: m")["ts"] == ms("2003-10-01T22:14:15+00:00")
    assert parse_one(b"<13>Oct  1 22:14:15.250 h a: m")["ts"] == ms("2003-10-01T22:14:15.250+00:00")


@pytest.mark.parametrize(
    ("now", "stamp", "expected"),
    [
        ("2025-01-01T00:00:30+00:00", "Dec 31 23:59:50", "2024-12-31T23:59:50+00:00"),
        ("2024-12-31T23:59:59+00:00", "Jan  1 00:00:05", "2025-01-01T00:00:05+00:00"),
        ("2024-06-30T12:00:00+00:00", "Jan  1 00:00:05", "2024-01-01T00:00:05+00:00"),
        ("2024-03-01T00:00:10+00:00", "Feb 29 23:59:59", "2024-02-29T23:59:59+00:00"),
    ],
)
def test_rfc3164_year_is_the_one_closest_to_now(now: str, stamp: str, expected: str) -> None:
    raw = b"<13>" + stamp.encode() + b" host app: m"
    wide = parse_one(raw, ms(now), WIDE)
    assert wide["ts"] == ms(expected)


def test_rfc3164_feb_29_outside_leap_years_falls_in_the_last_leap_year_or_none() -> None:
    # 2025 has no Feb 29; 2024 (the year before) has.
    row = parse_one(b"<13>Feb 29 12:00:00 host app: m", ms("2025-03-01T00:00:00+00:00"), WIDE)
    assert row["ts"] == ms("2024-02-29T12:00:00+00:00")
    # In 2022 neither 2021, 2022 nor 2023 has one: receive time, original kept.
    now = ms("2022-03-01T00:00:00+00:00")
    row = parse_one(b"<13>Feb 29 12:00:00 host app: m", now, WIDE)
    assert (row["ts"], row["data"]) == (now, {"orig_ts": "Feb 29 12:00:00"})


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("1985-04-12T23:20:50.52Z", "1985-04-12T23:20:50.520+00:00"),
        ("1985-04-12T19:20:50.52-04:00", "1985-04-12T23:20:50.520+00:00"),
        ("2003-08-24T05:14:15.000003-07:00", "2003-08-24T12:14:15+00:00"),
        ("2003-10-11T22:14:15Z", "2003-10-11T22:14:15+00:00"),
        ("2003-10-12T01:44:15.9+05:30", "2003-10-11T20:14:15.900+00:00"),
    ],
)
def test_rfc5424_timestamps(stamp: str, expected: str) -> None:
    assert parse_one(f"<14>1 {stamp} h a - - - m".encode())["ts"] == ms(expected)


@pytest.mark.parametrize(
    ("raw", "data"),
    [
        (rb'<14>1 - h a - - [id k="a\"b"] m', {"id.k": 'a"b'}),
        (rb'<14>1 - h a - - [id k="c\\d"] m', {"id.k": "c\\d"}),
        (rb'<14>1 - h a - - [id k="e\]f"] m', {"id.k": "e]f"}),
        # Other backslashes are kept as they are (RFC 5424 section 6.3.3).
        (rb'<14>1 - h a - - [id k="g\nh"] m', {"id.k": "g\\nh"}),
        (rb'<14>1 - h a - - [id k="" k2="[x] y"] m', {"id.k": "", "id.k2": "[x] y"}),
        (rb"<14>1 - h a - - [id] m", {}),
        (rb'<14>1 - h a - - [id k="1" k="2"] m', {"id.k": "2"}),
        ('<14>1 - h a - - [id k="ünï"] m'.encode(), {"id.k": "ünï"}),
    ],
)
def test_structured_data_values_and_escapes(raw: bytes, data: dict[str, str]) -> None:
    row = parse_one(raw)
    assert (row["data"], row["message"]) == (data, "m")


@pytest.mark.parametrize(
    "sd",
    [b'[id k="unterminated] m', b"[id k=noquotes] m", b'[ id k="v"] m'],
)
def test_malformed_structured_data_is_kept_in_the_message(sd: bytes) -> None:
    row = parse_one(b"<14>1 2003-10-11T22:14:15Z h a 1 ID - ".replace(b"- ", sd, 1))
    assert row["message"] == sd.decode()
    assert (row["host"], row["app"], row["data"]) == ("h", "a", {"procid": "1", "msgid": "ID"})
    assert row["ts"] == ms("2003-10-11T22:14:15+00:00")


def test_nil_fields_are_empty() -> None:
    row = parse_one(b"<14>1 - - - - - -")
    assert fields(row) == (NOW, 6, 1, "", "", "", {})


def test_a_header_without_structured_data_has_an_empty_message() -> None:
    assert fields(parse_one(b"<14>1 - h a - -")) == (NOW, 6, 1, "h", "a", "", {})


@pytest.mark.parametrize("raw", [b"<14>1 2003-10-11T22:14:15Z h", b"<14>1"])
def test_truncated_rfc5424_headers_keep_the_rest_as_the_message(raw: bytes) -> None:
    row = parse_one(raw)
    assert fields(row) == (NOW, 6, 1, "", "", raw[4:].decode(), {})


@pytest.mark.parametrize(
    "raw",
    [b"<192>1 - h a - - - m", b"<999>Oct 11 22:14:15 h a: m", b"<abc>m", b"<>m", b"<13m", b"m"],
)
def test_bad_pri_is_pri_13_and_the_whole_message(raw: bytes) -> None:
    row = parse_one(raw)
    assert fields(row) == (NOW, 5, 1, "", "", raw.decode(), {})


def test_valid_pri_without_a_known_header_keeps_the_rest_as_content() -> None:
    row = parse_one(b"<191>Foo 11 22:14:15 h a: m")
    assert fields(row) == (NOW, 7, 23, "", "", "Foo 11 22:14:15 h a: m", {})


@pytest.mark.parametrize(
    ("raw", "orig"),
    [
        (b"<14>1 2003-10-11T22:30:01Z h a - - - m", "2003-10-11T22:30:01Z"),
        (b"<14>1 2003-10-01T00:00:00.5+01:00 h a - - - m", "2003-10-01T00:00:00.5+01:00"),
        (b"<14>1 yesterday h a - - - m", "yesterday"),
        (b"<14>1 2003-02-30T00:00:00Z h a - - - m", "2003-02-30T00:00:00Z"),
        (b"<14>1 2003-10-11T24:00:00Z h a - - - m", "2003-10-11T24:00:00Z"),
        (b"<13>Oct  1 22:14:15 h a: m", "Oct  1 22:14:15"),
        (b"<13>Oct 11 25:14:15 h a: m", "Oct 11 25:14:15"),
    ],
)
def test_timestamps_out_of_the_window_or_invalid_become_receive_time(raw: bytes, orig: str) -> None:
    row = parse_one(raw, NOW, RULES)
    assert (row["ts"], row["data"], row["message"]) == (NOW, {"orig_ts": orig}, "m")


def test_the_window_edges_are_inclusive() -> None:
    lo, hi = RULES.ts_window_ms(NOW)
    for t in (lo, hi):
        assert parse_one(f"<14>1 {rfc3339(t)} h a - - - m".encode(), NOW, RULES)["ts"] == t


def test_over_long_messages_are_cut_at_a_utf8_boundary() -> None:
    rules = LogRules(max_entry_bytes=30)
    head = b"<14>1 - h a - - - "  # 18 bytes
    raw = head + "aaaaaaaaaa€bb".encode()  # the euro sign (3 bytes) straddles byte 30
    row = parse_one(raw, NOW, rules)
    assert row["message"] == "aaaaaaaaaa"
    assert row["data"] == {"truncated": str(len(raw))}
    exact = head + b"x" * 12
    assert parse_one(exact, NOW, rules)["data"] == {}


def test_replacement_characters_do_not_make_a_message_outgrow_the_limit() -> None:
    raw = b"<14>1 - h a - - - " + b"\xff" * 10  # 28 bytes, 48 once decoded
    row = parse_one(raw, NOW, LogRules(max_entry_bytes=30))
    assert row["message"] == "\ufffd" * 4
    assert row["data"] == {"truncated": "28", "invalid_utf8": "replaced"}


def test_invalid_utf8_is_replaced_and_marked() -> None:
    row = parse_one(b"<14>1 - h\xff a - - - caf\xc3 ok")
    assert (row["host"], row["message"]) == ("h\ufffd", "caf\ufffd ok")
    assert row["data"] == {"invalid_utf8": "replaced"}


def test_trailing_line_ends_and_nuls_are_stripped_and_empty_messages_dropped() -> None:
    table, rejects = parse_syslog(
        [b"<13>Oct 11 22:14:15 h a: m\r\n", b"", b"\r\n", b"<13>1 - h a - - - x\x00"], NOW, WIDE
    )
    assert table.column("message").to_pylist() == ["m", "x"]
    assert [(r.reason, r.count) for r in rejects] == [(EMPTY_MESSAGE, 2)]


def test_an_empty_batch_is_an_empty_table() -> None:
    table, rejects = parse_syslog([], NOW, RULES)
    assert (table.schema, table.num_rows, rejects) == (LOGS_SCHEMA, 0, [])


def test_entries_are_lines_with_blank_other_fields() -> None:
    row = parse_one(b"<13>Oct 11 22:14:15 h a: m")
    assert row["kind"] == "line" and row["uid"] == 0
    assert [row[k] for k in ("cluster", "dc", "type", "name", "id", "parent")] == [""] * 6
    assert (row["status"], row["duration_ms"]) == (0, 0.0)


@given(
    st.lists(
        st.binary(max_size=80)
        | st.sampled_from([b"<13>1 ", b"<34>Oct 11 "]).flatmap(
            lambda head: st.binary(max_size=60).map(lambda tail: head + tail)
        ),
        max_size=20,
    )
)
def test_parse_never_raises_and_keeps_every_non_empty_message(messages: list[bytes]) -> None:
    table, rejects = parse_syslog(messages, NOW, LogRules(max_entry_bytes=50))
    kept = [m for m in messages if m.rstrip(b"\r\n\x00")]
    assert table.schema == LOGS_SCHEMA
    assert table.num_rows == len(kept)
    assert sum(r.count for r in rejects) == len(messages) - len(kept)
    lo, hi = RULES.ts_window_ms(NOW)
    assert all(lo <= t <= hi for t in table.column("ts").cast("int64").to_pylist())


# Pieces of both formats, so that random messages reach every branch of the parser.
FRAGMENTS = st.sampled_from(
    [
        b"<13>",
        b"<191>",
        b"<192>",
        b"1 ",
        b"-",
        b" ",
        b"[",
        b"]",
        b'"',
        b"\\",
        b"=",
        b'[id k="v"]',
        b"2003-10-11T22:14:15.003Z",
        b"2003-02-30T22:14:15+25:99",
        b"Oct 11 22:14:15",
        b"Feb 29 24:00:60.1234567",
        b"host",
        b"tag[1]:",
        b":",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xe2\x82",
        b"\r\n",
        b"\x00",
    ]
)


@given(st.lists(st.lists(FRAGMENTS, max_size=14).map(b"".join), max_size=10))
def test_parse_never_raises_on_pieces_of_syslog(messages: list[bytes]) -> None:
    table, rejects = parse_syslog(messages, NOW, LogRules(max_entry_bytes=40))
    assert table.num_rows == len([m for m in messages if m.rstrip(b"\r\n\x00")])
    lo, hi = RULES.ts_window_ms(NOW)
    assert all(lo <= t <= hi for t in table.column("ts").cast("int64").to_pylist())
    for message in table.column("message").to_pylist():
        assert len(message.encode()) <= 40


# RFC 5424 section 6: PRINTUSASCII, and SD-NAME without '=', ']' and '"'.
PRINTABLE = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
TOKEN = PRINTABLE.filter(lambda s: s != "-")
SD_NAME = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='=]"'),
    min_size=1,
    max_size=10,
)


def sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@given(
    pri=st.integers(0, 191),
    offset_ms=st.integers(-RULES.past_seconds * 1000, RULES.future_seconds * 1000),
    zone_minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
    host=TOKEN,
    app=TOKEN,
    procid=TOKEN | st.none(),
    msgid=TOKEN | st.none(),
    sd=st.dictionaries(SD_NAME, st.dictionaries(SD_NAME, st.text(max_size=10), max_size=3)),
    bom=st.booleans(),
    message=st.text(max_size=40).map(lambda s: s.rstrip("\r\n\x00").lstrip("\ufeff")),
)
def test_rfc5424_fields_round_trip(
    pri: int,
    offset_ms: int,
    zone_minutes: int,
    host: str,
    app: str,
    procid: str | None,
    msgid: str | None,
    sd: dict[str, dict[str, str]],
    bom: bool,
    message: str,
) -> None:
    t = NOW + offset_ms
    zone = datetime.timezone(datetime.timedelta(minutes=zone_minutes))
    stamp = rfc3339(t, zone)
    elements = "".join(
        "[" + sd_id + "".join(f' {k}="{sd_escape(v)}"' for k, v in params.items()) + "]"
        for sd_id, params in sd.items()
    )
    raw = (
        f"<{pri}>1 {stamp} {host} {app} {procid or '-'} {msgid or '-'} {elements or '-'} "
        + ("\ufeff" if bom else "")
        + message
    ).encode()
    row = parse_one(raw, NOW, RULES)
    expected_data = {f"{sd_id}.{k}": v for sd_id, params in sd.items() for k, v in params.items()}
    if procid:
        expected_data["procid"] = procid
    if msgid:
        expected_data["msgid"] = msgid
    assert fields(row) == (t, pri % 8, pri // 8, host, app, message, expected_data)


# --- the fast path agrees with the reference parser --------------------------------------

MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Receive times around the edges the RFC 3164 year rule cares about.
NOWS = st.sampled_from(
    [
        NOW,
        ms("2024-12-31T23:59:59+00:00"),
        ms("2025-01-01T00:00:30+00:00"),
        ms("2024-03-01T00:00:10+00:00"),
        ms("2022-03-01T00:00:00+00:00"),
        ms("2024-02-29T12:00:00+00:00"),
    ]
)
WORD = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=10)
ANY_TEXT = st.text(max_size=30)
TAIL = st.sampled_from(["", "\r\n", "\n", "\x00", " "])


def pick(draw: st.DrawFn, odd: bool, good: Any, *others: Any) -> Any:
    """``good``, or for an odd message any of ``good`` and ``others``."""
    return draw(st.sampled_from([good, *others])) if odd else good


@st.composite
def rfc5424_message(draw: st.DrawFn, now: int) -> bytes:
    """An RFC 5424 message: well formed, or (if odd) with a few things off."""
    odd = draw(st.booleans())
    pri = pick(draw, odd, draw(st.integers(0, 191)), 192, 999, "013", "1000", "")
    window = pick(draw, odd, (-7 * 86400_000, 600_000), (-9 * 86400_000, 86400_000))
    when = EPOCH + datetime.timedelta(milliseconds=now + draw(st.integers(*window)))
    minutes = draw(st.sampled_from([0, draw(st.integers(-1439, 1439))]))
    when = when.astimezone(datetime.timezone(datetime.timedelta(minutes=minutes)))
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S")
    digits = draw(st.integers(0, 6))
    if digits:
        stamp += "." + f"{when.microsecond:06d}"[:digits]
    offset = when.strftime("%z")
    stamp += "Z" if minutes == 0 and draw(st.booleans()) else offset[:3] + ":" + offset[3:]
    stamp = pick(
        draw, odd, stamp, "-", stamp.replace("T", "T2"), stamp[:-1], "2003-02-30T00:00:00Z", "x"
    )
    fields = [draw(st.sampled_from(["-"]) | WORD) for _ in range(4)]
    sd = pick(draw, odd, "-", '[id k="v"]', "-x", "[id", "")
    lead = pick(draw, odd, draw(st.sampled_from([" ", " \ufeff", " \ufeff\ufeff"])), "")
    text = f"<{pri}>1 {stamp} {' '.join(fields)} {sd}{lead}" + draw(ANY_TEXT) + draw(TAIL)
    return text.encode()


@st.composite
def rfc3164_message(draw: st.DrawFn, now: int) -> bytes:
    """An RFC 3164 message: well formed, or (if odd) with a few things off."""
    odd = draw(st.booleans())
    pri = pick(draw, odd, draw(st.integers(0, 191)), 192, 999)
    window = pick(draw, odd, (-7 * 86400_000, 600_000), (-400 * 86400_000, 2 * 86400_000))
    when = EPOCH + datetime.timedelta(milliseconds=now + draw(st.integers(*window)))
    month = pick(draw, odd, MONTH_NAMES[when.month - 1], *MONTH_NAMES)
    day = pick(draw, odd, when.day, 29, 30, 31, 0, 1, 9)
    day_text = draw(st.sampled_from([f"{day:2d}", f"{day}", f"{day:02d}", f" {day}"]))
    hour = pick(draw, odd, when.hour, 0, 23, 24)
    second = pick(draw, odd, when.second, 60, 61)
    frac = draw(st.sampled_from(["", ".5", ".25", ".123", ".123456"]))
    frac = pick(draw, odd, frac, ".1234567", ".")
    host = pick(draw, odd, draw(st.sampled_from(["host", "10.0.0.9", "fe80::1"]) | WORD))
    host = pick(draw, odd, host, "", "h:", "h]")
    tag = draw(st.sampled_from(["sshd[4242]: ", "su: ", "k[]: ", "d[1] "]))
    tag = pick(
        draw, odd, tag, "t[12]:", "t:", "d[x y]: ", "x[1]:y ", "http://e/ ", "", "a" * 49 + ": "
    )
    clock = f"{hour:02d}:{when.minute:02d}:{second:02d}{frac}"
    head = f"<{pri}>{month} {day_text} {clock} {host + ' ' if host else ''}{tag}"
    return (head + draw(ANY_TEXT) + draw(TAIL)).encode()


@st.composite
def syslog_batch(draw: st.DrawFn) -> tuple[list[bytes], int, LogRules]:
    now = draw(NOWS)
    typical = rfc5424_message(now) | rfc3164_message(now)
    message = st.one_of(
        typical,
        typical,
        typical.map(lambda m: m.replace(b" ", b" \xff", 1)),  # invalid UTF-8
        st.binary(max_size=60),
        st.lists(FRAGMENTS, max_size=10).map(b"".join),
    )
    messages = draw(st.lists(message, max_size=30))
    rules = LogRules(max_entry_bytes=draw(st.sampled_from([256 << 10, 256 << 10, 80, 40])))
    return messages, now, rules


@settings(max_examples=300)
@given(syslog_batch())
def test_the_fast_path_gives_what_the_reference_gives(
    batch: tuple[list[bytes], int, LogRules],
) -> None:
    messages, now, rules = batch
    expected, expected_rejects = parse_syslog_reference(messages, now, rules)
    table, rejects = parse_syslog_vectorised(messages, now, rules)
    assert table.schema == LOGS_SCHEMA
    assert table.to_pylist() == expected.to_pylist()
    assert table.equals(expected)
    assert rejects == expected_rejects


TYPICAL = [
    b"<165>1 2003-10-11T22:14:15.003Z web-1.example.com nginx 8710 ID47 - GET / 200",
    b"<165>1 2003-10-11T19:14:15-03:00 web-1 nginx - - - \xef\xbb\xbfhello \xc3\xa9",
    b"<14>1 - web-1 nginx 42 - -",
    b"<38>Oct 11 22:14:15 web-1 sshd[4242]: Accepted publickey for root",
    b"<38>Oct  9 22:14:15.250 web-1 kernel: oops\r\n",
    b"<38>Oct 11 22:14:15 web-1 cron[]:",
]


def test_the_fast_path_takes_typical_messages() -> None:
    lo, hi = WIDE.ts_window_ms(NOW)
    split = split_fast(TYPICAL, NOW, lo, hi, WIDE.max_entry_bytes)
    assert (split.taken.tolist(), split.slow.tolist()) == (list(range(len(TYPICAL))), [])
    assert split.entries.equals(parse_syslog_reference(TYPICAL, NOW, WIDE)[0])


def test_large_batches_take_the_fast_path_and_keep_their_order() -> None:
    messages = [*TYPICAL, b"", b'<14>1 - h a - - [id k="v"] m', b"\xff", b"plain"] * 10
    table, rejects = parse_syslog(messages, NOW, WIDE)
    expected, expected_rejects = parse_syslog_reference(messages, NOW, WIDE)
    assert table.equals(expected)
    assert rejects == expected_rejects == [Reject.of(EMPTY_MESSAGE, b"", 10)]
