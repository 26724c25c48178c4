"""Log entries in the embedded engine: write, replay dedupe, search, cursor, context, guards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from vigil.model import LOGS_SCHEMA, logs_from_rows
from vigil.query.logquery import LogQuery, LogQueryError, decode_cursor, parse_words
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore

from .conftest import Backend

T0 = 1_763_900_000_000  # ms


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[SqlStore]:
    s = backend(
        tmp_path_factory.mktemp("logs"), StoragePolicy.from_files("", ""), log_max_scan_rows=5000
    )
    rows: list[dict[str, Any]] = []
    for i in range(3000):
        rows.append(
            {
                "ts": T0 + i * 1000,
                "uid": 1_000_000 + i,
                "kind": "end" if i % 3 == 0 else "line",
                "host": f"web{i % 10}",
                "app": "shop" if i % 2 else "cart",
                "name": "GET /cart",
                "status": 500 if i % 100 == 0 else 0,
                "message": f"request {i} served" + (" Needle in Haystäck" if i == 1234 else ""),
                "data": {"i": str(i)},
            }
        )
    s.logs.write(logs_from_rows(rows))
    yield s
    s.close()


def search(store: SqlStore, **kw: Any) -> list[dict[str, Any]]:
    kw.setdefault("start_ms", T0)
    kw.setdefault("end_ms", T0 + 3_000_000)
    return store.logs.search(LogQuery(**kw)).entries


def test_newest_first_with_fields(store: SqlStore) -> None:
    (entry,) = search(store, limit=1)
    assert entry["message"] == "request 2999 served" and entry["ts"] == (T0 + 2_999_000) / 1000
    assert entry["data"] == {"i": "2999"} and entry["uid"] == str(1_000_000 + 2999)


def test_filters_words_and_phrases(store: SqlStore) -> None:
    hits = search(store, filters={"host": ("web4",), "app": ("cart",)}, limit=1000)
    assert len(hits) == 300 and {h["host"] for h in hits} == {"web4"}
    assert len(search(store, filters={"status": ("500",)}, limit=1000)) == 30
    words, phrases = parse_words('needle "in HAYSTÄCK"')  # case-insensitive, UTF-8 too
    (hit,) = search(store, words=words, phrases=phrases)
    assert "Needle" in hit["message"]
    assert search(store, words=("needle",), phrases=("haystäck in",)) == []


def test_cursor_pages_through_everything_once(store: SqlStore) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = store.logs.search(
            LogQuery(T0, T0 + 3_000_000, filters={"host": ("web1",)}, limit=70, cursor=cursor)
        )
        seen += [e["uid"] for e in page.entries]
        if page.next_cursor is None:
            break
        cursor = decode_cursor(page.next_cursor)
    assert len(seen) == len(set(seen)) == 300


def test_context_is_same_source_around_the_hit(store: SqlStore) -> None:
    (hit,) = search(store, words=("needle",), context=2)
    ctx = hit["context"]
    assert [e["message"] for e in ctx["before"]] == ["request 1214 served", "request 1224 served"]
    assert [e["message"] for e in ctx["after"]] == ["request 1244 served", "request 1254 served"]


def test_replay_stores_each_entry_once(store: SqlStore) -> None:
    batch = logs_from_rows([{"ts": T0 + 5_000_000, "uid": 7, "message": "once"}])
    store.logs.write(batch)
    again = logs_from_rows([{"ts": T0 + 5_000_000, "uid": 8, "message": "new"}])
    assert store.logs.write(pa.concat_tables([batch, again]), replay=True) == 1
    assert store.logs.count(T0 + 5_000_000, T0 + 5_000_001) == 2


def test_a_search_that_would_scan_too_much_says_what_to_add(store: SqlStore) -> None:
    store.logs.max_scan_rows = 100
    try:
        with pytest.raises(LogQueryError, match="narrow from/until, or add host="):
            search(store, words=("request",), start_ms=0, end_ms=T0 * 2)
    finally:
        store.logs.max_scan_rows = 5000


def test_query_validation() -> None:
    with pytest.raises(LogQueryError, match="until must be after from"):
        LogQuery(5, 5)
    with pytest.raises(LogQueryError, match="cannot filter on colour"):
        LogQuery(0, 5, filters={"colour": ("red",)})
    with pytest.raises(LogQueryError, match="q:"):
        parse_words('"unbalanced')


def test_retention_drops_old_days(store: SqlStore) -> None:
    old = T0 - 40 * 86_400_000
    store.logs.write(logs_from_rows([{"ts": old, "uid": 1}]))
    assert store.logs.count(old, old + 1) == 1
    assert store.sweep_retention(T0 // 1000) >= 1
    assert store.logs.count(old, old + 1) == 0
    assert store.logs.count(T0, T0 + 1000) == 1


def test_read_lines_gives_a_log_batch_of_line_entries(store: SqlStore) -> None:
    batch = store.logs.read_lines(T0, T0 + 10_000)
    assert batch.schema.equals(LOGS_SCHEMA)
    assert batch.column("kind").to_pylist() == ["line"] * 6  # i % 3 != 0 among i < 10
    assert batch.column("message").to_pylist()[0] == "request 1 served"
