"""A node's rule book: persisted runtime rules, counters, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from vigil.cube.rulebook import RuleBook
from vigil.cube.rules import NOT_A_NUMBER
from vigil.model import logs_from_rows


def batch(*messages: str) -> pa.Table:
    return logs_from_rows(
        [{"ts": 1_700_000_000_000 + i, "message": m} for i, m in enumerate(messages)]
    )


def test_rulebook_persists_runtime_rules(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text('[[rule]]\nname = "file-rule"\nmatch = "x"\nmetric = "f.count"\n')
    book = RuleBook(rules_file, tmp_path / "state")
    book.add({"name": "api-rule", "match": "y", "metric": "a.{host}.count"})
    with pytest.raises(ValueError, match="exists"):
        book.add({"name": "file-rule", "match": "y", "metric": "a.count"})
    with pytest.raises(ValueError, match="bad regex"):
        book.add({"name": "bad", "match": "[", "metric": "a.count"})
    with pytest.raises(ValueError, match="rules file"):
        book.remove("file-rule")
    with pytest.raises(KeyError):
        book.remove("nope")

    again = RuleBook(rules_file, tmp_path / "state")
    listed = {r["name"]: r for r in again.list()}
    assert listed["api-rule"]["source"] == "api"
    assert listed["file-rule"]["source"] == "file"
    again.remove("api-rule")
    assert [r["name"] for r in RuleBook(rules_file, tmp_path / "state").list()] == ["file-rule"]


def test_rulebook_counts_points_and_errors(tmp_path: Path) -> None:
    book = RuleBook(None, tmp_path)
    book.add({"name": "t", "match": r"t=(?P<t>\S+)", "metric": "t", "value": "t"})
    book.apply(batch("t=1", "t=2", "t=x"))
    book.apply(batch("t=y"))
    (rule,) = book.list()
    assert rule["points"] == 2
    assert rule["errors"] == {NOT_A_NUMBER: 2}
    assert rule["mode"] == "re2"


def test_rulebook_is_thread_safe(tmp_path: Path) -> None:
    book = RuleBook(None, tmp_path)
    entries = batch(*["hit"] * 10)

    def worker(i: int) -> None:
        book.add({"name": f"r{i}", "match": "hit", "metric": f"r{i}.count"})
        for _ in range(5):
            book.apply(entries)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["name"] for r in book.list()) == sorted(f"r{i}" for i in range(8))
    assert len(RuleBook(None, tmp_path).list()) == 8
