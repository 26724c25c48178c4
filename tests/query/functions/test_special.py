"""Golden cases and laws for generated series, events and the tag functions.

``check_golden`` extends the shared ``run_case`` with what display, tag and
event functions need: expected ``options`` and ``path_expression``, and
``events`` in the case's source (``{"when", "tags"}`` objects).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.query.functions.golden_cases import (
    _argument,
    _assert_values,
    _context,
    _source,
    golden_params,
    run_case,
)
from tests.query.memsource import MemorySource
from vigil.query.errors import RenderError
from vigil.query.functions import FUNCTIONS, special
from vigil.query.functions.registry import RenderContext
from vigil.query.series import Series
from vigil.query.source import Event


def golden_result(case: dict[str, Any]) -> list[Series]:
    """What the case's call returns, with the case's events in the source."""
    source = _source(case)
    for i, event in enumerate(case.get("source", {}).get("events", [])):
        source.event_list.append(Event(i, event["when"], "", tuple(event["tags"]), ""))
    ctx = _context(case, source)
    args = [_argument(a, case, ctx) for a in case.get("args", [])]
    kwargs = {k: _argument(v, case, ctx) for k, v in case.get("kwargs", {}).items()}
    return FUNCTIONS[case["call"]].func(ctx, *args, **kwargs)


def check_golden(case: dict[str, Any]) -> None:
    """``run_case``, then the options and path expressions, and cases with events."""
    has_events = "events" in case.get("source", {})
    if not has_events:
        run_case(case)
    if "error" in case:
        return
    result = golden_result(case)
    expected = case["expected"]
    assert [s.name for s in result] == [e["name"] for e in expected]
    for s, e in zip(result, expected, strict=True):
        if has_events:
            assert (s.start, s.step) == (e["start"], e["step"]), s.name
            _assert_values(s.as_list(), e["values"], s.name)
            assert s.consolidation == e.get("consolidation", s.consolidation)
        if "options" in e:
            assert s.options == e["options"], s.name
        if "path_expression" in e:
            assert s.path_expression == e["path_expression"], s.name


@pytest.mark.parametrize("case", golden_params([special.collect]))
def test_golden(case: dict[str, Any]) -> None:
    check_golden(case)


def _ctx(start: int = 0, end: int = 3600, source: MemorySource | None = None) -> RenderContext:
    return RenderContext(
        start=start, end=end, now=end, source=source or MemorySource(), evaluate=lambda e, s, u: []
    )


@given(
    name=st.text(min_size=1, max_size=8),
    start=st.integers(0, 10**9),
    points=st.integers(0, 200),
    step=st.sampled_from([1, 10, 60]),
)
def test_random_walk_is_repeatable_and_moves_by_at_most_half(
    name: str, start: int, points: int, step: int
) -> None:
    ctx = _ctx(start, start + points * step)
    (walk,) = special.random_walk_function(ctx, name, step)
    (again,) = special.random_walk_function(ctx, name, step)
    assert (walk.name, walk.start, walk.step, len(walk.values)) == (name, start, step, points)
    np.testing.assert_array_equal(walk.values, again.values)
    if points:
        assert walk.values[0] == 0
        assert np.all(np.abs(np.diff(walk.values)) <= 0.5)


def test_random_walk_alias_and_seed_by_name() -> None:
    ctx = _ctx(0, 6000)
    (a,) = FUNCTIONS["randomWalk"].func(ctx, "a")
    (b,) = FUNCTIONS["randomWalkFunction"].func(ctx, "b")
    assert not np.array_equal(a.values, b.values)


def test_series_by_tag_refuses_more_series_than_the_limit() -> None:
    source = MemorySource()
    for host in "abc":
        source.add(f"cpu;host={host}", 0, [1])
    ctx = _ctx(0, 60, source)
    ctx.max_series = 2
    with pytest.raises(RenderError, match="more than the limit of 2"):
        special.series_by_tag(ctx, "name=cpu")


def test_series_by_tag_quotes_expressions_holding_a_quote() -> None:
    source = MemorySource()
    source.add("cpu;owner=o'neil", 0, [1])
    (series,) = special.series_by_tag(_ctx(0, 60, source), "name=cpu", "owner=~o'n")
    assert series.path_expression == "seriesByTag('name=cpu',\"owner=~o'n\")"
