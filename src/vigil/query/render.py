"""The Graphite render request, evaluated and encoded, independent of HTTP.

Follows graphite-web's ``/render`` (``webapp/graphite/render/views.py``,
https://graphite.readthedocs.io/en/latest/render_api.html): the query
parameters become a ``RenderRequest``, every target is evaluated, JSON output
is consolidated to ``maxDataPoints`` exactly as graphite-web does it, and the
body is encoded as ``json``, ``csv`` or ``raw``.

JSON is the hot path (Grafana asks for it on every refresh), so each
series' datapoints are written by orjson from a numpy array in one call::

    [{"target":"a","tags":{"name":"a"},"datapoints":[[1.5,60],[null,120]]}]
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import orjson

from vigil.query.errors import RenderError
from vigil.query.evaluator import evaluate_target, make_context
from vigil.query.series import FloatArray, Series
from vigil.query.source import SeriesSource
from vigil.query.timeparse import UTC, parse_time, parse_timezone

IntArray = npt.NDArray[np.int64]

FORMATS = {"json": "application/json", "csv": "text/csv", "raw": "text/plain"}
"""Output formats and their content types; graphite-web's image formats are not served."""

_TRUE = frozenset({"", "1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class RenderLimits(Protocol):
    """The limits ``render`` enforces; ``QuerySettings`` has this shape."""

    @property
    def max_series(self) -> int:
        """Most series one target may produce."""
        ...

    @property
    def max_points(self) -> int:
        """Most datapoints one response may hold."""
        ...


@dataclasses.dataclass(frozen=True)
class RenderRequest:
    """One ``/render`` call, parsed and checked before anything is fetched.

    ``start``/``end`` are epoch seconds, end exclusive; ``from``/``until``
    given in the wrong order are swapped, as graphite-web does.
    """

    targets: tuple[str, ...]
    start: int
    end: int
    now: int
    format: str = "json"
    max_data_points: int | None = None
    no_null_points: bool = False
    tz: dt.tzinfo = UTC

    @classmethod
    def from_params(cls, params: Mapping[str, list[str]], now: int) -> RenderRequest:
        """Parse query parameters (each name to all its values) as graphite-web reads them.

        ``now`` is the server's clock; a ``now`` parameter overrides it. The
        last value of a repeated single-valued parameter wins.
        """

        def last(name: str) -> str | None:
            values = params.get(name)
            return values[-1] if values else None

        tz_name = last("tz")
        tz = parse_timezone(tz_name) if tz_name else UTC
        now_text = last("now")
        now = parse_time(now_text, now, tz) if now_text is not None else now
        until_text = last("until")
        until = parse_time(until_text, now, tz) if until_text is not None else now
        start = parse_time(last("from") or "-24h", now, tz)
        start, end = min(start, until), max(start, until)
        if start == end:
            raise RenderError(
                f"empty time range: from and until are both {start}; "
                "give from an earlier time, e.g. from=-1h"
            )

        fmt = last("format")
        if fmt is None:
            fmt = "raw" if "rawData" in params else "json"
        if fmt not in FORMATS:
            raise RenderError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")

        max_data_points = None
        mdp_text = last("maxDataPoints")
        if mdp_text is not None:
            try:
                max_data_points = int(float(mdp_text))
            except (ValueError, OverflowError):
                max_data_points = 0
            if max_data_points < 1:
                raise RenderError(
                    f"bad maxDataPoints {mdp_text!r}: give a positive integer such as 500"
                )

        no_null = last("noNullPoints")
        if no_null is not None and no_null.lower() not in _TRUE | _FALSE:
            raise RenderError(f"bad noNullPoints {no_null!r}: use true or false")

        targets = tuple(t for t in params.get("target", []) if t.strip())
        return cls(
            targets=targets,
            start=start,
            end=end + 1 if end == now else end,  # until=now takes in the current second
            now=now,
            format=fmt,
            max_data_points=max_data_points,
            no_null_points=no_null is not None and no_null.lower() in _TRUE,
            tz=tz,
        )


def render(request: RenderRequest, source: SeriesSource, limits: RenderLimits) -> tuple[str, bytes]:
    """Evaluate every target of ``request`` and encode the result: ``(content_type, body)``.

    Raises ``RenderError`` for a bad target or when the response would hold
    more than ``limits.max_points`` datapoints.
    """
    ctx = make_context(
        source, request.start, request.end, request.now, limits.max_series, limits.max_points
    )
    data: list[Series] = []
    for target in request.targets:
        data.extend(evaluate_target(target, ctx))

    if request.format == "json":
        grids = consolidate(data, request.max_data_points)
        if request.no_null_points:
            grids = [_without_nulls(g) for g in grids]
            kept = [(s, g) for s, g in zip(data, grids, strict=True) if len(g.values)]
            data, grids = [s for s, _ in kept], [g for _, g in kept]
        _check_points(sum(len(g.values) for g in grids), limits.max_points)
        return FORMATS["json"], encode_json(data, grids)

    _check_points(sum(len(s.values) for s in data), limits.max_points)
    if request.format == "csv":
        return FORMATS["csv"], encode_csv(data, request.tz)
    return FORMATS["raw"], encode_raw(data)


def _check_points(count: int, limit: int) -> None:
    if count > limit:
        raise RenderError(
            f"the response would hold {count} datapoints, more than the limit of {limit} "
            "(max_points); shorten the time range, narrow the targets or set maxDataPoints"
        )


@dataclasses.dataclass(frozen=True)
class Grid:
    """Datapoints as JSON shows them: values with their own timestamps."""

    values: FloatArray
    stamps: IntArray


def consolidate(data: Sequence[Series], max_data_points: int | None) -> list[Grid]:
    """Each series' datapoints after graphite-web's ``maxDataPoints`` consolidation.

    As graphite-web's ``renderViewJson``: the number of points is the time
    range of the whole response over the series' step; when it exceeds
    ``max_data_points``, ``valuesPerPoint = ceil(points / max_data_points)``
    and buckets of that many values are aggregated with the series'
    ``consolidation`` function, NaN ignored, a bucket with too few values for
    ``x_files_factor`` (or none) NaN. The start is nudged so that bucket
    timestamps fall on multiples of the new step; like graphite-web, the first
    bucket then also takes the one value just before its timestamp, so a bucket
    stamped ``T`` holds the values of ``[T - step, T - step + seconds_per_point)``.
    ``max_data_points == 1`` aggregates the whole series into one point.
    """
    if not data:
        return []
    time_range = max(s.end for s in data) - min(s.start for s in data)
    return [_consolidate_one(s, max_data_points, time_range) for s in data]


def _consolidate_one(series: Series, max_data_points: int | None, time_range: int) -> Grid:
    values, start, step = series.values, series.start, series.step
    if max_data_points is None or len(values) == 0:
        return Grid(values, start + step * np.arange(len(values), dtype=np.int64))
    if max_data_points == 1:
        one = _buckets(values, len(values), series.consolidation, series.x_files_factor)
        return Grid(one, np.array([start], dtype=np.int64))
    points = time_range / step
    if max_data_points >= points:
        return Grid(values, start + step * np.arange(len(values), dtype=np.int64))
    per_point = math.ceil(points / max_data_points)
    seconds = per_point * step
    nudge = seconds + start % step - start % seconds
    new_start = start + nudge
    kept = values[max(nudge // step - 1, 0) :]
    out = _buckets(kept, per_point, series.consolidation, series.x_files_factor)
    count = min(len(out), len(range(new_start, series.end + 1, seconds)))
    return Grid(out[:count], new_start + seconds * np.arange(count, dtype=np.int64))


def _buckets(values: FloatArray, per: int, how: str, x_files_factor: float) -> FloatArray:
    """Aggregate runs of ``per`` values (the last run may be shorter), as ``TimeSeries`` does."""
    nbuckets = -(-len(values) // per)
    padded = np.full(nbuckets * per, np.nan)
    padded[: len(values)] = values
    grid = padded.reshape(nbuckets, per)
    present = ~np.isnan(grid)
    count = present.sum(axis=1)
    zeroed = np.where(present, grid, 0.0)
    if how in ("average", "avg"):
        out = zeroed.sum(axis=1) / np.maximum(count, 1)
    elif how == "avg_zero":
        sizes = np.full(nbuckets, per)
        sizes[-1] = len(values) - per * (nbuckets - 1)
        out = zeroed.sum(axis=1) / sizes
    elif how == "sum":
        out = zeroed.sum(axis=1)
    elif how == "min":
        out = np.fmin.reduce(grid, axis=1)
    elif how == "max":
        out = np.fmax.reduce(grid, axis=1)
    elif how == "first":
        out = grid[np.arange(nbuckets), present.argmax(axis=1)]
    elif how == "last":
        out = grid[np.arange(nbuckets), per - 1 - present[:, ::-1].argmax(axis=1)]
    else:
        raise RenderError(
            f"unknown consolidation function {how!r}: use average, avg_zero, sum, min, max, "
            "first or last"
        )
    keep = (count > 0) & (count / per >= x_files_factor)
    result: FloatArray = np.where(keep, out, np.nan)
    return result


def _without_nulls(grid: Grid) -> Grid:
    keep = ~np.isnan(grid.values)
    return Grid(grid.values[keep], grid.stamps[keep])


def encode_csv(data: Sequence[Series], tz: dt.tzinfo) -> bytes:
    """graphite-web's CSV: ``name,YYYY-MM-DD HH:MM:SS,value`` rows, an empty value for None."""
    out = io.StringIO()
    writer = csv.writer(out, dialect="excel")
    stamps: dict[int, str] = {}
    for series in data:
        for ts, value in zip(series.timestamps().tolist(), series.values.tolist(), strict=True):
            text = stamps.get(ts)
            if text is None:
                text = stamps[ts] = dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow((series.name, text, "" if math.isnan(value) else repr(value)))
    return out.getvalue().encode()


def encode_raw(data: Sequence[Series]) -> bytes:
    """graphite-web's raw format: ``name,start,end,step|v1,v2,None`` per line."""
    lines = []
    for s in data:
        values = ",".join("None" if math.isnan(v) else repr(v) for v in s.values.tolist())
        lines.append(f"{s.name},{s.start},{s.end},{s.step}|{values}\n")
    return "".join(lines).encode()


def encode_json(data: Sequence[Series], grids: Sequence[Grid]) -> bytes:
    """``[{"target", "tags", "datapoints": [[value, ts], ...]}]`` for each series and its grid.

    orjson writes each series' (value, time) array in one call; NaN becomes
    null and numbers are the shortest decimals that read back as the same
    doubles. Times go through the float array as whole numbers and lose their
    ``.0`` (only a time can precede ``]`` in a datapoint), as graphite-web
    prints them.
    """
    parts = []
    for series, grid in zip(data, grids, strict=True):
        if np.isinf(grid.values).any():
            points = _json_with_infinity(grid)
        else:
            pairs = np.empty((len(grid.values), 2))
            pairs[:, 0] = grid.values
            pairs[:, 1] = grid.stamps
            points = orjson.dumps(pairs, option=orjson.OPT_SERIALIZE_NUMPY).replace(b".0]", b"]")
        head = orjson.dumps({"target": series.name, "tags": series.tags})
        parts.append(head[:-1] + b',"datapoints":' + points + b"}")
    return b"[" + b",".join(parts) + b"]"


def _json_with_infinity(grid: Grid) -> bytes:
    """Datapoints holding infinities, written as graphite-web does: ``1e9999`` (drawAsInfinite)."""
    values = [None if math.isnan(v) else v for v in grid.values.tolist()]
    text = json.dumps([list(p) for p in zip(values, grid.stamps.tolist())], separators=(",", ":"))
    return text.replace("-Infinity", "-1e9999").replace("Infinity", "1e9999").encode()
