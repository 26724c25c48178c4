"""How render functions declare themselves, and the context they run in.

Each function module declares its functions with ``collect = Collector()``
and ``@collect.function(...)``; ``vigil.query.functions.FUNCTIONS`` merges the
modules into one read-only table that the evaluator calls and that
``/functions`` describes (Graphite's ``functions`` API shape).

A render function is called as ``func(ctx, *args, **kwargs)`` with
``seriesList`` arguments already evaluated to ``list[Series]`` and literals
converted to the declared Python type; it returns ``list[Series]`` (or, for
functions such as ``threshold``, a list built from nothing). It must not
mutate its input series: use ``Series.copy``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from vigil.query.series import Series
from vigil.query.source import SeriesSource

# Graphite's parameter types (graphite/functions/params.py), as /functions names them.
PARAM_TYPES = frozenset(
    {
        "seriesList",
        "seriesLists",
        "integer",
        "float",
        "string",
        "boolean",
        "interval",
        "intOrInterval",
        "node",
        "nodeOrTag",
        "tag",
        "aggFunc",
        "aggOrSeriesFunc",
        "any",
    }
)


def format_number(value: float) -> str:
    """A number as graphite-web prints a literal in a series name: ``1500``, ``2.5``."""
    number = float(value)
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


@dataclasses.dataclass(frozen=True)
class Param:
    """One declared parameter of a render function."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    multiple: bool = False
    options: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"unknown parameter type {self.type!r}")

    def describe(self) -> dict[str, Any]:
        """This parameter as Graphite's ``/functions`` JSON shows it."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.required:
            out["required"] = True
        if self.default is not None:
            out["default"] = self.default
        if self.multiple:
            out["multiple"] = True
        if self.options:
            out["options"] = list(self.options)
        return out


@dataclasses.dataclass
class RenderContext:
    """What a render function may know about the request.

    ``start``/``end`` are the request's range (epoch seconds, end exclusive),
    ``now`` the request's notion of now. ``evaluate`` evaluates a target
    expression over another range (used by timeShift, timeStack, movingX
    bootstrap); the evaluator sets it. ``max_series`` bounds every fetch.
    """

    start: int
    end: int
    now: int
    source: SeriesSource
    evaluate: Callable[[str, int, int], list[Series]]
    max_series: int = 10_000
    max_points: int = 10_000_000


RenderFunc = Callable[..., list[Series]]


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    """A render function with its declared signature."""

    name: str
    func: RenderFunc
    group: str
    params: tuple[Param, ...]

    def describe(self) -> dict[str, Any]:
        """This function as Graphite's ``/functions`` JSON shows it."""
        doc = (self.func.__doc__ or "").strip()
        return {
            "name": self.name,
            "function": f"{self.name}({', '.join(p.name for p in self.params)})",
            "description": doc,
            "module": self.func.__module__,
            "group": self.group,
            "params": [p.describe() for p in self.params],
        }


class Collector:
    """Collects the function specs declared in one module."""

    def __init__(self) -> None:
        self.specs: list[FunctionSpec] = []

    def function(
        self, name: str, group: str, params: Sequence[Param], aliases: Sequence[str] = ()
    ) -> Callable[[RenderFunc], RenderFunc]:
        """Declare ``func`` as the render function ``name`` (and its aliases)."""

        def register(func: RenderFunc) -> RenderFunc:
            for n in (name, *aliases):
                self.specs.append(FunctionSpec(n, func, group, tuple(params)))
            return func

        return register
