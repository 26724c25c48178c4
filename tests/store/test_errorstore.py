"""Error groups in the embedded engine: groups, sparklines, first/last seen, samples, merge, split."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from vigil.cube.fingerprint import errors_of
from vigil.model import logs_from_rows
from vigil.store.errorstore import ErrorStore
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore

from .conftest import Backend

T0 = 1_763_900_000_000  # ms
HOUR = 3_600_000


def keyerror(host: str, request: str) -> str:
    return (
        f"request {request} failed\n"
        "Traceback (most recent call last):\n"
        f'  File "/srv/{host}/shop/cart.py", line 12, in add\n'
        "    price = prices[sku]\n"
        "KeyError: 'sku'"
    )


def go_panic(goroutine: int) -> str:
    return (
        "panic: runtime error: index out of range [5] with length 3\n\n"
        f"goroutine {goroutine} [running]:\n"
        f"main.handle(0xc0000{goroutine:x})\n"
        f"\t/build/shop/main.go:{goroutine} +0x1d"
    )


def ingest(s: SqlStore, errors: ErrorStore, rows: list[dict[str, Any]]) -> None:
    batch = logs_from_rows(rows)
    s.logs.write(batch)
    errors.write(errors_of(batch))


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[tuple[SqlStore, ErrorStore]]:
    s = backend(tmp_path_factory.mktemp("errors"), StoragePolicy.from_files("", ""))
    errors = s.errors
    rows: list[dict[str, Any]] = []
    # A KeyError from 3 hosts every 10 minutes over 2 hours, one a day before too.
    rows.append({"ts": T0 - 24 * HOUR, "uid": 1, "host": "web9", "message": keyerror("web9", "0")})
    for i in range(12):
        host = f"web{i % 3}"
        rows.append(
            {"ts": T0 + i * 600_000, "uid": 10 + i, "host": host, "app": "shop", "dc": "ams",
             "message": keyerror(host, f"{i:04x}"), "data": {"i": str(i)}}
        )  # fmt: skip
    # A Go panic on one host, 3 times in the second hour.
    for i in range(3):
        rows.append(
            {"ts": T0 + HOUR + i * 1000, "uid": 100 + i, "host": "api1", "app": "orders",
             "dc": "fra", "message": go_panic(17 + i)}
        )  # fmt: skip
    # Failed transactions and error lines.
    rows += [
        {"ts": T0 + 5_000, "uid": 200, "host": "web1", "app": "shop", "kind": "end",
         "type": "URL", "name": "GET /cart", "status": 503},
        {"ts": T0 + 6_000, "uid": 201, "host": "web2", "app": "shop", "severity": 3,
         "message": "disk /data1 full on 10.0.0.1"},
        {"ts": T0 + 7_000, "uid": 202, "host": "web3", "app": "shop", "severity": 3,
         "message": "disk /data7 full on 10.0.0.9"},
        {"ts": T0 + 8_000, "uid": 203, "host": "web3", "app": "shop", "message": "all fine"},
    ]  # fmt: skip
    ingest(s, errors, rows)
    s.write_event((T0 + 30 * 60_000) / 1000, "deploy shop 1.4.2", ["deploy", "shop"], "")
    s.write_event((T0 - 5 * HOUR) / 1000, "deploy shop 1.4.1", ["deploy"], "")
    yield s, errors
    s.close()


def by_title(errors: ErrorStore, **kw: Any) -> dict[str, dict[str, Any]]:
    kw.setdefault("start_ms", T0)
    kw.setdefault("end_ms", T0 + 2 * HOUR)
    return {g["title"]: g for g in errors.groups(**kw)}


def test_groups_count_and_order(stores: tuple[SqlStore, ErrorStore]) -> None:
    _, errors = stores
    groups = errors.groups(T0, T0 + 2 * HOUR)
    assert [(g["title"], g["count"]) for g in groups] == [
        ("KeyError: 'sku'", 12),
        ("panic: runtime error: index out of range", 3),
        ("disk /data<n> full on <ip>", 2),
        ("URL GET /cart status 503", 1),
    ]
    key = groups[0]
    assert key["hosts"] == ["web0", "web1", "web2"] and key["apps"] == ["shop"]
    assert len(key["id"]) == 16 and int(key["id"], 16)


def test_sparkline_and_first_last_seen_over_all_time(stores: tuple[SqlStore, ErrorStore]) -> None:
    _, errors = stores
    groups = by_title(errors, buckets=4)
    key = groups["KeyError: 'sku'"]
    assert key["sparkline"] == [3, 3, 3, 3]  # 30-minute buckets
    assert key["first_seen"] == (T0 - 24 * HOUR) / 1000  # before the range
    assert key["last_seen"] == (T0 + 11 * 600_000) / 1000
    assert groups["panic: runtime error: index out of range"]["sparkline"] == [0, 0, 3, 0]


def test_filters_and_limit(stores: tuple[SqlStore, ErrorStore]) -> None:
    _, errors = stores
    assert list(by_title(errors, filters={"app": "orders"})) == [
        "panic: runtime error: index out of range"
    ]
    assert list(by_title(errors, filters={"host": "web3"})) == ["disk /data<n> full on <ip>"]
    assert len(errors.groups(T0, T0 + 2 * HOUR, limit=2)) == 2
    assert errors.groups(T0 + 3 * HOUR, T0 + 4 * HOUR) == []
    with pytest.raises(ValueError, match="cannot filter error groups on 'colour'"):
        errors.groups(T0, T0 + 1, {"colour": "red"})
    with pytest.raises(ValueError, match="end of the range"):
        errors.groups(T0, T0)


def test_group_has_sample_members_and_events(stores: tuple[SqlStore, ErrorStore]) -> None:
    _, errors = stores
    gid = by_title(errors)["KeyError: 'sku'"]["id"]
    group = errors.group(gid, T0, T0 + 2 * HOUR)
    assert group is not None and group["count"] == 12 and group["fingerprints"] == [gid]
    sample = group["sample"]
    assert sample["uid"] == "21" and sample["data"] == {"i": "11"}
    assert "Traceback" in sample["message"] and sample["message"].endswith("KeyError: 'sku'")
    assert [e["what"] for e in group["events"]] == []  # first seen a day earlier: no deploy then
    panic = errors.group(
        by_title(errors)["panic: runtime error: index out of range"]["id"], T0, T0 + 2 * HOUR
    )
    assert panic is not None
    assert [e["what"] for e in panic["events"]] == ["deploy shop 1.4.2"]
    assert panic["events"][0]["tags"] == ["deploy", "shop"]


def test_unknown_group_and_bad_ids(stores: tuple[SqlStore, ErrorStore]) -> None:
    _, errors = stores
    assert errors.group("00000000000000ff", T0, T0 + HOUR) is None
    with pytest.raises(ValueError, match="16 hex digits"):
        errors.group("not-hex", T0, T0 + HOUR)
    # A group with nothing in the range is still found, with its all-time figures.
    gid = by_title(errors)["KeyError: 'sku'"]["id"]
    quiet = errors.group(gid, T0 + 5 * HOUR, T0 + 6 * HOUR)
    assert quiet is not None and quiet["count"] == 0 and quiet["title"] == "KeyError: 'sku'"


def test_merge_sticks_across_new_occurrences_and_split_undoes_it(
    tmp_path_factory: pytest.TempPathFactory, stores: tuple[SqlStore, ErrorStore]
) -> None:
    s, errors = stores
    disk = "disk /data<n> full on <ip>"
    url = "URL GET /cart status 503"
    groups = by_title(errors)
    a, b = groups[disk]["id"], groups[url]["id"]
    assert errors.merge([a, b]) == a
    merged = by_title(errors)
    assert url not in merged and merged[disk]["count"] == 3
    assert merged[disk]["hosts"] == ["web1", "web2", "web3"]
    members = errors.group(a, T0, T0 + 2 * HOUR)
    assert members is not None and members["fingerprints"] == sorted([a, b])
    assert errors.group(b, T0, T0 + 2 * HOUR) == members  # the old id finds the merged group

    # New occurrences of the merged-away fingerprint still count for the merged group.
    ingest(s, errors, [{"ts": T0 + 9_000, "uid": 300, "host": "web4", "app": "shop",
                        "kind": "end", "type": "URL", "name": "GET /cart", "status": 503}])  # fmt: skip
    merged = by_title(errors)
    assert url not in merged and merged[disk]["count"] == 4

    errors.split(a, b)
    split = by_title(errors)
    assert split[disk]["count"] == 2 and split[url]["count"] == 2
    assert split[url]["id"] == b

    with pytest.raises(ValueError, match="is not in error group"):
        errors.split(a, b)
    with pytest.raises(ValueError, match="unknown error group"):
        errors.merge([a, "00000000000000ff"])


def test_splitting_the_root_keeps_the_rest_together(stores: tuple[SqlStore, ErrorStore]) -> None:
    s, errors = stores
    base = T0 + 20 * HOUR
    ingest(s, errors, [
        {"ts": base + i, "uid": 400 + i, "host": "h", "app": "x", "status": 1, "message": m}
        for i, m in enumerate(["alpha broke", "beta broke", "gamma broke"])
    ])  # fmt: skip
    ids = {g["title"]: g["id"] for g in errors.groups(base, base + HOUR)}
    root = errors.merge([ids["alpha broke"], ids["beta broke"], ids["gamma broke"]])
    assert root == ids["alpha broke"]
    assert [g["count"] for g in errors.groups(base, base + HOUR)] == [3]
    errors.split(root, root)
    counts = sorted(g["count"] for g in errors.groups(base, base + HOUR))
    assert counts == [1, 2]
    with pytest.raises(ValueError, match="nothing to split"):
        errors.split(root, root)
