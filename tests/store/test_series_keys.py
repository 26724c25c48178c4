"""Series keys: tag normalisation, ids in order of arrival or from the catalogue."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from vigil.store.retention import StoragePolicy
from vigil.store.series_keys import SeriesKeys, normalise


def keys_with(catalogue: dict[str, int], first_id: int = 100, max_cached: int = 1000) -> SeriesKeys:
    def lookup(paths: list[str]) -> dict[str, int]:
        return {p: catalogue[p] for p in paths if p in catalogue}

    return SeriesKeys(StoragePolicy.from_files("", ""), lookup, first_id, max_cached)


def test_tags_are_sorted() -> None:
    assert normalise("cpu;host=a;dc=x") == normalise("cpu;dc=x;host=a") == "cpu;dc=x;host=a"
    assert normalise("a.b.c") == "a.b.c"


def test_new_series_get_ids_in_arrival_order_and_known_ones_keep_theirs() -> None:
    keys = keys_with({"old.one": 7})
    ids, classes, methods, fresh = keys.encode(
        pa.array(["vigil.x.count", "a.b", "old.one", "vigil.x.count"])
    )
    assert ids.tolist() == [100, 101, 7, 100]
    assert classes.tolist() == [0, 1, 1, 0]  # the vigil schema first, then the default
    assert methods.tolist() == [1, 0, 0, 1]  # .count sums, the rest averages
    assert fresh.to_pylist() == [
        {"id": 100, "path": "vigil.x.count", "cls": 0, "m": 1},
        {"id": 101, "path": "a.b", "cls": 1, "m": 0},
    ]
    *_, again = keys.encode(pa.array(["a.b", "c;z=1;a=2", "c;a=2;z=1"]))
    assert again.to_pylist() == [{"id": 102, "path": "c;a=2;z=1", "cls": 1, "m": 0}]
    assert keys.cached("a.b") == (101, 1, 0) and keys.cached("nope") is None


def test_after_forgetting_ids_come_from_the_catalogue() -> None:
    catalogue: dict[str, int] = {}
    keys = keys_with(catalogue)
    ids, *_, fresh = keys.encode(pa.array(["a.b"]))
    catalogue.update({r["path"]: r["id"] for r in fresh.to_pylist()})
    keys.forget_all()
    again, *_, none_new = keys.encode(pa.array(["a.b"]))
    assert again.tolist() == ids.tolist() and none_new.num_rows == 0


@given(st.lists(st.sampled_from(["a", "b.c", "d;x=1;y=2", "d;y=2;x=1"]), max_size=50))
def test_equal_series_get_equal_ids_whatever_the_cache_holds(paths: list[str]) -> None:
    catalogue: dict[str, int] = {}
    keys = keys_with(catalogue, max_cached=2)
    seen: dict[str, int] = {}
    for i in range(0, len(paths), 7):
        ids, *_, fresh = keys.encode(pa.array(paths[i : i + 7], pa.string()))
        catalogue.update({r["path"]: r["id"] for r in fresh.to_pylist()})
        for path, sid in zip(paths[i : i + 7], ids.tolist(), strict=True):
            assert seen.setdefault(normalise(path), sid) == sid
