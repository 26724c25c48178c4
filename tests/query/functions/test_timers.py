"""timerPercentile merges timers before taking the percentile."""

from __future__ import annotations

import pytest

from tests.query.memsource import MemorySource
from vigil.query.errors import RenderError
from vigil.query.functions.registry import RenderContext
from vigil.query.functions.timers import timer_percentile


def context(source: MemorySource) -> RenderContext:
    return RenderContext(0, 120, 120, source, evaluate=lambda e, s, t: [])


def test_percentile_over_hosts_is_of_the_merged_samples_not_an_average() -> None:
    source = MemorySource(step=60)
    source.timer_samples["stats.timers.web1.lat"] = {0: [1.0, 2.0, 3.0], 60: [10.0]}
    source.timer_samples["stats.timers.web2.lat"] = {0: [100.0, 200.0, 300.0]}
    [series] = timer_percentile(context(source), "stats.timers.*.lat", 50)
    assert series.name == "timerPercentile(stats.timers.*.lat,50)"
    # Lower median of [1, 2, 3, 100, 200, 300] is 3; the mean of the two medians would be 101.
    assert series.as_list() == [3.0, 10.0]


def test_no_matching_timer_gives_no_series_and_bad_n_is_an_error() -> None:
    source = MemorySource()
    assert timer_percentile(context(source), "stats.timers.none", 99) == []
    with pytest.raises(RenderError, match="between 0 and 100"):
        timer_percentile(context(source), "x", 101)
