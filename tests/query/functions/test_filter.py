"""Golden cases and laws for the series filters and the shared aggregation table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.query.functions.golden_cases import golden_params, run_case
from tests.query.memsource import MemorySource
from vigil.query.functions import alias, filter, sort, special
from vigil.query.functions.registry import RenderContext
from vigil.query.series import Series


@pytest.mark.parametrize("case", golden_params([filter.collect]))
def test_golden(case: dict[str, Any]) -> None:
    run_case(case)


CTX = RenderContext(start=0, end=600, now=600, source=MemorySource(), evaluate=lambda e, s, u: [])

# Lists with None, as graphite-web's safe functions take them.
maybe_values = st.lists(
    st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3))),
    max_size=12,
)


def _present(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _reference(name: str, values: list[float | None]) -> float | None:
    """graphite-web's definition of each aggregation, written out plainly."""
    present = _present(values)
    if name == "count":
        return len(present)
    if name == "avg_zero":
        return sum(v or 0.0 for v in values) / len(values) if values else None
    if name == "multiply":
        return math.prod(present) if values and len(present) == len(values) else None
    if not present:
        return None
    plain: dict[str, Callable[[list[float]], float]] = {
        "average": statistics.fmean,
        "median": statistics.median,
        "sum": math.fsum,
        "min": min,
        "max": max,
        "diff": lambda p: p[0] - math.fsum(p[1:]),
        "stddev": statistics.pstdev,
        "range": lambda p: max(p) - min(p),
        "last": lambda p: p[-1],
    }
    return plain[name](present)


@pytest.mark.parametrize(
    "name", sorted(set(filter.AGGREGATIONS) - {"avg", "total", "current", "rangeOf"})
)
@given(values=maybe_values)
def test_aggregation_matches_graphite_definition(name: str, values: list[float | None]) -> None:
    array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    got = float(filter.AGGREGATIONS[name](array))
    want = _reference(name, values)
    if want is None:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-6)


@given(rows=st.lists(maybe_values.filter(lambda v: len(v) == 4), min_size=1, max_size=5))
def test_aggregation_reduces_rows_like_each_row(rows: list[list[float | None]]) -> None:
    matrix = np.array([[math.nan if v is None else v for v in row] for row in rows])
    for func in filter.AGGREGATIONS.values():
        whole = func(matrix)
        each = [float(func(row)) for row in matrix]
        np.testing.assert_array_equal(whole, each)


def _series_lists(max_series: int = 6) -> st.SearchStrategy[list[Series]]:
    def build(rows: list[list[float | None]]) -> list[Series]:
        return [
            Series(f"s{i}", 0, 60, np.array([math.nan if v is None else v for v in row]))
            for i, row in enumerate(rows)
        ]

    return st.lists(maybe_values, max_size=max_series).map(build)


@given(series=_series_lists(), n=st.integers(0, 8))
def test_limit_keeps_the_first_n(series: list[Series], n: int) -> None:
    kept = filter.limit(CTX, series, n)
    assert kept == series[: min(n, len(series))]


@pytest.mark.parametrize("name", ["highestCurrent", "highestMax", "highestAverage"])
@given(series=_series_lists(), n=st.integers(0, 8))
def test_highest_keeps_a_top_subset(name: str, series: list[Series], n: int) -> None:
    spec = next(s for s in filter.collect.specs if s.name == name)
    func = {"highestCurrent": "current", "highestMax": "max", "highestAverage": "average"}[name]
    kept = spec.func(CTX, series, n)
    assert len(kept) == min(n, len(series))
    assert all(any(k is s for s in series) for k in kept)
    key = filter.rank_key(func)
    dropped = [s for s in series if not any(s is k for k in kept)]
    if kept and dropped:
        assert min(map(key, kept)) >= max(map(key, dropped))


_COMPLEMENTS = [(">", "<="), (">=", "<"), ("=", "!=")]


@pytest.mark.parametrize(("keep", "complement"), _COMPLEMENTS)
@given(series=_series_lists(), threshold=st.floats(-10, 10, allow_nan=False))
def test_filter_and_its_complement_partition_the_input(
    keep: str, complement: str, series: list[Series], threshold: float
) -> None:
    kept = filter.filter_series(CTX, series, "max", keep, threshold)
    rest = filter.filter_series(CTX, series, "max", complement, threshold)
    assert sorted(id(s) for s in kept + rest) == sorted(id(s) for s in series)


@given(series=_series_lists(), n=st.floats(-10, 10, allow_nan=False))
def test_remove_below_value_only_blanks_points_below(series: list[Series], n: float) -> None:
    for before, after in zip(series, filter.remove_below_value(CTX, series, n), strict=True):
        kept = ~np.isnan(after.values)
        assert np.all(after.values[kept] >= n)
        np.testing.assert_array_equal(after.values[kept], before.values[kept])
        assert np.all(np.isnan(before.values) | (before.values < n) | kept)


@given(values=maybe_values, n=st.floats(1, 100))
def test_percentile_is_one_of_the_values(values: list[float | None], n: float) -> None:
    got = filter.percentile(np.array([math.nan if v is None else v for v in values]), n)
    assert math.isnan(got) if not _present(values) else got in _present(values)


@pytest.mark.parametrize("module", [filter, sort, alias, special], ids=lambda m: m.__name__)
def test_descriptions_start_with_a_sentence(module: Any) -> None:
    for spec in module.collect.specs:
        first_line = spec.describe()["description"].splitlines()[0]
        assert first_line.endswith(".") and first_line[0].isupper(), spec.name
