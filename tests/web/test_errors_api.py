"""The error groups API over a real embedded store: list, one group, merge, split, bad requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from vigil.cube.fingerprint import errors_of
from vigil.model import logs_from_rows
from vigil.store.chdb_engine import open_embedded
from vigil.store.errorstore import ErrorStore, create_statements
from vigil.store.retention import StoragePolicy
from vigil.web.errors_api import error_routes

NOW = 1_763_900_000.0  # s
T0 = int(NOW * 1000) - 3_600_000  # an hour ago, ms


def npe(host: str, thread: int) -> str:
    return (
        f"java.lang.NullPointerException: cart {thread} on {host}\n"
        f"\tat com.example.shop.Cart.total(Cart.java:{thread})\n"
        "\tat com.example.shop.CartController.show(CartController.java:55)"
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    s = open_embedded(tmp_path_factory.mktemp("errors_api"), StoragePolicy.from_files("", ""))
    for stmt in create_statements():
        s._conn().execute(stmt)
    errors = ErrorStore(
        s._query, lambda t, rows: s._insert(t.removeprefix("vigil."), rows, "errors")
    )
    rows: list[dict[str, Any]] = [
        {"ts": T0 + i * 60_000, "uid": i + 1, "host": f"web{i % 4}", "app": "shop",
         "message": npe(f"web{i % 4}", 100 + i)}
        for i in range(8)
    ]  # fmt: skip
    rows += [
        {"ts": T0 + 30_000, "uid": 50, "host": "db1", "app": "billing", "severity": 2,
         "message": "replica 3 lagging 120 s"},
        {"ts": T0 + 40_000, "uid": 51, "host": "db2", "app": "billing", "severity": 2,
         "message": "ledger mismatch for invoice 99"},
    ]  # fmt: skip
    batch = logs_from_rows(rows)
    s.logs.write(batch)
    errors.write(errors_of(batch))
    app = Starlette(routes=error_routes(errors, lambda: NOW))
    with TestClient(app) as c:
        yield c
    s.close()


def titles(client: TestClient, **params: str) -> dict[str, dict[str, Any]]:
    r = client.get("/api/errors", params=params)
    assert r.status_code == 200, r.text
    return {g["title"]: g for g in r.json()["groups"]}


def test_list_groups_with_defaults_and_filters(client: TestClient) -> None:
    groups = titles(client)  # from=-24h by default
    npe_group = groups["java.lang.NullPointerException: cart <n> on web<n>"]
    assert npe_group["count"] == 8 and npe_group["hosts"] == ["web0", "web1", "web2", "web3"]
    assert npe_group["first_seen"] == T0 / 1000 and len(npe_group["sparkline"]) == 30
    assert set(titles(client, app="billing")) == {
        "replica <n> lagging <n> s",
        "ledger mismatch for invoice <n>",
    }
    assert titles(client, host="nowhere") == {}
    spark = titles(client, **{"from": "-2h", "buckets": "2"})
    assert spark["replica <n> lagging <n> s"]["sparkline"] == [0, 1]


def test_one_group_has_its_sample_with_the_stack(client: TestClient) -> None:
    gid = titles(client)["java.lang.NullPointerException: cart <n> on web<n>"]["id"]
    r = client.get(f"/api/errors/{gid}", params={"from": "-2h"})
    assert r.status_code == 200
    group = r.json()
    assert (
        group["sample"]["uid"] == "8"
        and "\tat com.example.shop.Cart.total" in group["sample"]["message"]
    )
    assert group["fingerprints"] == [gid] and group["events"] == []
    assert client.get("/api/errors/00000000000000ff").status_code == 404


def test_merge_then_split(client: TestClient) -> None:
    groups = titles(client, app="billing")
    a = groups["replica <n> lagging <n> s"]["id"]
    b = groups["ledger mismatch for invoice <n>"]["id"]
    r = client.post("/api/errors/merge", json={"ids": [a, b]})
    assert r.status_code == 200 and r.json() == {"id": a}
    merged = titles(client, app="billing")
    assert (
        list(merged) == ["replica <n> lagging <n> s"]
        and merged["replica <n> lagging <n> s"]["count"] == 2
    )
    r = client.post(f"/api/errors/{a}/split", json={"fingerprint": b})
    assert r.status_code == 200 and r.json() == {"id": a, "fingerprint": b}
    assert len(titles(client, app="billing")) == 2


@pytest.mark.parametrize(
    ("method", "path", "kw", "message"),
    [
        ("get", "/api/errors", {"params": {"from": "yesterday-ish"}}, "from/until"),
        (
            "get",
            "/api/errors",
            {"params": {"from": "-1h", "until": "-2h"}},
            "until must be after from",
        ),
        ("get", "/api/errors", {"params": {"limit": "many"}}, "limit must be an integer"),
        ("get", "/api/errors", {"params": {"buckets": "0"}}, "buckets must be between"),
        ("get", "/api/errors/zzz", {}, "16 hex digits"),
        ("post", "/api/errors/merge", {"content": b"nope"}, "JSON object"),
        ("post", "/api/errors/merge", {"json": {"ids": ["a"]}}, "at least two"),
        ("post", "/api/errors/merge", {"json": {"ids": ["ab", "cd"]}}, "unknown error group"),
        ("post", "/api/errors/00000000000000ab/split", {"json": {}}, '"fingerprint"'),
    ],
)
def test_bad_requests_say_what_to_change(
    client: TestClient, method: str, path: str, kw: dict[str, Any], message: str
) -> None:
    r = getattr(client, method)(path, **kw)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]
