"""Backfill jobs over in-memory entries: slices, points written, progress, failures."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from vigil.cube.backfill import Backfill, read_rule_file
from vigil.cube.rulebook import RuleBook
from vigil.cube.rules import RuleSet
from vigil.model import LOGS_SCHEMA, logs_from_rows

T0 = 1_700_000_000_000
HOUR = 3_600_000

# One "status=500" line a minute over two hours, and a line that is no number.
ENTRIES = logs_from_rows(
    [{"ts": T0 + i * 60_000, "host": "web1", "message": f"status=500 t={i}"} for i in range(120)]
    + [{"ts": T0 + 30, "host": "web1", "message": "t=oops"}]
)


def read_entries(start_ms: int, end_ms: int) -> pa.Table:
    ts = ENTRIES.column("ts").cast(pa.int64())
    mask = pc.and_(pc.greater_equal(ts, start_ms), pc.less(ts, end_ms))
    return ENTRIES.filter(mask)


RULES = RuleSet.from_dicts(
    [
        {"name": "errors", "match": "status=500", "metric": "logs.{host}.errors.count"},
        {"name": "t", "match": r"t=(?P<t>\S+)", "metric": "logs.t", "value": "t"},
    ]
)


def test_backfill_writes_the_points_of_one_rule_in_slices() -> None:
    written: list[pa.Table] = []
    reads: list[tuple[int, int]] = []

    def reader(start_ms: int, end_ms: int) -> pa.Table:
        reads.append((start_ms, end_ms))
        return read_entries(start_ms, end_ms)

    backfill = Backfill(RULES, reader, written.append)
    job = backfill.start(T0, T0 + HOUR, "errors")
    progress = backfill.wait(job, timeout=10)
    assert progress["state"] == "done"
    assert progress["done_ms"] == progress["total_ms"] == HOUR
    assert progress["points"] == 60 and progress["entries"] == 61
    assert len(reads) == 6 and reads[0] == (T0, T0 + 600_000) and reads[-1][1] == T0 + HOUR
    paths = {p for t in written for p in t.column("path").to_pylist()}
    assert paths == {"logs.web1.errors.count"}


def test_backfill_of_all_rules_counts_errors() -> None:
    written: list[pa.Table] = []
    backfill = Backfill(RULES, read_entries, written.append, slice_ms=HOUR)
    progress = backfill.wait(backfill.start(T0, T0 + 2 * HOUR), timeout=10)
    assert progress["state"] == "done"
    assert progress["points"] == 240
    assert progress["errors"] == {"t": 1}
    assert backfill.jobs() == [progress]


def test_progress_is_readable_while_running(tmp_path: Path) -> None:
    book = RuleBook(None, tmp_path)
    book.add({"name": "errors", "match": "status=500", "metric": "e.count"})
    go_on = threading.Event()
    first_read = threading.Event()

    def slow_reader(start_ms: int, end_ms: int) -> pa.Table:
        if start_ms > T0:
            first_read.set()
            go_on.wait(10)
        return read_entries(start_ms, end_ms)

    backfill = Backfill(book, slow_reader, lambda points: None)
    job = backfill.start(T0, T0 + HOUR, "errors")
    assert first_read.wait(10)
    running = backfill.job(job)
    assert running["state"] == "running"
    assert running["done_ms"] == 600_000 and running["points"] == 10
    go_on.set()
    assert backfill.wait(job, timeout=10)["state"] == "done"


def test_failed_read_fails_the_job_with_its_reason() -> None:
    def broken(start_ms: int, end_ms: int) -> pa.Table:
        if start_ms >= T0 + 600_000:
            raise OSError("engine went away")
        return LOGS_SCHEMA.empty_table()

    backfill = Backfill(RULES, broken, lambda points: None)
    progress = backfill.wait(backfill.start(T0, T0 + HOUR), timeout=10)
    assert progress["state"] == "failed"
    assert progress["error"] == "OSError: engine went away"
    assert progress["done_ms"] == 600_000


def test_unknown_rule_and_empty_range_are_refused() -> None:
    backfill = Backfill(RULES, read_entries, lambda points: None)
    with pytest.raises(KeyError):
        backfill.start(T0, T0 + HOUR, "nope")
    with pytest.raises(ValueError, match="empty range"):
        backfill.start(T0, T0)
    with pytest.raises(KeyError):
        backfill.job("bf999")


def test_old_finished_jobs_are_forgotten() -> None:
    backfill = Backfill(RULES, read_entries, lambda points: None, keep=2)
    ids = []
    for _ in range(5):
        ids.append(backfill.start(T0, T0 + 1000))
        backfill.wait(ids[-1], timeout=10)
    assert [j["id"] for j in backfill.jobs()] == ids[-2:]
    with pytest.raises(KeyError):
        backfill.job(ids[0])


def test_rule_files_in_toml_and_json(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('[[rule]]\nname = "a"\nmatch = "x"\nmetric = "m"\n')
    (tmp_path / "r.json").write_text('{"name": "b", "match": "x", "metric": "m"}')
    assert [d["name"] for d in read_rule_file(tmp_path / "r.toml")] == ["a"]
    assert [d["name"] for d in read_rule_file(tmp_path / "r.json")] == ["b"]
