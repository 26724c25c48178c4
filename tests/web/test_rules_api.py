"""The rules API and the ``vigil rules`` client functions against it, in process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from vigil.cube.backfill import Backfill, cli_add, cli_backfill, cli_list
from vigil.cube.rulebook import RuleBook
from vigil.model import logs_from_rows
from vigil.web.rules_api import rule_routes

NOW = 1_800_000_000
ENTRIES = logs_from_rows(
    [{"ts": (NOW - 3600 + i * 60) * 1000, "message": f"took {i}ms"} for i in range(60)]
)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[TestClient, RuleBook, list[pa.Table]]]:
    book = RuleBook(None, tmp_path)
    written: list[pa.Table] = []

    def read_entries(start_ms: int, end_ms: int) -> pa.Table:
        ts = ENTRIES.column("ts").cast(pa.int64())
        mask = pc.and_(pc.greater_equal(ts, start_ms), pc.less(ts, end_ms))
        return ENTRIES.filter(mask)

    backfills = Backfill(book, read_entries, written.append)
    app = Starlette(routes=rule_routes(book, backfills, clock=lambda: float(NOW)))
    with TestClient(app) as client:
        yield client, book, written


RULE = {"name": "took", "match": r"took (?P<ms>\d+)ms", "metric": "logs.took_ms", "value": "ms"}


def test_add_list_remove(parts: tuple[TestClient, RuleBook, list[pa.Table]]) -> None:
    client, book, _ = parts
    r = client.post("/api/rules", json=RULE)
    assert r.status_code == 201 and r.json()["name"] == "took"
    r = client.post("/api/rules", json=RULE)
    assert r.status_code == 400 and "exists" in r.json()["error"]
    r = client.post("/api/rules", json={"name": "bad", "match": "(", "metric": "m"})
    assert r.status_code == 400 and "bad regex" in r.json()["error"]
    assert client.post("/api/rules", content=b"not json").status_code == 400
    answer = client.get("/api/rules").json()
    assert [r["name"] for r in answer["rules"]] == ["took"]
    assert answer["rules"][0]["errors"] == {} and answer["errors"] == []
    assert client.delete("/api/rules/took").status_code == 200
    assert client.delete("/api/rules/took").status_code == 404
    assert book.list() == []


def test_backfill_and_its_progress(parts: tuple[TestClient, RuleBook, list[pa.Table]]) -> None:
    client, book, written = parts
    client.post("/api/rules", json=RULE)
    r = client.post("/api/rules/took/backfill", json={"from": "-1h", "until": "now"})
    assert r.status_code == 202
    job = r.json()["job"]
    backfill = client.get(f"/api/rules/backfill/{job}").json()
    assert backfill["total_ms"] == 3601 * 1000
    # The job runs in its thread; wait for it through the API.
    for _ in range(200):
        backfill = client.get(f"/api/rules/backfill/{job}").json()
        if backfill["state"] != "running":
            break
        time.sleep(0.01)
    assert backfill["state"] == "done" and backfill["points"] == 60
    assert sum(t.num_rows for t in written) == 60
    assert client.get("/api/rules/backfill").json()["jobs"][0]["id"] == job
    assert client.get("/api/rules/backfill/nope").status_code == 404


@pytest.mark.parametrize(
    ("name", "body", "status", "error"),
    [
        ("nope", {"from": "-1h"}, 404, "no rule"),
        ("took", {}, 400, "from"),
        ("took", {"from": "yesterday-ish"}, 400, "bad time"),
        ("took", {"from": "-1h", "until": "-2h"}, 400, "after"),
    ],
)
def test_bad_backfill_requests(
    parts: tuple[TestClient, RuleBook, list[pa.Table]],
    name: str,
    body: dict[str, str],
    status: int,
    error: str,
) -> None:
    client, _, _ = parts
    client.post("/api/rules", json=RULE)
    r = client.post(f"/api/rules/{name}/backfill", json=body)
    assert r.status_code == status and error in r.json()["error"]


def test_cli_functions(
    parts: tuple[TestClient, RuleBook, list[pa.Table]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, _, written = parts
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "took"\nmatch = \'took (?P<ms>\\d+)ms\'\nmetric = "t"\nvalue = "ms"\n'
        '[[rule]]\nname = "bad"\nmatch = "("\nmetric = "t"\n'
    )
    assert cli_add("http://testserver", rules, http=client) == 1
    out, err = capsys.readouterr()
    assert "added took" in out and "bad regex" in err
    assert cli_list("http://testserver", http=client) == 0
    assert "took" in capsys.readouterr().out
    assert cli_backfill("http://testserver", "took", "-1h", "now", progress=False, http=client) == 0
    assert "60 points written" in capsys.readouterr().out
    assert sum(t.num_rows for t in written) == 60
    assert cli_backfill("http://testserver", "nope", "-1h", "now", progress=False, http=client) == 1
    assert "no rule named 'nope'" in capsys.readouterr().err


def test_cli_reports_an_unreachable_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_list("http://127.0.0.1:9") == 1
    assert "cannot reach" in capsys.readouterr().err


def test_reload_reads_the_rules_file_again(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "a"\nmatch = "x"\nmetric = "m.a"\n')
    book = RuleBook(rules, tmp_path / "state")
    app = Starlette(routes=rule_routes(book, Backfill(book, lambda a, b: ENTRIES, print)))
    with TestClient(app) as client:
        assert [r["name"] for r in client.get("/api/rules").json()["rules"]] == ["a"]
        rules.write_text('[[rule]]\nname = "b"\nmatch = "("\nmetric = "m.b"\n')
        answer = client.post("/api/rules/reload").json()
    assert answer["rules"] == [] and answer["errors"][0]["rule"] == "b"
