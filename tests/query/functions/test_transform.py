"""Golden cases and laws for the Transform render functions.

Covers transform.py and the modules split from it by concept: moving.py
(moving windows), summarize.py (bucketing) and timeshift.py.
"""

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
from vigil.query.functions import moving, summarize, timeshift, transform
from vigil.query.functions.moving import moving_sum
from vigil.query.functions.registry import RenderContext
from vigil.query.functions.summarize import hitcount
from vigil.query.functions.summarize import summarize as summarize_
from vigil.query.functions.transform import (
    delay,
    derivative,
    integral,
    keep_last_value,
    offset,
    scale,
)
from vigil.query.series import Series

COLLECTORS = [m.collect for m in (transform, moving, summarize, timeshift)]


@pytest.mark.parametrize("case", golden_params(COLLECTORS))
def test_golden(case: dict[str, Any]) -> None:
    run_case(case)


def _ctx(source: MemorySource | None = None, start: int = 0, end: int = 0) -> RenderContext:
    src = source or MemorySource()
    return RenderContext(start, end, end, src, lambda e, s, u: src.fetch([e], s, u))


finite = st.floats(-1e6, 1e6, allow_nan=False)
points = st.lists(st.one_of(st.none(), finite), min_size=1, max_size=40)


def _series(values: list[float | None], step: int = 60) -> Series:
    return Series("a.b", 0, step, [math.nan if v is None else v for v in values])


@given(points, st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3))
def test_scale_by_the_inverse_is_identity(values: list[float | None], factor: float) -> None:
    s = _series(values)
    [back] = scale(_ctx(), scale(_ctx(), [s], factor), 1 / factor)
    np.testing.assert_allclose(back.values, s.values, rtol=1e-9, atol=1e-9)


@given(points, finite)
def test_offset_by_the_opposite_is_identity(values: list[float | None], shift: float) -> None:
    s = _series(values)
    [back] = offset(_ctx(), offset(_ctx(), [s], shift), -shift)
    np.testing.assert_allclose(back.values, s.values, atol=1e-6)


@given(st.lists(finite, min_size=1, max_size=40))
def test_integral_of_derivative_recovers_values_up_to_the_first(values: list[float]) -> None:
    s = _series(values)
    [total] = integral(_ctx(), derivative(_ctx(), [s]))
    np.testing.assert_allclose(total.values[1:] + values[0], values[1:], atol=1e-3)


@given(points, st.integers(0, 10))
def test_delay_there_and_back_keeps_the_middle(values: list[float | None], k: int) -> None:
    s = _series(values)
    [back] = delay(_ctx(), delay(_ctx(), [s], k), -k)
    n = len(values)
    np.testing.assert_array_equal(back.values[: max(0, n - k)], s.values[: max(0, n - k)])
    assert np.isnan(back.values[max(0, n - k) :]).all()


@given(points)
def test_keep_last_value_leaves_no_gap_after_the_first_value(values: list[float | None]) -> None:
    [kept] = keep_last_value(_ctx(), [_series(values)])
    present = np.flatnonzero(~np.isnan(kept.values))
    if present.size:
        assert not np.isnan(kept.values[present[0] :]).any()


@given(points, st.sampled_from(["2min", "5min", "90s", "1h"]))
def test_summarize_sum_keeps_the_total(values: list[float | None], interval: str) -> None:
    s = _series(values)
    [summed] = summarize_(_ctx(), [s], interval, "sum", True)
    assert np.nansum(summed.values) == pytest.approx(np.nansum(s.values), abs=1e-6)


@given(points, st.sampled_from([30, 60, 300]), st.sampled_from(["1min", "2min", "90s", "1h"]))
def test_hitcount_keeps_every_hit(values: list[float | None], step: int, interval: str) -> None:
    s = _series(values, step)
    [hits] = hitcount(_ctx(), [s], interval)
    assert np.nansum(hits.values) == pytest.approx(np.nansum(s.values) * step, rel=1e-9, abs=1e-3)


@given(st.lists(st.one_of(st.none(), st.integers(-1000, 1000)), min_size=12, max_size=12))
def test_moving_sum_of_one_point_is_the_previous_point(values: list[int | None]) -> None:
    source = MemorySource(step=60)
    source.add("a.b", 0, [None if v is None else float(v) for v in values])
    ctx = _ctx(source, 300, 720)
    [summed] = moving_sum(ctx, ctx.evaluate("a.b", 300, 720), 1)
    assert summed.start == 300
    expected = [math.nan if v is None else float(v) for v in values[4:11]]
    np.testing.assert_array_equal(summed.values, expected)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ('timeShift(movingWindow(a.b,1,"avg"),"1min")', [3.0, None, None]),
        ('timeShift(movingAverage(a.b,2,1.0),"1min")', [2.5, None, None]),
        ('timeShift(keepLastValue(a.b,1),"2min")', [3.0, None, None]),
        ('timeShift(transformNull(a.b,-1,c.d),"1min")', [-1.0, None, None]),
    ],
)
def test_results_re_evaluate_to_themselves(target: str, expected: list[float | None]) -> None:
    # timeShift fetches its input again through its path expression, which must
    # keep the arguments that the graphite-web name leaves out.
    source = MemorySource(step=60)
    source.add("a.b", 0, [1.0, 2.0, 3.0, None, None, None])
    source.add("c.d", 0, [0.0] * 4)
    ctx = make_context(source, 240, 420, 420)
    [result] = evaluate_target(target, ctx)
    assert result.as_list() == expected
