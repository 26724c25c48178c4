"""Tests of the mergeable timer sketch: accuracy, agreement with ddsketch, merge laws."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from ddsketch import DDSketch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vigil.sketch import (
    KEY_BIAS,
    MAPPING,
    RELATIVE_ACCURACY,
    SKETCH_SCHEMA,
    bins_of,
    grouped_quantiles,
    keys_of,
    merge_bins,
    quantiles_of,
    run_quantiles,
    sum_grouped_bins,
    values_of,
)

# Values a timer can carry: zero, or a normal float of either sign well inside the mapping.
timer_values = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-300, max_value=1e300),
    st.floats(min_value=-1e300, max_value=-1e-300),
    st.floats(min_value=-1e4, max_value=1e4, allow_subnormal=False).filter(
        lambda v: v == 0 or abs(v) > 1e-300
    ),
)
quantile = st.floats(min_value=0.0, max_value=1.0)


def within_accuracy(estimate: float, exact: float) -> bool:
    return abs(estimate - exact) <= RELATIVE_ACCURACY * abs(exact) * (1 + 1e-9)


@given(st.floats(min_value=1e-300, max_value=1e300))
def test_keys_are_the_package_mapping_keys(value: float) -> None:
    log = math.log(value) / math.log(MAPPING.gamma)
    on_a_bin_edge = abs(log - round(log)) < 1e-9
    key = int(keys_of([value])[0]) - KEY_BIAS
    assert key == MAPPING.key(value) or on_a_bin_edge


@given(st.integers(min_value=-35_000, max_value=35_000))
def test_bin_values_are_the_package_mapping_values(key: int) -> None:
    expected = MAPPING.value(key)
    assert values_of([key + KEY_BIAS])[0] == pytest.approx(expected, rel=1e-12)
    assert values_of([-(key + KEY_BIAS)])[0] == pytest.approx(-expected, rel=1e-12)


@given(st.lists(timer_values, min_size=1, max_size=50))
def test_keys_sort_like_values(values: list[float]) -> None:
    keys = keys_of(sorted(values))
    assert (np.diff(keys.astype(np.int64)) >= 0).all()
    assert keys.min() > np.iinfo(np.int32).min and keys.max() < np.iinfo(np.int32).max


@given(st.lists(timer_values, min_size=1, max_size=300), st.lists(quantile, min_size=1, max_size=5))
def test_quantiles_within_one_percent_of_exact(values: list[float], qs: list[float]) -> None:
    data = np.array(values)
    keys, counts = bins_of(data, np.ones(len(data)))
    estimates = quantiles_of(keys, counts, qs)
    exact = np.quantile(data, qs, method="lower")
    for q, estimate, truth in zip(qs, estimates, exact, strict=True):
        assert within_accuracy(estimate, truth), (q, estimate, truth)


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(timer_values, st.integers(min_value=1, max_value=20)), min_size=1, max_size=100
    ),
    st.lists(quantile, min_size=1, max_size=5),
)
def test_weighted_quantiles_match_the_ddsketch_package(
    samples: list[tuple[float, int]], qs: list[float]
) -> None:
    # Whole weights keep every cumulative count exact, so a rank that falls on a
    # bin edge is decided the same way by both (fractional weights round apart).
    reference = DDSketch(RELATIVE_ACCURACY)
    for value, weight in samples:
        reference.add(value, weight)
    values, weights = (np.array(column) for column in zip(*samples, strict=True))
    keys, counts = bins_of(values, weights)
    for q, estimate in zip(qs, quantiles_of(keys, counts, qs), strict=True):
        assert estimate == pytest.approx(reference.get_quantile_value(q), rel=1e-9, abs=1e-300)


@given(
    st.lists(timer_values, max_size=200),
    st.lists(st.integers(min_value=0, max_value=200), max_size=5),
    st.randoms(use_true_random=False),
)
def test_bins_of_a_union_are_the_merge_of_the_bins_in_any_split_and_order(
    values: list[float], cuts: list[int], random: object
) -> None:
    weights = np.linspace(1.0, 3.0, num=len(values))
    edges = [0, *sorted(min(c, len(values)) for c in cuts), len(values)]
    parts = [
        bins_of(np.array(values[a:b], dtype=np.float64), weights[a:b])
        for a, b in itertools.pairwise(edges)
    ]
    random.shuffle(parts)  # type: ignore[attr-defined]
    merged_keys, merged_counts = merge_bins(*parts)
    whole_keys, whole_counts = bins_of(np.array(values, dtype=np.float64), weights)
    assert merged_keys.tolist() == whole_keys.tolist()
    np.testing.assert_allclose(merged_counts, whole_counts, rtol=1e-12)
    # Merging is also associative: merge of merges is the same.
    half = len(parts) // 2
    nested = merge_bins(merge_bins(*parts[:half]), merge_bins(*parts[half:]))
    assert nested[0].tolist() == whole_keys.tolist()


@pytest.mark.parametrize(
    ("values", "qs", "expected"),
    [
        ([0.0, 0.0, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.0]),
        ([-0.0, 0.0], [0.5], [0.0]),
        ([-5.0], [0.0, 1.0], [-5.0, -5.0]),
        ([-2.0, 0.0, 3.0], [0.0, 0.5, 1.0], [-2.0, 0.0, 3.0]),
        ([-100.0, -1.0, 1.0, 100.0], [0.0, 0.34, 0.67, 1.0], [-100.0, -1.0, 1.0, 100.0]),
        ([1e-310, 5.0], [0.0], [0.0]),
    ],
)
def test_zero_and_negative_values(
    values: list[float], qs: list[float], expected: list[float]
) -> None:
    keys, counts = bins_of(np.array(values), np.ones(len(values)))
    for estimate, truth in zip(quantiles_of(keys, counts, qs), expected, strict=True):
        assert within_accuracy(estimate, truth)


def test_the_largest_floats_have_finite_bin_values() -> None:
    biggest = np.finfo(np.float64).max
    values = values_of(keys_of([biggest, -biggest, MAPPING.max_possible]))
    assert np.isfinite(values).all()
    assert within_accuracy(values[2], MAPPING.max_possible)


def test_zero_has_key_zero_and_signs_are_mirrored() -> None:
    assert keys_of([0.0, -0.0, 1e-320]).tolist() == [0, 0, 0]
    positive, negative = keys_of([7.5, -7.5])
    assert negative == -positive and positive > 0


def test_empty_sketch_has_no_quantiles() -> None:
    keys, counts = bins_of(np.array([]), np.array([]))
    assert len(keys) == 0
    assert np.isnan(quantiles_of(keys, counts, [0.5])).all()


def test_unsorted_duplicate_keys_are_merged_before_ranking() -> None:
    keys, _ = bins_of(np.array([10.0, 1.0]), np.ones(2))
    shuffled = quantiles_of(np.concatenate([keys[::-1], keys]), np.ones(4), [0.0, 1.0])
    assert within_accuracy(shuffled[0], 1.0) and within_accuracy(shuffled[1], 10.0)


@pytest.mark.parametrize("bad", [[float("nan")], [float("inf")], [-float("inf")]])
def test_non_finite_values_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="finite"):
        keys_of(bad)


@pytest.mark.parametrize("qs", [[-0.1], [1.5], [float("nan")]])
def test_quantiles_outside_zero_one_are_refused(qs: list[float]) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quantiles_of([KEY_BIAS], [1.0], qs)


def test_mismatched_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        bins_of(np.ones(3), np.ones(2))


@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=4), timer_values), max_size=200),
    st.lists(quantile, min_size=1, max_size=4),
)
# Found by hypothesis: the rank offset by the previous sketches' counts rounded up.
@example(samples=[(0, 0.0), (1, 0.0), (1, 1.0)], qs=[0.9999999999999999])
def test_grouped_quantiles_equal_one_sketch_at_a_time(
    samples: list[tuple[int, float]], qs: list[float]
) -> None:
    groups = np.array([g for g, _ in samples], dtype=np.int64)
    values = np.array([v for _, v in samples], dtype=np.float64)
    out_groups, keys, counts = sum_grouped_bins(groups, keys_of(values), np.ones(len(values)))
    offsets = np.searchsorted(out_groups, np.arange(6))
    table = grouped_quantiles(offsets, keys, counts, qs)
    for group in range(5):
        mine = values[groups == group]
        alone = quantiles_of(*bins_of(mine, np.ones(len(mine))), qs)
        np.testing.assert_array_equal(table[group], alone)


def test_bins_fit_the_sketch_schema() -> None:
    keys, counts = bins_of(np.array([1.0, -3.0, 0.0]), np.ones(3))
    table = pa.table(
        {"path": ["stats.timers.req"], "ts": [1700000000], "keys": [keys], "counts": [counts]},
        schema=SKETCH_SCHEMA,
    )
    assert table.column("keys").to_pylist() == [keys.tolist()]


# Rows of sorted bins (a row may be empty), grouped into sketches of one or more rows.
_row = st.lists(
    st.tuples(st.integers(min_value=-40, max_value=40), st.integers(min_value=1, max_value=5)),
    max_size=12,
).map(sorted)
_sketch_rows = st.lists(st.lists(_row, min_size=1, max_size=6), min_size=1, max_size=8)


@given(_sketch_rows, st.lists(quantile, min_size=1, max_size=4), st.randoms())
@settings(max_examples=300)
# One sketch of many short rows: their bins are summed in a histogram, not sorted.
@example(
    sketches=[[[(1, 2), (3, 1)], [(1, 1)], [(3, 4)], [(2, 1), (3, 1)]]],
    qs=[0.5, 1.0],
    rnd=random.Random(0),
)
def test_run_quantiles_equal_the_merged_sketches(
    sketches: list[list[list[tuple[int, int]]]], qs: list[float], rnd: Any
) -> None:
    # Rows lie in any order; ``rows`` lists them sketch by sketch.
    placed = [(g, r) for g, rows in enumerate(sketches) for r in rows]
    rnd.shuffle(placed)
    lengths = [len(r) for _, r in placed]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    keys = np.array([KEY_BIAS + k for _, r in placed for k, _ in r], dtype=np.int32)
    counts = np.array([c for _, r in placed for _, c in r], dtype=np.uint64)
    rows = np.array(sorted(range(len(placed)), key=lambda i: placed[i][0]), dtype=np.int64)
    starts = np.searchsorted([placed[i][0] for i in rows], np.arange(len(sketches)))
    table = run_quantiles(offsets, keys, counts, rows, starts, qs)
    for g, rows_of_g in enumerate(sketches):
        bins = [(KEY_BIAS + k, c) for r in rows_of_g for k, c in r]
        merged = quantiles_of([k for k, _ in bins], [c for _, c in bins], qs)
        np.testing.assert_array_equal(table[g], merged)
