"""Render functions that draw a series' past over the requested range: timeShift, timeStack.

Both evaluate the input's path expression again over the shifted range
(``ctx.evaluate``) and relabel the result with the first input series' start,
so last week's curve lies over this week's. A shift without a sign goes back
in time (``"1d"`` means ``"-1d"``), as in graphite-web.
"""

from __future__ import annotations

import time

from vigil.query.functions.registry import Collector, Param, RenderContext
from vigil.query.functions.transform import derived, reevaluate
from vigil.query.series import Series
from vigil.query.timeparse import parse_interval

collect = Collector()

_SERIES_LIST = Param("seriesList", "seriesList", required=True)


def _backwards(shift: str) -> str:
    """A shift with its implied minus sign made explicit: ``1d`` -> ``-1d``."""
    return "-" + shift if shift[:1].isdigit() else shift


def _dst_correction(ctx: RenderContext, start: int, end: int) -> int:
    """Seconds to add to a shifted range so that it lines up across a DST change.

    Only when the request lies wholly in daylight saving time and the shifted
    range wholly outside it (or the other way round), as graphite-web's
    ``alignDST``; in the server's local time zone.
    """

    def dst(ts: int) -> bool:
        return time.localtime(ts).tm_isdst > 0

    request = (dst(ctx.start), dst(ctx.end))
    shifted = (dst(start), dst(end))
    if request == (True, True) and shifted == (False, False):
        return 3600
    if request == (False, False) and shifted == (True, True):
        return -3600
    return 0


def _relabelled(
    shifted: Series, first: Series, name: str, tags: dict[str, object], reset_end: bool
) -> Series:
    """A shifted series moved onto the first input's start, optionally cut at its end."""
    values = shifted.values
    if reset_end:
        values = values[: -(-(first.end - first.start) // shifted.step)]
    return derived(shifted, name, values, tags, start=first.start)


@collect.function(
    "timeShift",
    "Transform",
    [
        _SERIES_LIST,
        Param("timeShift", "interval", required=True),
        Param("resetEnd", "boolean", default=True),
        Param("alignDST", "boolean", default=False),
    ],
)
def time_shift(
    ctx: RenderContext,
    seriesList: list[Series],
    timeShift: str,
    resetEnd: bool = True,
    alignDST: bool = False,
) -> list[Series]:
    """Draw the series as they were a time interval ago (or ahead, with ``+``).

    ``timeShift(Sales.widgets.largeBlue,"7d")`` overlays last week. The shifted
    series end where the input ends unless ``resetEnd`` is false;
    ``alignDST`` corrects the shift by an hour when exactly one of the two
    ranges is in daylight saving time.
    """
    if not seriesList:
        return []
    shift = _backwards(timeShift)
    delta = parse_interval(shift)
    start, end = ctx.start + delta, ctx.end + delta
    if alignDST:
        correction = _dst_correction(ctx, start, end)
        start, end = start + correction, end + correction
    return [
        _relabelled(
            s, seriesList[0], f'timeShift({s.name}, "{shift}")', {"timeShift": shift}, resetEnd
        )
        for s in reevaluate(ctx, seriesList, start, end)
    ]


@collect.function(
    "timeStack",
    "Transform",
    [
        _SERIES_LIST,
        Param("timeShiftUnit", "interval", default="1d"),
        Param("timeShiftStart", "integer", default=0),
        Param("timeShiftEnd", "integer", default=7),
    ],
)
def time_stack(
    ctx: RenderContext,
    seriesList: list[Series],
    timeShiftUnit: str = "1d",
    timeShiftStart: int = 0,
    timeShiftEnd: int = 7,
) -> list[Series]:
    """Draw the series shifted by each multiple of a unit from start to end (exclusive).

    ``timeStack(Sales.widgets.largeBlue,"1d",0,7)`` gives today and each of
    the six days before, named ``timeShift(Sales.widgets.largeBlue, -1d, 3)``;
    useful to feed ``averageSeries``.
    """
    if not seriesList:
        return []
    unit = _backwards(timeShiftUnit)
    delta = parse_interval(unit)
    out = []
    for shift in range(timeShiftStart, timeShiftEnd):
        tags: dict[str, object] = {"timeShiftUnit": unit, "timeShift": shift}
        for s in reevaluate(ctx, seriesList, ctx.start + delta * shift, ctx.end + delta * shift):
            name = f"timeShift({s.name}, {unit}, {shift})"
            out.append(_relabelled(s, seriesList[0], name, tags, reset_end=True))
    return out
