"""Evaluation of parsed Graphite targets against a ``SeriesSource``.

Mirrors graphite-web's ``webapp/graphite/render/evaluator.py``: a path is
fetched from storage, a call looks its function up in
``vigil.query.functions.FUNCTIONS``, evaluates its series arguments and
calls it. Unlike graphite-web, arguments are checked against the declared
``Param`` list before the call (graphite-web only does that when
``ENFORCE_INPUT_VALIDATION`` is on), so a wrong target fails with a message
that names the function and the parameter instead of a stack trace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from vigil.query.errors import RenderError
from vigil.query.functions import FUNCTIONS
from vigil.query.functions.registry import FunctionSpec, Param, RenderContext
from vigil.query.grammar import Call, Expr, Literal, NoneLiteral, Path, parse, render
from vigil.query.series import Series
from vigil.query.source import SeriesSource
from vigil.query.timeparse import parse_interval

_SERIES_TYPES = frozenset({"seriesList", "seriesLists"})
_STRING_TYPES = frozenset({"string", "tag", "aggFunc", "aggOrSeriesFunc", "interval"})
_QUOTABLE_TYPES = _STRING_TYPES | {"intOrInterval", "nodeOrTag"}


def make_context(
    source: SeriesSource,
    start: int,
    end: int,
    now: int,
    max_series: int = 10_000,
    max_points: int = 10_000_000,
    functions: Mapping[str, FunctionSpec] = FUNCTIONS,
) -> RenderContext:
    """A render context whose ``evaluate`` re-evaluates a target over another range.

    Functions such as ``timeShift`` or ``movingAverage`` need the same
    expression over a shifted or longer range; they call
    ``ctx.evaluate(series.path_expression, start, end)`` and get the same
    limits, source and function table as the request.
    """

    def evaluate(target: str, other_start: int, other_end: int) -> list[Series]:
        shifted = dataclasses.replace(ctx, start=other_start, end=other_end)
        return evaluate_target(target, shifted, functions)

    ctx = RenderContext(start, end, now, source, evaluate, max_series, max_points)
    return ctx


def evaluate_target(
    target: str,
    ctx: RenderContext,
    functions: Mapping[str, FunctionSpec] = FUNCTIONS,
) -> list[Series]:
    """The series one ``target`` parameter names over ``[ctx.start, ctx.end)``.

    ``functions`` defaults to the merged table of render functions; tests pass
    their own. Raises ``RenderError`` for a syntax error, an unknown function,
    a bad argument, or more than ``ctx.max_series`` series.
    """
    return _Evaluation(target, ctx, functions).run(parse(target))


class _Evaluation:
    """One evaluation of one target: counts fetched series and reuses repeated fetches."""

    def __init__(
        self, target: str, ctx: RenderContext, functions: Mapping[str, FunctionSpec]
    ) -> None:
        self.target = target
        self.ctx = ctx
        self.functions = functions
        self.fetched: dict[str, list[Series]] = {}
        self.count = 0

    def run(self, expr: Expr) -> list[Series]:
        result = self.expr(expr)
        self.check_limit(len(result))
        return result

    def check_limit(self, count: int) -> None:
        limit = self.ctx.max_series
        if count > limit:
            raise RenderError(
                f"target {self.target!r} needs more than {limit} series (the max_series "
                "limit); narrow it with a more specific path or glob, e.g. "
                "servers.web1.cpu instead of servers.*.cpu"
            )

    def expr(self, node: Expr) -> list[Series]:
        if isinstance(node, Path):
            return self.fetch(node.path)
        return self.call(node)

    def fetch(self, path: str) -> list[Series]:
        if path not in self.fetched:
            found = self.ctx.source.fetch([path], self.ctx.start, self.ctx.end)
            self.count += len(found)
            self.check_limit(self.count)
            self.fetched[path] = [dataclasses.replace(s, path_expression=path) for s in found]
        return list(self.fetched[path])

    def call(self, node: Call) -> list[Series]:
        spec = self.functions.get(node.name)
        if spec is None:
            raise RenderError(
                f"unknown function {node.name} in target {self.target!r}; "
                "GET /functions lists the render functions"
            )
        args, kwargs = self.bind(spec, node)
        result: list[Series] = spec.func(self.ctx, *args, **kwargs)
        return result

    def bind(self, spec: FunctionSpec, node: Call) -> tuple[list[Any], dict[str, Any]]:
        """Match the call's arguments to the declared parameters and convert each one."""
        params = spec.params
        variadic = bool(params) and params[-1].multiple
        if not variadic and len(node.args) > len(params):
            raise RenderError(
                f"{spec.name}() takes at most {len(params)} arguments "
                f"({', '.join(p.name for p in params)}), got {len(node.args)}"
            )
        args: list[Any] = []
        given: set[str] = set()
        for i, arg in enumerate(node.args):
            param = params[min(i, len(params) - 1)]
            args.append(self.convert(spec, param, arg))
            given.add(param.name)
        by_name = {p.name: p for p in params}
        kwargs: dict[str, Any] = {}
        for key, arg in node.kwargs:
            named = by_name.get(key)
            if named is None:
                raise RenderError(
                    f"{spec.name}() has no parameter {key!r}; its parameters are "
                    f"{', '.join(p.name for p in params) or 'none'}"
                )
            if key in given:
                raise RenderError(f"{spec.name}() got parameter {key!r} twice")
            if named.multiple:
                raise RenderError(
                    f"{spec.name}(): give the values of {key!r} as positional arguments"
                )
            kwargs[key] = self.convert(spec, named, arg)
            given.add(key)
        for param in params:
            if param.required and param.name not in given:
                raise RenderError(
                    f"{spec.name}() is missing its required parameter {param.name!r} "
                    f"({_describe(param)})"
                )
        return args, kwargs

    def convert(self, spec: FunctionSpec, param: Param, arg: Expr | Literal) -> Any:
        """The Python value of one argument, checked against its parameter's type."""
        where = f"{spec.name}(): parameter {param.name!r}"
        if isinstance(arg, Path | Call):
            if param.type in _SERIES_TYPES or param.type == "any":
                return self.expr(arg)
            hint = ""
            if isinstance(arg, Path) and param.type in _QUOTABLE_TYPES:
                hint = f' (quote it: "{arg.path}")'
            raise RenderError(
                f"{where} expects {_describe(param)}, got the series expression {render(arg)}{hint}"
            )
        if isinstance(arg, NoneLiteral):
            if param.required:
                raise RenderError(f"{where} is required and cannot be None")
            return None
        value = arg.value
        check = _CHECKS.get(param.type)
        if check is None or not check(value):
            raise RenderError(f"{where} expects {_describe(param)}, got {render(arg)}")
        if param.type in ("interval", "intOrInterval") and isinstance(value, str):
            try:
                parse_interval(value)
            except RenderError as err:
                raise RenderError(f"{where}: {err}") from None
        if param.options and value not in param.options:
            raise RenderError(
                f"{where} must be one of {', '.join(map(str, param.options))}; got {render(arg)}"
            )
        return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


_CHECKS: dict[str, Callable[[object], bool]] = {
    "integer": _is_int,
    "node": _is_int,
    "float": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "string": _is_str,
    "tag": _is_str,
    "aggFunc": _is_str,
    "aggOrSeriesFunc": _is_str,
    "interval": _is_str,
    "intOrInterval": lambda v: _is_int(v) or _is_str(v),
    "nodeOrTag": lambda v: _is_int(v) or _is_str(v),
    "any": lambda v: True,
}

_DESCRIPTIONS = {
    "seriesList": "a series list (a path or a function call)",
    "seriesLists": "a series list (a path or a function call)",
    "integer": "an integer",
    "node": "a node index (an integer)",
    "float": "a number",
    "boolean": "true or false",
    "string": "a quoted string",
    "tag": "a quoted tag name",
    "aggFunc": 'an aggregation name such as "sum"',
    "aggOrSeriesFunc": 'an aggregation name such as "sum"',
    "interval": 'an interval string such as "5min"',
    "intOrInterval": 'an integer or an interval string such as "5min"',
    "nodeOrTag": "a node index or a quoted tag name",
    "any": "a value",
}


def _describe(param: Param) -> str:
    return _DESCRIPTIONS[param.type]
