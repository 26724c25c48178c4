"""SQL forms of the dialect: the embedded engine's, and those of servers without a feature."""

from __future__ import annotations

import dataclasses

import pytest

from vigil.store.dialect import EMBEDDED, Dialect

OLD = dataclasses.replace(EMBEDDED, simple_aggregates=False, modern_functions=False)
BINS = "Tuple(Array(Int32), Array(UInt64))"


@pytest.mark.parametrize(
    ("dialect", "forms"),
    [
        (EMBEDDED, ("SimpleAggregateFunction(sumMap, Tuple(Array(Int32), Array(UInt64)))",
                    "sumMap(bins)", "sumMap(bins)", "sumMap(bins)")),
        (OLD, ("AggregateFunction(sumMap, Array(Int32), Array(UInt64))",
               "sumMapState(bins.1, bins.2)", "sumMapMerge(bins)", "sumMapMergeState(bins)")),
    ],
)  # fmt: skip
def test_a_sum_map_of_a_tuple_column_is_kept_as_the_engine_can(
    dialect: Dialect, forms: tuple[str, str, str, str]
) -> None:
    assert (
        dialect.aggregate_type("sumMap", BINS),
        dialect.aggregate_state("sumMap", "bins"),
        dialect.aggregate_value("sumMap", "bins"),
        dialect.aggregate_remerge("sumMap", "bins"),
    ) == forms


def test_other_aggregates_keep_their_forms() -> None:
    assert EMBEDDED.aggregate_state("min", "ts", "x > 0") == "minIf(ts, x > 0)"
    assert OLD.aggregate_state("min", "ts", "x > 0") == "minStateIf(ts, x > 0)"
    assert OLD.aggregate_type("max", "Float64") == "AggregateFunction(max, Float64)"
    assert OLD.sum_map("bins") == "sumMap(bins.1, bins.2)" and EMBEDDED.sum_map("b") == "sumMap(b)"
