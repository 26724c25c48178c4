"""Series keys: tag normalisation, stable ids, classes, methods and first-seen rows."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from vigil.store.retention import StoragePolicy
from vigil.store.series_keys import SeriesKeys, normalise, series_id


def test_tags_are_sorted_and_ids_are_stable() -> None:
    assert normalise("cpu;host=a;dc=x") == normalise("cpu;dc=x;host=a") == "cpu;dc=x;host=a"
    assert normalise("a.b.c") == "a.b.c"
    assert series_id("a.b") == series_id("a.b") != series_id("a.c")
    # Pinned: ids are stored, so they must not change between versions.
    assert series_id("a.b") == 0x8E0028284D8DB64E


def test_encode_keys_rows_and_reports_new_paths_once() -> None:
    keys = SeriesKeys(StoragePolicy.from_files("", ""))
    ids, classes, methods, fresh = keys.encode(pa.array(["vigil.x.count", "a.b", "vigil.x.count"]))
    assert ids[0] == ids[2] != ids[1]
    assert classes.tolist() == [0, 1, 0]  # the vigil schema first, then the default
    assert methods.tolist() == [1, 0, 1]  # .count sums, the rest averages
    assert sorted(fresh.column("path").to_pylist()) == ["a.b", "vigil.x.count"]
    *_, again = keys.encode(pa.array(["a.b", "c;z=1;a=2"]))
    assert again.column("path").to_pylist() == ["c;a=2;z=1"]
    keys.forget_all()
    *_, after = keys.encode(pa.array(["a.b"]))
    assert after.column("path").to_pylist() == ["a.b"]


@given(st.lists(st.sampled_from(["a", "b.c", "d;x=1;y=2", "d;y=2;x=1"]), max_size=50))
def test_every_row_gets_the_key_of_its_own_path(paths: list[str]) -> None:
    keys = SeriesKeys(StoragePolicy.from_files("", ""), max_cached=2)
    ids, *_ = keys.encode(pa.array(paths, pa.string()))
    assert ids.tolist() == [series_id(normalise(p)) for p in paths]
