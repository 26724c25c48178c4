"""Loader and runner for the render functions' golden data files.

Each ``golden/<function>.json`` holds a list of hand-computed cases::

    {
      "case": "nulls are skipped",
      "series": {"a.b": {"start": 0, "step": 60, "values": [1, null]}},
      "call": "sumSeries",
      "args": [{"series": ["a.b", "a.c"]}],
      "kwargs": {},
      "expected": [{"name": "sumSeries(a.b,a.c)", "start": 0, "step": 60, "values": [3, null]}]
    }

An argument ``{"series": [names]}`` is a list of the case's input series (fresh
copies); ``{"fetch": "pattern"}`` is what the case's in-memory ``source``
returns for the request range, for functions that re-evaluate their input
through ``ctx.evaluate``. Any other JSON value is passed as is. Instead of
``expected`` a case may give ``"error"``: a substring of the RenderError.
Input series may set ``consolidation``, ``xFilesFactor``, ``path_expression``
and ``tags``; expected series may check ``tags`` and ``consolidation``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.query.memsource import MemorySource
from vigil.query.errors import RenderError
from vigil.query.functions import FUNCTIONS
from vigil.query.functions.registry import Collector, RenderContext
from vigil.query.series import Series

GOLDEN = Path(__file__).parent / "golden"


def golden_params(collectors: Iterable[Collector]) -> list[Any]:
    """One pytest param per case in the golden files named after the collectors' functions."""
    names = {spec.name for collector in collectors for spec in collector.specs}
    params = []
    for path in sorted(GOLDEN.glob("*.json")):
        if path.stem not in names:
            continue
        for index, case in enumerate(json.loads(path.read_text())):
            params.append(pytest.param(case, id=f"{path.stem}[{index}]-{case['case']}"))
    return params


def _series(name: str, spec: dict[str, Any]) -> Series:
    values = np.array([math.nan if v is None else v for v in spec["values"]], dtype=np.float64)
    return Series(
        name,
        spec["start"],
        spec["step"],
        values,
        path_expression=spec.get("path_expression", ""),
        tags=spec.get("tags", {}),
        consolidation=spec.get("consolidation", "average"),
        x_files_factor=spec.get("xFilesFactor", 0.0),
    )


def _source(case: dict[str, Any]) -> MemorySource:
    spec = case.get("source", {"step": 60, "series": {}})
    source = MemorySource(step=spec["step"])
    for path, data in spec["series"].items():
        source.add(path, data["start"], data["values"])
    return source


def _context(case: dict[str, Any], source: MemorySource) -> RenderContext:
    inputs = [_series(n, s) for n, s in case.get("series", {}).items()]
    bounds = case.get("ctx", {})
    start = bounds.get("start", min((s.start for s in inputs), default=0))
    end = bounds.get("end", max((s.end for s in inputs), default=start))

    def evaluate(expression: str, from_: int, until: int) -> list[Series]:
        return source.fetch([expression], from_, until)

    return RenderContext(start=start, end=end, now=end, source=source, evaluate=evaluate)


def _argument(value: Any, case: dict[str, Any], ctx: RenderContext) -> Any:
    if isinstance(value, dict) and "series" in value:
        return [_series(n, case["series"][n]) for n in value["series"]]
    if isinstance(value, dict) and "fetch" in value:
        return ctx.evaluate(value["fetch"], ctx.start, ctx.end)
    return value


def _assert_values(actual: list[float | None], expected: list[float | None], where: str) -> None:
    assert len(actual) == len(expected), f"{where}: {actual} != {expected}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if e is None or a is None:
            assert a is e, f"{where}[{i}]: {actual} != {expected}"
        else:
            assert a == pytest.approx(e, rel=1e-9, abs=1e-12), (
                f"{where}[{i}]: {actual} != {expected}"
            )


def run_case(case: dict[str, Any]) -> None:
    """Call the case's function and compare with its expected series or error."""
    source = _source(case)
    ctx = _context(case, source)
    args = [_argument(a, case, ctx) for a in case.get("args", [])]
    kwargs = {k: _argument(v, case, ctx) for k, v in case.get("kwargs", {}).items()}
    before = [
        (s, s.name, s.values.copy())
        for a in [*args, *kwargs.values()]
        if isinstance(a, list)
        for s in a
    ]
    func = FUNCTIONS[case["call"]].func
    if "error" in case:
        with pytest.raises(RenderError, match=case["error"]):
            func(ctx, *args, **kwargs)
        return
    result = func(ctx, *args, **kwargs)
    for s, name, values in before:
        assert s.name == name and np.array_equal(s.values, values, equal_nan=True), (
            f"input {name} was mutated"
        )
    expected = case["expected"]
    assert [s.name for s in result] == [e["name"] for e in expected]
    for s, e in zip(result, expected, strict=True):
        assert (s.start, s.step) == (e["start"], e["step"]), f"{s.name}: start/step"
        _assert_values(s.as_list(), e["values"], s.name)
        for key, value in e.get("tags", {}).items():
            assert s.tags.get(key) == value, f"{s.name}: tag {key}"
        if "consolidation" in e:
            assert s.consolidation == e["consolidation"]
