"""The cube's aggregator: partial cubes of a batch, and the merge law over any split."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.cube.aggregate import STRING_DIMS, _dense_ranks, partial_cubes
from vigil.model import logs_from_rows
from vigil.sketch import keys_of

T0 = 1_763_900_000  # s, a multiple of 10
STEPS = (10, 60, 3600, 86400)
DIMS = (*STRING_DIMS, "status")

Cube = dict[tuple[Any, ...], dict[str, Any]]


def merge(tables: list[pa.Table]) -> Cube:
    """Rows of partial cubes merged as the engine merges them: sums, min, max, key-wise sums."""
    out: Cube = defaultdict(
        lambda: {
            "cnt": 0,
            "errors": 0,
            "txn": 0,
            "dur_sum": 0.0,
            "dur_min": np.inf,
            "dur_max": -np.inf,
            "bins": Counter(),
        }  # fmt: skip
    )
    for t in tables:
        for row in t.to_pylist():
            acc = out[(row["ts"], *(row[d] for d in DIMS))]
            for m in ("cnt", "errors", "txn", "dur_sum"):
                acc[m] += row[m]
            acc["dur_min"] = min(acc["dur_min"], row["dur_min"])
            acc["dur_max"] = max(acc["dur_max"], row["dur_max"])
            acc["bins"].update(dict(zip(row["bins"]["keys"], row["bins"]["counts"])))
    return dict(out)


def entries(rows: list[dict[str, Any]]) -> pa.Table:
    return logs_from_rows([{"uid": i + 1, "app": "shop", **r} for i, r in enumerate(rows)])


def test_an_entry_counts_in_every_step() -> None:
    batch = entries(
        [
            {
                "ts": (T0 + 12) * 1000 + 300,
                "kind": "end",
                "host": "web1",
                "name": "GET /cart",
                "duration_ms": 17.3,
            },
            {
                "ts": (T0 + 14) * 1000,
                "kind": "atomic",
                "host": "web1",
                "name": "GET /cart",
                "status": 500,
                "duration_ms": 3.0,
            },
            {"ts": (T0 + 15) * 1000, "kind": "event", "host": "web1", "name": "GET /cart"},
            {"ts": (T0 + 15) * 1000, "kind": "begin", "host": "web1", "name": "GET /cart"},
            {"ts": (T0 + 16) * 1000, "kind": "line", "host": "web1", "message": "hello"},
        ]  # fmt: skip
    )
    cubes = partial_cubes(batch, STEPS)
    assert sorted(cubes) == list(STEPS)
    ok, failed = cubes[10].to_pylist()
    assert ok["ts"] == T0 + 10 and ok["host"] == "web1" and ok["status"] == 0
    assert (ok["cnt"], ok["errors"], ok["txn"]) == (2, 0, 1)  # the event counts, has no duration
    assert (ok["dur_sum"], ok["dur_min"], ok["dur_max"]) == (17.3, 17.3, 17.3)
    assert ok["bins"] == {"keys": [int(keys_of([17.3])[0])], "counts": [1]}
    assert (failed["status"], failed["errors"], failed["txn"]) == (500, 1, 1)
    day = cubes[86400].to_pylist()
    assert [r["ts"] for r in day] == [T0 - T0 % 86400] * 2


def test_no_cube_entries_give_no_partial_cubes() -> None:
    assert partial_cubes(entries([{"ts": T0 * 1000, "kind": "line"}]), STEPS) == {}


def test_rows_are_in_the_tables_sort_order() -> None:
    names = ["b", "a", "c", "a"]
    batch = entries(
        [{"ts": T0 * 1000, "kind": "end", "name": n, "duration_ms": 1.0} for n in names]
    )
    rows = partial_cubes(batch, (10,))[10].to_pylist()
    assert [r["name"] for r in rows] == ["a", "b", "c"]


_entry = st.fixed_dictionaries(
    {
        "second": st.integers(0, 200_000),
        "kind": st.sampled_from(["end", "atomic", "event", "begin", "line"]),
        "host": st.sampled_from(["a", "b", "c"]),
        "dc": st.sampled_from(["ams", "fra"]),
        "name": st.sampled_from(["x", "y", ""]),
        "status": st.sampled_from([0, 0, 500, -1]),
        "duration_ms": st.floats(0, 1e6, allow_nan=False),
    }
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_entry, min_size=1, max_size=60), st.data())
def test_any_split_of_a_batch_merges_to_the_whole(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Merge law: the partial cubes of the parts, merged, are the partial cube of the whole."""
    batch = entries(
        [
            {**{k: v for k, v in r.items() if k != "second"}, "ts": (T0 + r["second"]) * 1000}
            for r in rows
        ]  # fmt: skip
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=4)))
    parts = [batch.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, len(rows)])]
    parts = data.draw(st.permutations(parts))
    whole = partial_cubes(batch, STEPS)
    split = [partial_cubes(p, STEPS) for p in parts]
    for step in STEPS:
        one = merge([whole[step]] if step in whole else [])
        many = merge([cubes[step] for cubes in split if step in cubes])
        assert one.keys() == many.keys()
        for key, acc in one.items():
            other = many[key]
            assert {m: acc[m] for m in ("cnt", "errors", "txn", "dur_min", "dur_max", "bins")} == {
                m: other[m] for m in ("cnt", "errors", "txn", "dur_min", "dur_max", "bins")
            }
            assert np.isclose(acc["dur_sum"], other["dur_sum"], rtol=1e-9)
        if step in whole:  # within one partial cube a (bucket, tuple) is one row
            assert whole[step].num_rows == len(one)


@settings(max_examples=60, deadline=None)
@given(st.lists(_entry, min_size=1, max_size=60), st.sampled_from([1, 60, 3600, 200_000]))
def test_each_level_is_the_one_made_alone(rows: list[dict[str, Any]], spread: int) -> None:
    """Coarse levels come from the finer one (re-dated rows when it is one bucket): the same rows."""
    batch = entries(
        [
            {
                **{k: v for k, v in r.items() if k != "second"},
                "ts": (T0 + r["second"] % spread) * 1000,
            }
            for r in rows
        ]  # fmt: skip
    )
    together = partial_cubes(batch, STEPS)
    for step in STEPS:
        alone = partial_cubes(batch, [step])
        assert (step in together) == (step in alone)
        if step in alone:  # sums of sums: the duration's sum may differ in the last bits
            a, b = together[step], alone[step]
            assert a.drop_columns(["dur_sum"]).equals(b.drop_columns(["dur_sum"]))
            assert np.allclose(a.column("dur_sum").to_numpy(), b.column("dur_sum").to_numpy())


@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=200))
def test_dense_ranks_are_numpys_unique_first_index_and_inverse(values: list[int]) -> None:
    a = np.array(values, dtype=np.int64)
    _, first, inverse = np.unique(a, return_index=True, return_inverse=True)
    got_first, got_inverse = _dense_ranks(a)
    assert got_first.tolist() == first.tolist() and got_inverse.tolist() == inverse.tolist()
