"""RFC 6587 framing of syslog over TCP: any split of the stream gives the same messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.ingest.syslog_framing import SyslogFramer


def frame(message: bytes, octet: bool, crlf: bool) -> bytes:
    if octet:
        return b"%d %s" % (len(message), message)
    return message + (b"\r\n" if crlf else b"\n")


# A newline-framed message has no LF, is not empty, and neither starts like an
# octet count nor ends with the CR that framing drops.
NEWLINE_MESSAGE = st.binary(min_size=1, max_size=30).filter(
    lambda m: b"\n" not in m and not m.endswith(b"\r") and not m[:1].isdigit()
)
FRAMES = st.lists(
    st.one_of(
        st.tuples(st.binary(min_size=1, max_size=40), st.just(True), st.booleans()),
        st.tuples(NEWLINE_MESSAGE, st.just(False), st.booleans()),
    ),
    max_size=12,
)


def feed_in_pieces(framer: SyslogFramer, stream: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        out += framer.feed(stream[a:b])
    return out + framer.flush()


@given(FRAMES, st.data())
def test_any_split_of_a_stream_gives_the_same_messages(
    frames: list[tuple[bytes, bool, bool]], data: st.DataObject
) -> None:
    stream = b"".join(frame(*f) for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    expected = [message for message, _, _ in frames]
    assert feed_in_pieces(SyslogFramer(1000), stream, []) == expected
    assert feed_in_pieces(SyslogFramer(1000), stream, cuts) == expected


@given(FRAMES, st.integers(1, 25), st.data())
def test_over_long_frames_give_their_first_max_bytes_whatever_the_split(
    frames: list[tuple[bytes, bool, bool]], max_bytes: int, data: st.DataObject
) -> None:
    stream = b"".join(frame(*f) for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = SyslogFramer(max_bytes)
    expected = [message[:max_bytes] for message, _, _ in frames]
    assert feed_in_pieces(framer, stream, cuts) == expected
    assert framer.buffered == 0


def test_buffering_is_bounded_for_over_long_frames() -> None:
    framer = SyslogFramer(10)
    assert framer.feed(b"1000000 " + b"x" * 5) == []
    assert framer.feed(b"x" * 20) == [b"x" * 10]
    assert framer.buffered == 0
    assert framer.feed(b"x" * 10_000) == []
    assert framer.feed(b"x" * (1_000_000 - 10_025) + b"<13>next\n") == [b"<13>next"]
    assert framer.feed(b"y" * 25) == [b"y" * 10]
    assert framer.feed(b"y" * 10_000) == []
    assert framer.buffered == 0
    assert framer.feed(b"yy\n<13>after\n") == [b"<13>after"]


def test_flush_gives_the_unterminated_remainder() -> None:
    framer = SyslogFramer(100)
    assert framer.feed(b"<13>a\n<13>b") == [b"<13>a"]
    assert framer.buffered == 5
    assert framer.flush() == [b"<13>b"]
    assert framer.flush() == []
    assert framer.feed(b"20 <13>partial") == []
    assert framer.flush() == [b"<13>partial"]
    assert framer.feed(b"123") == []
    assert framer.flush() == [b"123"]


@pytest.mark.parametrize(
    ("stream", "messages"),
    [
        (b"5 <13>a\n", [b"<13>a"]),  # a trailing LF after a counted frame is an empty line
        (b"\n\r\n<13>a\n", [b"<13>a"]),
        (b"12345678901 x\n", [b"12345678901 x"]),  # too many digits to be a length
        (b"0 <13>a\n", [b"0 <13>a"]),  # a length never starts with 0
        (b"3x <13>a\n", [b"3x <13>a"]),
    ],
)
def test_framing_edge_cases(stream: bytes, messages: list[bytes]) -> None:
    framer = SyslogFramer(100)
    assert framer.feed(stream) + framer.flush() == messages


def test_a_framer_needs_room_for_a_byte() -> None:
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        SyslogFramer(0)
