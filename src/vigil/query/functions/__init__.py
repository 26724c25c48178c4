"""The table of render functions, merged from the function modules.

Add a module to ``_MODULES`` to make its functions callable in targets.
"""

from __future__ import annotations

from types import MappingProxyType

from vigil.query.functions import (
    alias,
    combine,
    filter,
    moving,
    sort,
    special,
    summarize,
    timers,
    timeshift,
    transform,
)
from vigil.query.functions.registry import Collector, FunctionSpec

_MODULES: tuple[Collector, ...] = (
    filter.collect,
    sort.collect,
    alias.collect,
    special.collect,
    combine.collect,
    transform.collect,
    moving.collect,
    summarize.collect,
    timeshift.collect,
    timers.collect,
)


def _table(collectors: tuple[Collector, ...]) -> MappingProxyType[str, FunctionSpec]:
    table: dict[str, FunctionSpec] = {}
    for collector in collectors:
        for spec in collector.specs:
            if spec.name in table:
                raise RuntimeError(f"render function {spec.name} declared twice")
            table[spec.name] = spec
    return MappingProxyType(table)


FUNCTIONS = _table(_MODULES)
