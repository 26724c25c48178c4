"""Target evaluation: fetching paths, binding declared parameters, limits, re-evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.query.memsource import MemorySource
from vigil.query.errors import RenderError
from vigil.query.evaluator import evaluate_target, make_context
from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.series import Series
from vigil.query.timeparse import parse_interval

collect = Collector()


SERIES = Param("seriesList", "seriesList", required=True)


@collect.function("scale", "Transform", [SERIES, Param("factor", "float", required=True)])
def scale(ctx: RenderContext, series_list: list[Series], factor: float) -> list[Series]:
    """Multiply every value."""
    return [s.copy(name=f"scale({s.name},{factor})", values=s.values * factor) for s in series_list]


@collect.function(
    "label",
    "Alias",
    [
        SERIES,
        Param("name", "string", required=True),
        Param("upper", "boolean", default=False),
        Param("node", "node"),
        Param("how", "aggFunc", options=("sum", "max")),
    ],
)
def label(
    ctx: RenderContext,
    series_list: list[Series],
    name: str,
    upper: bool = False,
    node: int | None = None,
    how: str | None = None,
) -> list[Series]:
    """Rename, recording the other arguments in the name."""
    text = name.upper() if upper else name
    return [s.copy(name=f"{text}|{node}|{how}") for s in series_list]


@collect.function("shift", "Transform", [SERIES, Param("by", "interval", required=True)])
def shift(ctx: RenderContext, series_list: list[Series], by: str) -> list[Series]:
    """Re-fetch each series ``by`` earlier, through ``ctx.evaluate``."""
    offset = parse_interval(by)
    out: list[Series] = []
    for s in series_list:
        out += ctx.evaluate(s.path_expression, ctx.start + offset, ctx.end + offset)
    return out


@collect.function(
    "lists", "Combine", [Param("seriesLists", "seriesLists", required=True, multiple=True)]
)
def lists(ctx: RenderContext, *series_lists: list[Series]) -> list[Series]:
    """One series per argument, its value the number of series in that argument."""
    return [Series(f"n{i}", ctx.start, 60, [len(sl)]) for i, sl in enumerate(series_lists)]


@collect.function("window", "Calculate", [SERIES, Param("size", "intOrInterval", required=True)])
def window(ctx: RenderContext, series_list: list[Series], size: int | str) -> list[Series]:
    """Name the series after the window size as given."""
    return [s.copy(name=f"window={size!r}") for s in series_list]


FUNCTIONS = {spec.name: spec for spec in collect.specs}


class CountingSource(MemorySource):
    """A memory source that records every fetch."""

    def __init__(self) -> None:
        super().__init__(step=60)
        self.fetches: list[tuple[tuple[str, ...], int, int]] = []

    def fetch(self, patterns: Sequence[str], start: int, end: int) -> list[Series]:
        self.fetches.append((tuple(patterns), start, end))
        return super().fetch(patterns, start, end)


@pytest.fixture
def source() -> CountingSource:
    src = CountingSource()
    src.add("a.b", 0, [1, 2, 3, 4, 5, 6])
    src.add("a.c", 0, [10, None, 30, 40, 50, 60])
    src.add("s.1", 0, [1])
    src.add("s.2", 0, [2])
    src.add("s.3", 0, [3])
    return src


def _ctx(source: MemorySource, max_series: int = 100) -> RenderContext:
    return make_context(source, 180, 360, now=400, max_series=max_series, functions=FUNCTIONS)


def _run(target: str, ctx: RenderContext) -> list[Series]:
    return evaluate_target(target, ctx, FUNCTIONS)


def test_path_is_fetched_over_the_request_range(source: CountingSource) -> None:
    out = _run("a.*", _ctx(source))
    assert [s.name for s in out] == ["a.b", "a.c"]
    assert [s.path_expression for s in out] == ["a.*", "a.*"]
    assert [s.start for s in out] == [180, 180]
    assert out[0].values.tolist() == [4, 5, 6]
    assert source.fetches == [(("a.*",), 180, 360)]


def test_call_with_positional_and_keyword_arguments(source: CountingSource) -> None:
    (out,) = _run("scale(a.b, 2)", _ctx(source))
    assert out.name == "scale(a.b,2)"
    assert out.values.tolist() == [8, 10, 12]
    (named,) = _run("label(a.b, 'x', upper=true, how='max', node=-1)", _ctx(source))
    assert named.name == "X|-1|max"
    (nested,) = _run('label(scale(a.b, factor=0.5), "y", None)', _ctx(source))
    assert nested.name == "y|None|None"


def test_multiple_series_lists_and_int_or_interval(source: CountingSource) -> None:
    out = _run("lists(a.*, a.b, s.*)", _ctx(source))
    assert [s.values.tolist() for s in out] == [[2], [1], [3]]
    assert _run("window(a.b, 5)", _ctx(source))[0].name == "window=5"
    assert _run("window(a.b, '5min')", _ctx(source))[0].name == "window='5min'"


def test_repeated_path_is_fetched_once(source: CountingSource) -> None:
    _run("lists(a.b, scale(a.b, 2), a.b)", _ctx(source))
    assert source.fetches == [(("a.b",), 180, 360)]


def test_context_evaluate_uses_another_range(source: CountingSource) -> None:
    (out,) = _run("shift(a.b, '-3min')", _ctx(source))
    assert out.start == 0
    assert out.values.tolist() == [1, 2, 3]
    assert source.fetches[-1] == (("a.b",), 0, 180)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope(a.b)", "unknown function nope"),
        (
            "scale(3, 2)",
            (
                "scale(): parameter 'seriesList' expects a series list "
                "(a path or a function call), got 3"
            ),
        ),
        ("scale(a.b)", "scale() is missing its required parameter 'factor' (a number)"),
        ("scale(a.b, 2, 3)", "scale() takes at most 2 arguments (seriesList, factor), got 3"),
        (
            "scale(a.b, bogus=2)",
            "scale() has no parameter 'bogus'; its parameters are seriesList, factor",
        ),
        ("scale(a.b, 2, factor=3)", "scale() got parameter 'factor' twice"),
        ("scale(a.b, 'two')", "scale(): parameter 'factor' expects a number, got \"two\""),
        ("scale(a.b, true)", "scale(): parameter 'factor' expects a number, got true"),
        ("scale(a.b, None)", "scale(): parameter 'factor' is required and cannot be None"),
        (
            "label(a.b, x)",
            (
                "label(): parameter 'name' expects a quoted string, "
                'got the series expression x (quote it: "x")'
            ),
        ),
        ("label(a.b, 'x', 1)", "label(): parameter 'upper' expects true or false, got 1"),
        (
            "label(a.b, 'x', node=1.5)",
            "label(): parameter 'node' expects a node index (an integer), got 1.5",
        ),
        (
            "label(a.b, 'x', how='avg')",
            "label(): parameter 'how' must be one of sum, max; got \"avg\"",
        ),
        (
            "shift(a.b, 1h)",
            (
                "shift(): parameter 'by' expects an interval string such as \"5min\", "
                'got the series expression 1h (quote it: "1h")'
            ),
        ),
        ("shift(a.b, '1 hour ago')", "shift(): parameter 'by': bad interval '1 hour ago'"),
        ("window(a.b, 1.5)", "window(): parameter 'size' expects an integer or an interval string"),
        (
            "lists(seriesLists=a.b)",
            "lists(): give the values of 'seriesLists' as positional arguments",
        ),
        ("lists()", "lists() is missing its required parameter 'seriesLists'"),
        ("scale(a.b, 2", "expected ',' or ')'"),
    ],
)
def test_bad_call_names_function_and_parameter(
    source: CountingSource, target: str, message: str
) -> None:
    with pytest.raises(RenderError) as err:
        _run(target, _ctx(source))
    assert message in str(err.value)


def test_max_series_counts_every_fetch_of_a_target(source: CountingSource) -> None:
    assert len(_run("s.*", _ctx(source, max_series=3))) == 3
    with pytest.raises(RenderError) as err:
        _run("s.*", _ctx(source, max_series=2))
    assert "more than 2 series (the max_series limit)" in str(err.value)
    assert "narrow it" in str(err.value)
    with pytest.raises(RenderError, match="more than 4 series"):
        _run("lists(s.*, a.*)", _ctx(source, max_series=4))


def test_default_function_table_is_used_without_one(source: CountingSource) -> None:
    ctx = make_context(source, 180, 360, now=400)
    assert [s.name for s in evaluate_target("a.b", ctx)] == ["a.b"]
    with pytest.raises(RenderError, match="unknown function surelyNotAFunction"):
        evaluate_target("surelyNotAFunction(a.b)", ctx)
