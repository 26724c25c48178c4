"""Golden cases and laws for the sorting functions."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.query.functions.golden_cases import golden_params, run_case
from tests.query.memsource import MemorySource
from vigil.query.functions import sort
from vigil.query.functions.filter import rank_key
from vigil.query.functions.registry import RenderContext
from vigil.query.series import Series

CTX = RenderContext(start=0, end=60, now=60, source=MemorySource(), evaluate=lambda e, s, u: [])


@pytest.mark.parametrize("case", golden_params([sort.collect]))
def test_golden(case: dict[str, Any]) -> None:
    run_case(case)


names = st.lists(st.from_regex(r"[a-cA-C]{1,3}[0-9]{0,3}(\.[a-c0-9]{1,2})?", fullmatch=True))


@pytest.mark.parametrize("natural", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@given(names=names)
def test_sort_by_name_is_a_sorted_permutation(
    names: list[str], natural: bool, reverse: bool
) -> None:
    series = [Series(n, 0, 60, np.ones(1)) for n in names]
    result = sort.sort_by_name(CTX, series, natural, reverse)
    assert sorted(map(id, result)) == sorted(map(id, series))
    key = sort.natural_key if natural else str
    keys = [key(s.name) for s in result]
    assert keys == sorted(keys, reverse=reverse)


def test_natural_key_orders_numbers_by_value() -> None:
    assert sorted(["a10", "a9", "a100", "b1"], key=sort.natural_key) == ["a9", "a10", "a100", "b1"]


@given(
    rows=st.lists(
        st.lists(st.one_of(st.none(), st.integers(-5, 5).map(float)), min_size=1, max_size=4)
    ),
    func=st.sampled_from(["average", "max", "min", "sum", "last"]),
)
def test_sort_by_is_a_stable_sort_on_the_aggregate(
    rows: list[list[float | None]], func: str
) -> None:
    series = [
        Series(f"s{i}", 0, 60, np.array([math.nan if v is None else v for v in row]))
        for i, row in enumerate(rows)
    ]
    result = sort.sort_by(CTX, series, func)
    key = rank_key(func)
    assert [key(s) for s in result] == sorted(key(s) for s in series)
    for before, after in itertools.pairwise(result):
        if key(before) == key(after):
            assert series.index(before) < series.index(after)
