"""The on-disk spool: round trips, order, release, recovery from torn and corrupt tails, crashes."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.bus.spool import HEADER_BYTES, Record, Spool, SpoolError, SpoolFull


def numbered(i: int, rows: int = 20) -> pa.Table:
    """A small table whose column ``i`` says which append it came from."""
    return pa.table(
        {
            "i": pa.array([i] * rows, pa.int64()),
            "name": pa.array([f"series.{i}.{j}" for j in range(rows)]),
        }
    )


def first_i(spool: Spool, record: Record) -> int:
    value = spool.read(record).column("i")[0].as_py()
    assert isinstance(value, int)
    return value


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def disk_state(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != "lock"}


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "store", cap_bytes=1 << 30, segment_bytes=4096) as s:
        yield s


# Round trips -----------------------------------------------------------------

META = {b"vigil.kind": b"metrics", b"retention": b"10s:7d,1m:90d"}

TABLES = {
    "plain": pa.table({"v": pa.array([1.5, None, -2.0]), "n": pa.array([1, 2, None], pa.int32())}),
    "timestamps": pa.table(
        {
            "utc_ms": pa.array([0, 1_700_000_000_000, None], pa.timestamp("ms", tz="UTC")),
            "naive_ns": pa.array([1, 2, 3], pa.timestamp("ns")),
            "local_s": pa.array([5, 6, 7], pa.timestamp("s", tz="Europe/Paris")),
            "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1970, 1, 1)], pa.date32()),
            "took": pa.array([1, None, 3], pa.duration("us")),
        }
    ),
    "map": pa.table(
        {
            "tags": pa.array(
                [[("host", "a"), ("dc", "x")], [], None],
                pa.map_(pa.string(), pa.string()),
            ),
            "counts": pa.array(
                [[("p99", 1.0)], None, [("p50", 0.5)]], pa.map_(pa.string(), pa.float64())
            ),
        }
    ),
    "nested": pa.table(
        {
            "l": pa.array([[1, 2], None, []], pa.list_(pa.int32())),
            "s": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "z"}]),
            "d": pa.array(["x", "y", "x"]).dictionary_encode(),
            "dec": pa.array(
                [decimal.Decimal("1.25"), None, decimal.Decimal("-3.50")], pa.decimal128(9, 2)
            ),
            "bin": pa.array([b"\x00\xff", b"", None], pa.binary()),
            "big": pa.array(["a" * 1000, "", None], pa.large_string()),
        }
    ),
    "schema_metadata": pa.table({"v": [1, 2, 3]}).replace_schema_metadata(META),
    "field_metadata": pa.table(
        {"v": [1.0]}, schema=pa.schema([pa.field("v", pa.float64(), metadata={b"unit": b"s"})])
    ),
    "empty": pa.table({"v": pa.array([], pa.int64()), "t": pa.array([], pa.string())}),
    "no_columns": pa.table({}),
    "chunked": pa.concat_tables([numbered(1), numbered(2)]),
}


@pytest.mark.parametrize("table", TABLES.values(), ids=TABLES.keys())
def test_a_table_reads_back_equal_with_its_metadata(spool: Spool, table: pa.Table) -> None:
    [record] = spool.append([table])
    got = spool.read(record)
    assert got.equals(table, check_metadata=True)
    assert got.schema.metadata == table.schema.metadata
    assert record.rows == table.num_rows and record.size > HEADER_BYTES


rows = st.lists(
    st.tuples(
        st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1)),
        st.text(max_size=20),
        st.none()
        | st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=4),
        st.none() | st.floats(allow_nan=False),
    ),
    max_size=30,
)


@given(rows=rows)
def test_any_rows_read_back_equal(
    rows: list[tuple[dt.datetime, str, dict[str, int] | None, float | None]],
) -> None:
    table = pa.table(
        {
            "t": pa.array([r[0] for r in rows], pa.timestamp("us")),
            "s": pa.array([r[1] for r in rows], pa.string()),
            "m": pa.array(
                [None if r[2] is None else list(r[2].items()) for r in rows],
                pa.map_(pa.string(), pa.int64()),
            ),
            "f": pa.array([r[3] for r in rows], pa.float64()),
        }
    ).replace_schema_metadata(META)
    with tempfile.TemporaryDirectory() as d, Spool(Path(d), 1 << 20) as spool:
        [record] = spool.append([table])
        assert spool.read(record).equals(table, check_metadata=True)


# Order, segments, release ----------------------------------------------------


def test_order_is_kept_across_many_appends_and_segment_rolls(spool: Spool) -> None:
    appended: list[Record] = []
    i = 0
    for group in [1, 3, 7, 1, 12, 2, 5] * 6:
        appended += spool.append([numbered(i + k) for k in range(group)])
        i += group
    assert spool.pending() == appended
    assert [first_i(spool, r) for r in appended] == list(range(i))
    assert all(a.offset + a.size <= b.offset for a, b in zip(appended, appended[1:]))
    files = segment_files(spool.directory)
    assert spool.stats["segments"] == len(files) > 10
    # Segments are named by their first record's offset and hold whole records.
    starts = [int(p.stem) for p in files]
    assert set(starts) <= {r.offset for r in appended}
    assert all(p.stat().st_size <= spool.segment_bytes for p in files)
    assert spool.pending_bytes == sum(r.size for r in appended) == spool.stats["appended_bytes"]


def test_a_record_bigger_than_a_segment_gets_a_segment_of_its_own(spool: Spool) -> None:
    small, big, after = spool.append([numbered(0), numbered(1, rows=5000), numbered(2)])
    assert big.size > spool.segment_bytes
    assert [int(p.stem) for p in segment_files(spool.directory)] == [
        small.offset,
        big.offset,
        after.offset,
    ]


def test_release_deletes_the_segments_wholly_before_the_cursor(spool: Spool) -> None:
    records = spool.append([numbered(i) for i in range(60)])
    segments = len(segment_files(spool.directory))
    for record in records[:30]:
        spool.release(record)
    first = int(segment_files(spool.directory)[0].stem)
    assert first <= records[30].offset < first + spool.segment_bytes
    assert len(segment_files(spool.directory)) < segments
    for record in records[30:]:
        spool.release(record)
    # Everything released: only the segment still receiving appends is left.
    assert len(segment_files(spool.directory)) == 1 == spool.stats["segments"]
    assert spool.pending() == [] and spool.pending_bytes == 0
    assert spool.stats["released_records"] == 60


def test_release_covers_every_record_before_it(spool: Spool) -> None:
    a, b, c = spool.append([numbered(0), numbered(1), numbered(2)])
    spool.release(b)
    assert spool.pending() == [c] and spool.stats["released_records"] == 2
    with pytest.raises(ValueError, match="not pending"):
        spool.release(a)
    with pytest.raises(ValueError, match="not pending"):
        spool.release(Record(c.offset, c.size + 1, c.rows))
    spool.release(c)
    assert spool.pending() == []


def test_reading_a_released_record_is_an_error(spool: Spool) -> None:
    [a] = spool.append([numbered(0)])
    spool.release(a)
    with pytest.raises(ValueError, match="not pending"):
        spool.read(a)


# Reopen and recovery ---------------------------------------------------------


def test_reopen_replays_exactly_the_unreleased_records_in_order(tmp_path: Path) -> None:
    with Spool(tmp_path, 1 << 30, segment_bytes=4096) as spool:
        records = spool.append([numbered(i) for i in range(40)])
        for record in records[:17]:
            spool.release(record)
    with Spool(tmp_path, 1 << 30, segment_bytes=4096) as spool:
        assert spool.pending() == records[17:]
        assert [first_i(spool, r) for r in spool.pending()] == list(range(17, 40))
        assert spool.stats["replayed_records"] == 23 and spool.stats["truncated_bytes"] == 0
        assert spool.pending_bytes == sum(r.size for r in records[17:])
        [new] = spool.append([numbered(40)])
        assert new.offset == records[-1].offset + records[-1].size
        spool.release(records[17])
    with Spool(tmp_path, 1 << 30, segment_bytes=4096) as spool:
        assert spool.pending() == [*records[18:], new]


def test_a_released_segment_left_by_a_crash_is_deleted_at_open(tmp_path: Path) -> None:
    with Spool(tmp_path, 1 << 30, segment_bytes=4096) as spool:
        records = spool.append([numbered(i) for i in range(30)])
        first = segment_files(tmp_path)[0]
        saved = first.read_bytes()
        for record in records[:20]:
            spool.release(record)
    assert not first.exists()
    first.write_bytes(saved)  # as if killed between persisting the cursor and deleting
    with Spool(tmp_path, 1 << 30, segment_bytes=4096) as spool:
        assert spool.pending() == records[20:]
        assert not first.exists()


def test_offsets_are_not_reused_when_segments_were_lost(tmp_path: Path) -> None:
    with Spool(tmp_path / "a", 1 << 20) as spool:
        for record in spool.append([numbered(i) for i in range(5)]):
            spool.release(record)
        cursor = record.offset + record.size
    with Spool(tmp_path / "b", 1 << 20) as spool:
        spool.append([numbered(0)])
    # b's records end before a's cursor; an empty directory has no segment at all.
    shutil.copy(tmp_path / "a" / "cursor", tmp_path / "b" / "cursor")
    shutil.copy(tmp_path / "a" / "cursor", tmp_path / "cursor")
    for directory in (tmp_path / "b", tmp_path):
        with Spool(directory, 1 << 20) as spool:
            assert spool.pending() == []
            [new] = spool.append([numbered(7)])
            assert new.offset == cursor and spool.read(new).equals(numbered(7))
        with Spool(directory, 1 << 20) as spool:
            assert spool.pending() == [new]


def test_the_spool_is_open_in_one_place_only(tmp_path: Path) -> None:
    with Spool(tmp_path, 1 << 20), pytest.raises(SpoolError, match="already open"):
        Spool(tmp_path, 1 << 20)
    Spool(tmp_path, 1 << 20).close()


def test_a_corrupt_cursor_is_reported_with_its_file(tmp_path: Path) -> None:
    with Spool(tmp_path, 1 << 20) as spool:
        spool.release(spool.append([numbered(0)])[0])
    (tmp_path / "cursor").write_bytes(b"garbage")
    with pytest.raises(SpoolError, match=r"cursor .*cursor is corrupt"):
        Spool(tmp_path, 1 << 20)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Spool(Path("unused"), 0)


SOURCE_SEGMENT = 3000  # a first segment and a last segment of several records


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Record]]:
    directory = tmp_path_factory.mktemp("source")
    with Spool(directory, 1 << 30, SOURCE_SEGMENT) as spool:
        records = spool.append([numbered(i, rows=5 + 7 * i) for i in range(12)])
    assert len(segment_files(directory)) >= 3
    return directory, records


def reopened(source: Path, work: str, damage: tuple[str, int, int | None]) -> Spool:
    """Copy ``source`` to ``work``, damage a segment and open the copy.

    ``damage`` is (segment name, position, None) to cut the file at the
    position, or (segment name, position, mask) to xor the byte there.
    """
    shutil.copytree(source, work, dirs_exist_ok=True)
    name, position, mask = damage
    path = Path(work) / name
    data = bytearray(path.read_bytes())
    if mask is None:
        del data[position:]
    else:
        data[position] ^= mask
    path.write_bytes(data)
    return Spool(Path(work), 1 << 30, SOURCE_SEGMENT)


@given(data=st.data())
def test_a_torn_tail_loses_only_the_torn_record(
    data: st.DataObject, source: tuple[Path, list[Record]]
) -> None:
    directory, records = source
    last = segment_files(directory)[-1]
    start = int(last.stem)
    cut = data.draw(st.integers(0, last.stat().st_size), label="cut")
    complete = [r for r in records if r.offset + r.size <= start + cut]
    with (
        tempfile.TemporaryDirectory() as work,
        reopened(directory, work, (last.name, cut, None)) as spool,
    ):
        assert spool.pending() == complete
        assert spool.stats["truncated_bytes"] == start + cut - (
            complete[-1].offset + complete[-1].size
        )
        assert [first_i(spool, r) for r in spool.pending()] == list(range(len(complete)))
        # The torn record's offsets are not handed out again.
        [new] = spool.append([numbered(99)])
        assert new.offset == start + cut
        assert spool.read(new).equals(numbered(99))


@given(data=st.data())
def test_a_flipped_byte_cuts_its_record_and_the_rest_of_its_segment(
    data: st.DataObject, source: tuple[Path, list[Record]]
) -> None:
    directory, records = source
    bad = data.draw(st.sampled_from(records), label="record")
    position = data.draw(st.integers(0, bad.size - 1), label="position")  # header or payload
    mask = data.draw(st.integers(1, 255), label="mask")
    segment = max(int(p.stem) for p in segment_files(directory) if int(p.stem) <= bad.offset)
    next_segment = min(
        (int(p.stem) for p in segment_files(directory) if int(p.stem) > segment), default=None
    )
    kept = [
        r
        for r in records
        if r.offset < bad.offset or (next_segment is not None and r.offset >= next_segment)
    ]
    damage = (f"{segment:020d}.seg", bad.offset - segment + position, mask)
    with tempfile.TemporaryDirectory() as work, reopened(directory, work, damage) as spool:
        assert spool.pending() == kept
        cut_end = (
            next_segment if next_segment is not None else records[-1].offset + records[-1].size
        )
        assert spool.stats["truncated_bytes"] == cut_end - bad.offset
        for record in kept:
            assert spool.read(record).equals(numbered(first_i(spool, record), rows=record.rows))


def test_corruption_after_open_fails_the_read(spool: Spool) -> None:
    a, b = spool.append([numbered(0), numbered(1)])
    path = segment_files(spool.directory)[0]
    data = bytearray(path.read_bytes())
    data[b.offset + b.size - 1] ^= 0x40
    path.write_bytes(data)
    assert spool.read(a).equals(numbered(0))
    with pytest.raises(SpoolError, match=r"00000000000000000000\.seg does not verify"):
        spool.read(b)


# Cap ---------------------------------------------------------------------------


def test_the_cap_refuses_a_whole_append_and_writes_nothing(tmp_path: Path) -> None:
    with Spool(tmp_path / "probe", 1 << 20) as probe:
        size = probe.append([numbered(0)])[0].size
    with Spool(tmp_path / "s", cap_bytes=3 * size, segment_bytes=4096) as spool:
        a, _ = spool.append([numbered(0), numbered(0)])
        before = disk_state(spool.directory)
        with pytest.raises(SpoolFull, match=rf"cap {3 * size} bytes, {2 * size} bytes unreleased"):
            spool.append([numbered(0), numbered(0)])
        assert disk_state(spool.directory) == before and spool.pending_bytes == 2 * size
        spool.append([numbered(0)])  # exactly at the cap
        with pytest.raises(SpoolFull):
            spool.append([numbered(0)])
        spool.release(a)
        spool.append([numbered(0)])
        assert spool.pending_bytes == 3 * size


# Threads and I/O errors ------------------------------------------------------------


def test_appends_from_threads_keep_each_threads_order(spool: Spool) -> None:
    def work(t: int) -> None:
        for k in range(25):
            spool.append([numbered(t * 1000 + k, rows=3)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = [first_i(spool, r) for r in spool.pending()]
    assert sorted(seen) == sorted(t * 1000 + k for t in range(4) for k in range(25))
    for t in range(4):
        assert [i for i in seen if i // 1000 == t] == [t * 1000 + k for k in range(25)]


def test_a_failed_fsync_closes_the_spool_and_reopen_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path, 1 << 20)
    [a] = spool.append([numbered(0)])

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(SpoolError, match="cannot append to spool .*reopen it"):
        spool.append([numbered(1)])
    monkeypatch.undo()
    with pytest.raises(SpoolError, match="closed"):
        spool.append([numbered(2)])
    spool.close()
    with Spool(tmp_path, 1 << 20) as again:
        # The write reached the file before the fsync failed: replayed, at least once.
        assert [first_i(again, r) for r in again.pending()] == [0, 1]
        assert again.pending()[0] == a


# A real crash --------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import pyarrow as pa

    from vigil.bus.spool import Spool

    spool = Spool(Path(sys.argv[1]), 1 << 40, 64 << 10)
    i = 0
    while True:
        t = pa.table({"i": [i] * 3000, "s": [f"series.{i}.{j}" for j in range(3000)]})
        for r in spool.append([t, t.slice(0, 10)]):
            print("A", r.offset, r.size, r.rows, flush=True)
        if i % 3 == 2:
            oldest = spool.pending()[0]
            spool.release(oldest)
            print("R", oldest.offset, oldest.size, oldest.rows, flush=True)
        i += 1
    """
)


@pytest.mark.integration
def test_every_acknowledged_record_survives_sigkill(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(60)]
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    acked: list[Record] = []
    released: list[Record] = []
    # A line cut off by the kill mid-print is not an acknowledgement.
    for line in ("".join(lines) + rest).split("\n")[:-1]:
        kind, *fields = line.split()
        (acked if kind == "A" else released).append(Record(*map(int, fields)))
    with Spool(tmp_path, 1 << 40, 64 << 10) as spool:
        pending = spool.pending()
        assert set(released).isdisjoint(pending)
        assert [r for r in acked if r not in released] == pending[: len(acked) - len(released)]
        for record in pending:
            assert spool.read(record).num_rows == record.rows
