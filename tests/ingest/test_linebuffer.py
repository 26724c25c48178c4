"""Framing of streams into lines, and chunking across sources."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from vigil.ingest.linebuffer import ChunkWorker, LineFramer
from vigil.model import POINTS_SCHEMA, ParseResult


@given(
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20), st.data()
)
def test_any_split_of_a_stream_gives_the_same_lines(
    lines: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    framer = LineFramer(max_line_bytes=1000)
    out = b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        got, rejects = framer.feed(stream[a:b])
        assert rejects == []
        out += got
    assert out + framer.close() == stream


def test_an_unterminated_last_line_is_kept_at_close() -> None:
    framer = LineFramer(100)
    assert framer.feed(b"a 1 2\nb 1") == (b"a 1 2\n", [])
    assert framer.close() == b"b 1\n"


def test_over_long_lines_are_rejected_and_skipped_up_to_the_next_newline() -> None:
    framer = LineFramer(max_line_bytes=10)
    lines, rejects = framer.feed(b"ok 1 2\n" + b"x" * 25)
    assert lines == b"ok 1 2\n" and [r.reason for r in rejects] == ["line longer than 10 bytes"]
    assert framer.feed(b"yyyy") == (b"", [])
    assert framer.feed(b"zz\nnext 1 2\n") == (b"next 1 2\n", [])


async def test_chunks_are_parsed_off_the_loop_and_sized() -> None:
    chunks: list[bytes] = []

    def parser(chunk: bytes, now: int) -> ParseResult:
        chunks.append(chunk)
        return ParseResult(POINTS_SCHEMA.empty_table(), [])

    seen: list[ParseResult] = []

    async def sink(result: ParseResult) -> None:
        seen.append(result)

    worker = ChunkWorker(parser, sink, chunk_bytes=10, chunk_seconds=0.01)
    for _ in range(5):
        worker.add(b"12345\n")
    await worker.flush()
    assert [len(c) for c in chunks] == [6, 6, 6, 6, 6]  # a chunk never passes chunk_bytes
    assert len(seen) == len(chunks)
    task = asyncio.create_task(worker.run())
    worker.add(b"late 1 2\n")
    await asyncio.sleep(0.1)
    task.cancel()
    assert chunks[-1] == b"late 1 2\n"


def test_udp_datagrams_are_dropped_and_reported_while_the_worker_is_overloaded() -> None:
    from vigil.ingest.listeners import LineDatagramProtocol
    from vigil.model import Reject

    async def sink(result: ParseResult) -> None:
        pass

    worker = ChunkWorker(lambda c, n: ParseResult(POINTS_SCHEMA.empty_table(), []), sink, 10, 1)
    reported: list[Reject] = []
    udp = LineDatagramProtocol(worker, reported.extend)
    for _ in range(20):
        udp.datagram_received(b"a 1 2\nb 1 2\n", ("127.0.0.1", 1))
    assert worker.overloaded
    assert sum(r.count for r in reported) == 2 * (20 - 7)  # 7 datagrams fill 8 x 10 bytes
    assert {r.reason for r in reported} == {"receive buffer full, datagram dropped"}
