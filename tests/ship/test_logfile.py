"""Reading log files as entries: timestamps, levels, multi-line entries, encodings."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.ship.logfile import LogFileError, parse_lines, parse_timestamp, read_file, severity_of

UTC = datetime.UTC
T0 = 1763899200.0  # 2025-11-23 12:00:00 UTC


def entries(text: str, default_ts: float = T0, **kwargs: Any) -> list[dict[str, Any]]:
    return [e for _, e in parse_lines(text.split("\n"), default_ts=default_ts, tz=UTC, **kwargs)]


@pytest.mark.parametrize(
    ("line", "ts", "message"),
    [
        ("2025-11-23T12:00:00Z started", T0, "started"),
        ("2025-11-23T12:00:00.125Z started", T0 + 0.125, "started"),
        ("2025-11-23T13:00:00.5+01:00 started", T0 + 0.5, "started"),
        ("2025-11-23T13:00:00+0100 started", T0, "started"),
        ("2025-11-23 12:00:00 started", T0, "started"),  # no zone: tz (UTC here)
        ("2025-11-23 12:00:00,125 INFO started", T0 + 0.125, "INFO started"),  # Python logging
        ("2025-11-23 12:00:00.125456789 started", T0 + 0.125, "started"),
        ("2025/11/23 12:00:00 [error] 12#0: open() failed", T0, "[error] 12#0: open() failed"),
        ("[2025-11-23 12:00:00,001] WARN x", T0 + 0.001, "WARN x"),
        ("Nov 23 12:00:00 web01 sshd[42]: accepted", T0, "web01 sshd[42]: accepted"),
        ("Nov  3 12:00:00 web01 cron: ok", T0 - 20 * 86400, "web01 cron: ok"),
        ("[23/Nov/2025:05:00:00 -0700] hit", T0, "hit"),
        (
            '10.0.0.1 - frank [23/Nov/2025:12:00:00 +0000] "GET / HTTP/1.1" 200 5',
            T0,
            '10.0.0.1 - frank [23/Nov/2025:12:00:00 +0000] "GET / HTTP/1.1" 200 5',
        ),
        ("[Sun Nov 23 12:00:00.250 2025] [core:error] denied", T0 + 0.25, "[core:error] denied"),
        ("2025-11-23T12:00:00Z", T0, ""),
    ],
)
def test_leading_timestamps(line: str, ts: float, message: str) -> None:
    assert parse_timestamp(line, T0, UTC) == (ts, message)


@pytest.mark.parametrize(
    "line",
    [
        "no timestamp here",
        "2025-13-40 12:00:00 not a date",
        "2025-11-23 25:00:00 not a time",
        "2025-11-23T12:00:00Zulu glued",
        "2025-11-23 12:00 minutes only",
        "Nov 23 nothing",
        "[2025-11-23 12:00:00 unclosed",
        "12345 numbers",
    ],
)
def test_lines_without_a_leading_timestamp(line: str) -> None:
    assert parse_timestamp(line, T0, UTC) is None


def test_syslog_times_take_the_year_that_ends_before_the_file_was_written() -> None:
    january = datetime.datetime(2026, 1, 2, tzinfo=UTC).timestamp()
    ts, _ = parse_timestamp("Dec 31 23:00:00 host app: bye", january, UTC) or (0, "")
    assert datetime.datetime.fromtimestamp(ts, UTC).year == 2025


@pytest.mark.parametrize(
    ("message", "severity"),
    [
        ("ERROR boom", 3),
        ("WARN low disk", 4),
        ("WARNING low disk", 4),
        ("INFO up", 6),
        ("DEBUG x=1", 7),
        ("CRITICAL down", 2),
        ("FATAL: down", 2),
        ("[error] denied", 3),
        ("[core:warn] slow", 4),
        ("ERROR", 3),
        ("Error in lower case", None),
        ("ERRORS found", None),
        ("INFORMATION", None),
        ("up INFO", None),
    ],
)
def test_leading_level_words(message: str, severity: int | None) -> None:
    assert severity_of(message) == severity


def test_line_entries_carry_source_time_severity_and_message() -> None:
    (entry,) = entries("2025-11-23T12:00:00Z ERROR boom", host="web01", app="shop")
    assert entry == {
        "ts": T0,
        "kind": "line",
        "host": "web01",
        "app": "shop",
        "severity": 3,
        "message": "ERROR boom",
    }


def test_lines_without_time_take_the_previous_entrys_or_the_default() -> None:
    text = 'plain start\n{"ts": 1763899300, "kind": "event", "name": "deploy"}\nafter json'
    first, event, after = entries(text)
    assert (first["ts"], after["ts"]) == (T0, 1763899300.0)
    assert event == {"ts": 1763899300, "kind": "event", "name": "deploy"}


def test_json_lines_are_entries_as_they_are_with_source_defaults() -> None:
    text = '{"ts": 1, "kind": "atomic", "host": "db1", "data": {"a": [1]}}\n{"ts": 2}'
    first, second = entries(text, host="web01", app="shop")
    assert first == {"ts": 1, "kind": "atomic", "host": "db1", "app": "shop", "data": {"a": [1]}}
    assert second == {"ts": 2, "host": "web01", "app": "shop"}


def test_a_json_array_or_broken_json_is_text() -> None:
    assert [e["message"] for e in entries('[1, 2]\n{"broken": ')] == ["[1, 2]", '{"broken": ']


PYTHON_TRACE = """\
Traceback (most recent call last):
  File "/srv/app/cart.py", line 3, in add
    price = prices[sku]
            ~~~~~~^^^^^
KeyError: 'sku'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app/cart.py", line 5, in add
    raise CartError(sku)
app.CartError: sku"""

JAVA_TRACE = """\
Exception in thread "main" java.lang.IllegalStateException: cart closed
\tat com.shop.Cart.add(Cart.java:42)
\tat com.shop.Main.main(Main.java:7)
Caused by: java.io.IOException: disk full
\tat com.shop.Store.write(Store.java:88)
\t... 2 more"""

GO_TRACE = """\
panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.lookup(...)
\t/srv/app/main.go:8
main.main()
\t/srv/app/main.go:12 +0x1d
created by main.start in goroutine 1
\t/srv/app/main.go:20 +0x25"""


@pytest.mark.parametrize("trace", [PYTHON_TRACE, JAVA_TRACE, GO_TRACE], ids=["py", "java", "go"])
def test_a_stack_trace_in_a_timestamped_file_is_one_entry(trace: str) -> None:
    text = (
        "2025-11-23 12:00:00,000 INFO request started\n"
        f"2025-11-23 12:00:00,500 ERROR request failed\n{trace}\n"
        "2025-11-23 12:00:01,000 INFO next request\n"
    )
    started, failed, following = entries(text)
    assert failed["message"] == f"ERROR request failed\n{trace}"
    assert (failed["ts"], failed["severity"]) == (T0 + 0.5, 3)
    assert following["message"] == "INFO next request"


@pytest.mark.parametrize("trace", [JAVA_TRACE, GO_TRACE], ids=["java", "go"])
def test_a_bare_stack_trace_is_one_entry(trace: str) -> None:
    found = entries(f"starting\n\n{trace}\n\nexit status 2\n")
    assert [e["message"] for e in found] == ["starting", trace, "exit status 2"]


def test_a_bare_python_traceback_continues_the_line_before_it() -> None:
    # logging.exception writes the message, then the traceback.
    found = entries(f"starting\n{PYTHON_TRACE}\nexit status 2\n")
    assert [e["message"] for e in found] == [f"starting\n{PYTHON_TRACE}", "exit status 2"]


def test_entries_start_on_their_first_line() -> None:
    text = f"2025-11-23T12:00:00Z a\n{JAVA_TRACE}\n2025-11-23T12:00:01Z b\n"
    assert [n for n, _ in parse_lines(text.splitlines(), default_ts=T0)] == [1, 8]


def test_crlf_line_ends_and_a_byte_order_mark_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"\xef\xbb\xbf2025-11-23T12:00:00Z a\r\n  more\r\n2025-11-23T12:00:01Z b\r\n")
    assert [e["message"] for _, e in read_file(path, tz=UTC)] == ["a\n  more", "b"]


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"2025-11-23T12:00:00Z caf\xe9 \xff\xfe ok\n")
    assert [e["message"] for _, e in read_file(path)] == ["caf\ufffd \ufffd\ufffd ok"]


def test_gzip_files_are_read_whatever_their_name(tmp_path: Path) -> None:
    text = f"2025-11-23T12:00:00Z a\n{PYTHON_TRACE}\n2025-11-23T12:00:01Z b\n".encode()
    for name in ("app.log.1.gz", "app.log.2"):
        (tmp_path / name).write_bytes(gzip.compress(text))
        found = [e["message"] for _, e in read_file(tmp_path / name, host="h", app="a")]
        assert found == [f"a\n{PYTHON_TRACE}", "b"]


def test_lines_before_any_timestamp_are_dated_by_the_files_mtime(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("no time\nnor here\n")
    os.utime(path, (T0, T0))
    assert [(e["ts"], e["message"]) for _, e in read_file(path)] == [
        (T0, "no time"),
        (T0, "nor here"),
    ]


def test_blank_lines_between_entries_belong_to_none() -> None:
    text = "\n\n2025-11-23T12:00:00Z a\n\n\n2025-11-23T12:00:01Z b\n\n"
    assert [e["message"] for e in entries(text)] == ["a", "b"]


# -- properties --------------------------------------------------------------

_FORMATS = {
    "rfc3339": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
    "python": lambda t: t.strftime("%Y-%m-%d %H:%M:%S,") + f"{t.microsecond // 1000:03d}",
    "go": lambda t: t.strftime("%Y/%m/%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}",
}
_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=40)
_CONTINUATION = st.builds(
    lambda prefix, text: prefix + text,
    st.sampled_from(["  ", "\t", "Caused by: ", "KeyError: ", "at ", "... 3 more "]),
    _TEXT,
)
_ENTRY = st.tuples(
    st.integers(0, 86_400_000),  # milliseconds after T0
    _TEXT.map(str.lstrip),
    st.lists(_CONTINUATION, max_size=4),
)


@given(st.sampled_from(sorted(_FORMATS)), st.lists(_ENTRY, max_size=20))
def test_written_entries_read_back_the_same(fmt: str, written: list[Any]) -> None:
    lines = []
    for ms, first, continuations in written:
        t = datetime.datetime.fromtimestamp(T0 + ms / 1000, UTC)
        lines.append(f"{_FORMATS[fmt](t)} {first}")
        lines += continuations
    body = "".join(line + "\n" for line in lines)
    read = entries(body, default_ts=0.0)
    assert len(read) == len(written)
    for entry, (ms, first, continuations) in zip(read, written, strict=True):
        assert entry["message"] == "\n".join([first, *continuations])
        assert entry["ts"] == round(T0 + ms / 1000, 3)


@given(st.binary(max_size=300))
def test_any_bytes_read_as_entries_or_a_log_file_error(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("any") / "any.log"
    path.write_bytes(data)
    with contextlib.suppress(LogFileError):
        for line_no, entry in read_file(path):
            assert line_no >= 1 and isinstance(entry, dict)
            orjson.dumps(entry)


def test_a_truncated_gzip_file_yields_its_entries_then_an_error(tmp_path: Path) -> None:
    path = tmp_path / "app.log.1.gz"
    body = "".join(f"2025-11-23T12:00:{s:02d}Z line {s}\n" for s in range(60)).encode()
    path.write_bytes(gzip.compress(body)[:-30])
    found: list[str] = []
    with pytest.raises(LogFileError, match=r"app.log.1.gz: Compressed file ended"):
        for _, entry in read_file(path):
            found.append(entry["message"])
    assert found[:10] == [f"line {s}" for s in range(10)]
