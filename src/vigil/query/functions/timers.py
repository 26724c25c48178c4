"""Percentiles of StatsD timers from their stored sketches.

A ``stats.timers.<name>.p99`` series is the p99 of one host over one flush;
averaging such series over hosts or over time is wrong. ``timerPercentile``
asks storage to merge the timers' sketches first (bins summed by the engine
per interval), then takes the percentile, so it is right over any set of
hosts and any resolution.
"""

from __future__ import annotations

from vigil.query.errors import RenderError
from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.series import Series

collect = Collector()


@collect.function(
    "timerPercentile",
    group="Combine",
    params=[
        Param("timers", "string", required=True),
        Param("n", "float", required=True),
    ],
)
def timer_percentile(ctx: RenderContext, timers: str, n: float) -> list[Series]:
    """The n-th percentile over every StatsD timer matching a quoted glob, merged exactly.

    Example: ``timerPercentile('stats.timers.*.api.latency', 99)``.
    """
    if not 0 <= n <= 100:
        raise RenderError(f"timerPercentile: n must be between 0 and 100, not {n}")
    series = ctx.source.timer_quantile(timers, ctx.start, ctx.end, n / 100)
    if series is None:
        return []
    name = f"timerPercentile({timers},{n:g})"
    return [series.copy(name=name, path_expression=f"timerPercentile('{timers}',{n:g})")]
