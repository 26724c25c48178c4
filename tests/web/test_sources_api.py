"""The sources inventory over the real embedded engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from vigil.model import logs_from_rows
from vigil.store.chdb_engine import open_embedded
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore
from vigil.web.sources_api import source_routes, sources_range

NOW = 1_800_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = open_embedded(tmp_path, StoragePolicy.from_files("", ""))
    ms = NOW * 1000
    rows: list[dict[str, object]] = [
        {"ts": ms - 600_000, "uid": 1, "host": "web01", "app": "shop", "kind": "heartbeat"},
        {"ts": ms - 60_000, "uid": 2, "host": "web01", "app": "shop", "kind": "line"},
        {
            "ts": ms - 50_000,
            "uid": 3,
            "host": "web01",
            "app": "shop",
            "kind": "event",
            "name": "deploy",
        },
        {"ts": ms - 40_000, "uid": 4, "host": "db01", "app": "pg", "kind": "line"},
        {"ts": ms - 7200_000, "uid": 5, "host": "old01", "app": "shop", "kind": "line"},
    ]
    s.logs.write(logs_from_rows(rows))
    yield s
    s.close()


def test_sources_in_the_range_with_what_they_send(store: SqlStore) -> None:
    client = TestClient(Starlette(routes=source_routes(store.logs, clock=lambda: NOW)))
    got = client.get("/api/sources").json()
    assert got["from"] == NOW - 3600
    by_host = {s["host"]: s for s in got["sources"]}
    assert set(by_host) == {"web01", "db01"}
    web = by_host["web01"]
    assert web["entries"] == {"event": 1, "heartbeat": 1, "line": 1}
    assert web["names"]["event"] == ["deploy"]
    assert web["last_seen"] == NOW - 50 and web["last_heartbeat"] == NOW - 600
    assert by_host["db01"]["last_heartbeat"] is None
    wide = client.get("/api/sources", params={"from": "-3h"}).json()["sources"]
    assert {s["host"] for s in wide} == {"web01", "db01", "old01"}
    r = client.get("/api/sources", params={"from": "-30d"})
    assert r.status_code == 400 and "at most 7 days" in r.json()["error"]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"from": "yesterday-ish"}, "from/until"), ({"from": "-1h", "until": "-2h"}, "after from")],
)
def test_bad_ranges_say_why(params: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sources_range(params, NOW)
