"""Golden cases and laws for the alias and display functions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.query.functions.golden_cases import golden_params
from tests.query.functions.test_special import check_golden
from tests.query.memsource import MemorySource
from vigil.query.functions import alias
from vigil.query.functions.registry import RenderContext
from vigil.query.series import Series

CTX = RenderContext(start=0, end=60, now=60, source=MemorySource(), evaluate=lambda e, s, u: [])


@pytest.mark.parametrize("case", golden_params([alias.collect]))
def test_golden(case: dict[str, Any]) -> None:
    check_golden(case)


rows = st.lists(
    st.lists(st.one_of(st.none(), st.integers(-100, 100).map(float)), min_size=3, max_size=3),
    min_size=1,
    max_size=5,
)


@given(rows=rows)
def test_stacked_top_is_the_sum_of_the_values_present(rows: list[list[float | None]]) -> None:
    series = [
        Series(f"s{i}", 0, 60, np.array([math.nan if v is None else v for v in row]))
        for i, row in enumerate(rows)
    ]
    top = alias.stacked(CTX, series)[-1]
    totals = np.nansum(np.array([s.values for s in series]), axis=0)
    last = series[-1].values
    np.testing.assert_array_equal(top.values, np.where(np.isnan(last), np.nan, totals))
    assert all(s.options == {} for s in series)


# Plain metric names; "true" and "false" would read as booleans inside a call.
part = st.from_regex(r"[a-z][a-z0-9_-]{0,5}", fullmatch=True).filter(
    lambda p: p not in ("true", "false")
)
paths = st.lists(part, min_size=1, max_size=6)


@given(parts=paths, data=st.data())
def test_alias_by_node_picks_the_dotted_parts(parts: list[str], data: st.DataObject) -> None:
    nodes = data.draw(st.lists(st.integers(-len(parts), len(parts) - 1), min_size=1, max_size=3))
    path = ".".join(parts)
    for name in (path, f"movingAverage({path},'5min')"):
        (renamed,) = alias.alias_by_node(CTX, [Series(name, 0, 60, np.ones(1))], *nodes)
        assert renamed.name == ".".join(parts[n] for n in nodes)
