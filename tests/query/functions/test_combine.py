"""Golden cases and laws for the Combine render functions (combine.py, aggregation.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.query.functions.golden_cases import golden_params, run_case
from tests.query.memsource import MemorySource
from vigil.query.evaluator import evaluate_target, make_context
from vigil.query.functions import combine
from vigil.query.functions.aggregation import normalize
from vigil.query.functions.combine import (
    as_percent,
    average_series,
    max_series,
    min_series,
    sum_series,
)
from vigil.query.functions.registry import RenderContext
from vigil.query.series import Series


@pytest.mark.parametrize("case", golden_params([combine.collect]))
def test_golden(case: dict[str, Any]) -> None:
    run_case(case)


def _ctx() -> RenderContext:
    return RenderContext(0, 0, 0, MemorySource(), lambda expr, start, end: [])


values = st.lists(
    st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=30
)


def _series(name: str, points: list[float | None], step: int = 60, start: int = 0) -> Series:
    return Series(name, start, step, [math.nan if v is None else v for v in points])


@given(values)
def test_sum_of_one_series_is_the_series(points: list[float | None]) -> None:
    s = _series("a.b", points)
    [total] = sum_series(_ctx(), [s])
    assert total.name == "sumSeries(a.b)"
    np.testing.assert_array_equal(total.values, s.values)


@given(st.lists(values, min_size=1, max_size=5), st.randoms())
def test_sum_does_not_depend_on_order(lists: list[list[float | None]], rnd: Any) -> None:
    series = [_series(f"a.s{i}", points) for i, points in enumerate(lists)]
    shuffled = series[:]
    rnd.shuffle(shuffled)
    [a] = sum_series(_ctx(), series)
    [b] = sum_series(_ctx(), shuffled)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-9, atol=1e-6)


@given(st.lists(values, min_size=1, max_size=5))
def test_average_lies_between_min_and_max(lists: list[list[float | None]]) -> None:
    series = [_series(f"a.s{i}", points) for i, points in enumerate(lists)]
    [avg] = average_series(_ctx(), series)
    [low] = min_series(_ctx(), series)
    [high] = max_series(_ctx(), series)
    present = ~np.isnan(avg.values)
    np.testing.assert_array_equal(present, ~np.isnan(low.values))
    assert np.all(low.values[present] <= avg.values[present] + 1e-6)
    assert np.all(avg.values[present] <= high.values[present] + 1e-6)


@given(st.lists(st.floats(0.5, 1e6), min_size=2, max_size=20), st.integers(1, 5))
def test_consolidating_with_sum_keeps_the_total(points: list[float], factor: int) -> None:
    fine = Series("a.fine", 0, 60, points, consolidation="sum")
    coarse = Series("a.coarse", 0, 60 * factor, [0.0])
    grid = normalize([fine, coarse])
    assert grid.step == 60 * factor
    assert np.nansum(grid.matrix[0]) == pytest.approx(sum(points))


@given(st.lists(st.lists(st.floats(0.001, 1e6), min_size=3, max_size=3), min_size=1, max_size=6))
def test_percentages_of_the_sum_add_up_to_100(rows: list[list[float]]) -> None:
    series = [_series(f"a.s{i}", points) for i, points in enumerate(rows)]
    parts = as_percent(_ctx(), series)
    np.testing.assert_allclose(np.sum([p.values for p in parts], axis=0), 100.0)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            'movingAverage(groupByNode(s.*.cpu,1,"sum"),1)',
            {"movingAverage(h1,1)": [3.0, 3.0], "movingAverage(h2,1)": [10.0, 10.0]},
        ),
        (
            'movingSum(aggregate(s.*.cpu,"avg"),1)',
            {"movingSum(avgSeries(s.*.cpu),1)": [6.5, 6.5]},
        ),
        (
            "movingMax(percentileOfSeries(s.*.cpu,50),1)",
            {"movingMax(percentileOfSeries(s.*.cpu,50),1)": [10.0, 10.0]},
        ),
    ],
)
def test_results_re_evaluate_to_themselves(target: str, expected: dict[str, list[float]]) -> None:
    # Moving windows fetch their input again through its path expression.
    source = MemorySource(step=60)
    source.add("s.h1.cpu", 0, [3.0] * 4)
    source.add("s.h2.cpu", 0, [10.0] * 4)
    ctx = make_context(source, 120, 240, 240)
    result = evaluate_target(target, ctx)
    assert {s.name: s.as_list() for s in result} == expected
