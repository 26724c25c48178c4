"""The Graphite render request, evaluated and encoded, independent of HTTP.

Follows graphite-web's ``/render`` (``webapp/graphite/render/views.py``,
https://graphite.readthedocs.io/en/latest/render_api.html): the query
parameters become a ``RenderRequest``, every target is evaluated, JSON output
is consolidated to ``maxDataPoints`` exactly as graphite-web does it, and the
body is encoded as ``json``, ``csv`` or ``raw``.

JSON is the hot path (Grafana asks for it on every refresh), so its
datapoints are formatted by numpy in bulk instead of by ``json.dumps``: the
numbers are the shortest decimals that read back as the same doubles (what
Python's ``repr`` prints), and rows are padded with spaces (legal JSON
whitespace) so that every datapoint of a series has the same width::

    [{"target":"a","tags":{"name":"a"},"datapoints":[[ 1.5 ,60],[12.25,120],[null ,180]]}]
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

from vigil.query.evaluator import evaluate_target, make_context
from vigil.query.functions.registry import RenderError
from vigil.query.series import FloatArray, Series
from vigil.query.source import SeriesSource
from vigil.query.timeparse import UTC, parse_time, parse_timezone

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]

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
            end=end,
            now=now,
            format=fmt,
            max_data_points=max_data_points,
            no_null_points=no_null is not None and no_null.lower() in _TRUE,
            tz=tz,
        )


def render(
    request: RenderRequest, source: SeriesSource, limits: RenderLimits
) -> tuple[str, bytes]:
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

    Series are formatted in groups of about ``_GROUP_POINTS`` datapoints so
    that numpy works on arrays that stay in cache.
    """
    parts: list[bytes] = [b"["]
    group: list[int] = []
    size = 0
    for i, grid in enumerate(grids):
        group.append(i)
        size += len(grid.values)
        if size >= _GROUP_POINTS or i == len(grids) - 1:
            _encode_group(data, grids, group, parts)
            group, size = [], 0
    parts.append(b"]")
    return b"".join(parts)


_GROUP_POINTS = 1 << 16


def _encode_group(
    data: Sequence[Series], grids: Sequence[Grid], group: list[int], parts: list[bytes]
) -> None:
    values = np.concatenate([grids[i].values for i in group])
    stamps = np.concatenate([grids[i].stamps for i in group])
    rows = _datapoint_rows(values, stamps)
    offset = 0
    for i in group:
        series = data[i]
        n = len(grids[i].values)
        head = json.dumps(
            {"target": series.name, "tags": series.tags}, separators=(",", ":")
        )
        if len(parts) > 1:
            parts.append(b",")
        parts.append(head[:-1].encode() + b',"datapoints":[')
        parts.append(rows[offset : offset + n].tobytes()[:-1])
        parts.append(b"]}")
        offset += n


# Bulk number formatting. A row is ``[`` value ``,`` timestamp ``],``; the value
# field is an integer part right-aligned, a point, a fraction left-aligned.

_SPACE, _MINUS, _POINT = ord(" "), ord("-"), ord(".")
_DIGITS4 = np.frombuffer(b"".join(b"%04d" % i for i in range(10_000)), dtype=np.uint32)
_POW10_F = 10.0 ** np.arange(23)  # every entry is exact
_POW10_BOUNDS = 10.0 ** np.arange(-5, 18)  # _POW10_BOUNDS[e + 5] is 10**e, rounded below 1
_POW10_I = 10 ** np.arange(19, dtype=np.int64)
_SPLIT = 134217729.0  # 2**27 + 1, Dekker's splitter for float64
_TIE = 1e-9


def _digit_columns(x: IntArray, width: int) -> ByteArray:
    """ASCII digits of each non-negative ``x < 10**width``, zero-padded to ``width`` columns."""
    groups = -(-width // 4)
    out = np.empty((len(x), groups * 4), dtype=np.uint8)
    words = out.view(np.uint32)
    for g in range(groups):
        words[:, groups - 1 - g] = _DIGITS4[(x // _POW10_I[4 * g]) % 10_000]
    return out[:, groups * 4 - width :]


def _ndigits(x: IntArray) -> IntArray:
    counts: IntArray = np.searchsorted(_POW10_I[1:], x, side="right") + 1
    return counts


def _integer_field(x: IntArray, negative: BoolArray, width: int) -> ByteArray:
    """``x`` right-aligned in ``width`` columns, leading spaces, ``-`` before negatives."""
    cols = _digit_columns(x, width)
    power = np.arange(width - 1, -1, -1)[None, :]
    nd = _ndigits(x)[:, None]
    cols = np.where(power >= nd, np.uint8(_SPACE), cols)
    sign = (power == nd) & negative[:, None]
    result: ByteArray = np.where(sign, np.uint8(_MINUS), cols)
    return result


def _shortest(a: FloatArray) -> tuple[IntArray, IntArray, IntArray, BoolArray]:
    """Shortest ``K * 10**-s`` reading back as each ``a`` in ``[1e-4, 1e16)``, and K's trailing zeros.

    Values of at most 15 significant digits are found by rounding and checked
    exactly (one correctly rounded multiplication or division by an exact
    power of ten); the rest get 16 or 17 digits chosen in the rounding
    interval of ``a``, computed exactly with Dekker's two-product. The last
    array flags the rare values too close to a tie to decide (left to
    ``repr``).
    """
    e10 = np.floor(np.log10(a)).astype(np.int64)
    np.clip(e10, -4, 15, out=e10)
    e10 += a >= _POW10_BOUNDS[e10 + 6]
    e10 -= a < _POW10_BOUNDS[e10 + 5]

    # At most 15 digits: m = round(a * 10**s) must divide back to a exactly.
    s = 14 - e10
    up = _POW10_F[np.maximum(s, 0)]
    down = np.where(s < 0, 10.0, 1.0)
    m = np.rint(a * up / down)
    short = (m * down / up == a) & (m < 1e15)
    zeros = np.zeros(len(a), dtype=np.int64)
    rest = m
    for k in (8, 4, 2, 1):
        q = rest / _POW10_F[k]
        whole = q == np.floor(q)
        rest = np.where(whole, q, rest)
        zeros += whole * k
    k_out = m.astype(np.int64)
    undecided = np.zeros(len(a), dtype=np.bool_)

    long = ~short
    if long.any():
        ab = a[long]
        sb = 16 - e10[long]
        p = _POW10_F[sb]
        xh = ab * p
        t = ab * _SPLIT
        ah = t - (t - ab)
        al = ab - ah
        t = p * _SPLIT
        ph = t - (t - p)
        pl = p - ph
        xl = ((ah * ph - xh) + ah * pl + al * ph) + al * pl
        floor_l = np.floor(xl)
        n = xh.astype(np.int64) + floor_l.astype(np.int64)
        f = xl - floor_l
        hu = np.spacing(ab) * p * 0.5
        hl = np.where(np.frexp(ab)[0] == 0.5, hu * 0.5, hu)
        r = n % 10
        d_down = r + f
        d_up = 10.0 - d_down
        ok_down = d_down < hl
        ok_up = d_up < hu
        sixteen = ok_down | ok_up
        pick_down = ok_down & (~ok_up | (d_down < d_up))
        k_long = np.where(sixteen, n - r + np.where(pick_down, 0, 10), n + (f > 0.5))
        undecided[long] = (
            (np.abs(d_down - hl) < _TIE)
            | (np.abs(d_up - hu) < _TIE)
            | (sixteen & ~pick_down & ok_down & (np.abs(d_down - d_up) < _TIE))
            | (~sixteen & (np.abs(f - 0.5) < _TIE))
        )
        k_out[long] = k_long
        s[long] = sb
        zeros[long] = sixteen
    return k_out, s, zeros, undecided


def _datapoint_rows(values: FloatArray, stamps: IntArray) -> ByteArray:
    """One equal-width row ``[value,ts],`` per datapoint, as a byte matrix."""
    n = len(values)
    a = np.abs(values)
    finite = np.isfinite(values)
    fast = finite & (((a >= 1e-4) & (a < 1e16)) | (a == 0))
    negative = np.signbit(values)

    idx = np.flatnonzero(fast)
    af = a[idx]
    nonzero = af != 0
    k = np.zeros(len(idx), dtype=np.int64)
    s = np.ones(len(idx), dtype=np.int64)
    zeros = np.ones(len(idx), dtype=np.int64)
    undecided = np.zeros(len(idx), dtype=np.bool_)
    if nonzero.any():
        k[nonzero], s[nonzero], zeros[nonzero], undecided[nonzero] = _shortest(af[nonzero])
    good = ~undecided & (s <= 18)
    fast[idx[~good]] = False
    idx, k, s, zeros = idx[good], k[good], s[good], zeros[good]

    frac_digits = np.maximum(s, 0)
    p = _POW10_I[frac_digits]
    whole = np.where(s < 0, k * 10, k // p)
    frac = np.where(s < 0, 0, k - whole * p)
    nfrac = np.maximum(frac_digits - zeros, 1)
    neg_fast = negative[idx]

    specials: dict[int, bytes] = {}
    for i in np.flatnonzero(finite & ~fast).tolist():
        specials[i] = repr(float(values[i])).encode()
    inf = ~finite & ~np.isnan(values)
    for i in np.flatnonzero(inf).tolist():
        specials[i] = b"-1e9999" if values[i] < 0 else b"1e9999"

    int_width = int(_ndigits(whole).max(initial=1)) + int(neg_fast.any())
    frac_width = int(nfrac.max(initial=1))
    width = max(int_width + 1 + frac_width, 4, *(len(b) for b in specials.values()))
    stamp_neg = stamps < 0
    stamp_abs = np.abs(stamps)
    stamp_width = int(_ndigits(stamp_abs).max(initial=1)) + int(stamp_neg.any())

    rows = np.full((n, width + stamp_width + 4), _SPACE, dtype=np.uint8)
    rows[:, 0] = ord("[")
    rows[:, width + 1] = ord(",")
    rows[:, -2] = ord("]")
    rows[:, -1] = ord(",")
    rows[:, width + 2 : width + 2 + stamp_width] = _integer_field(stamp_abs, stamp_neg, stamp_width)
    rows[np.isnan(values), 1:5] = np.frombuffer(b"null", dtype=np.uint8)

    if len(idx):
        scale = frac_width - frac_digits
        frac_shifted = np.where(
            scale >= 0,
            frac * _POW10_I[np.clip(scale, 0, 18)],
            frac // _POW10_I[np.clip(-scale, 0, 18)],
        )
        field = np.full((len(idx), width), _SPACE, dtype=np.uint8)
        field[:, :int_width] = _integer_field(whole, neg_fast, int_width)
        field[:, int_width] = _POINT
        frac_cols = _digit_columns(frac_shifted, frac_width)
        blank = np.arange(frac_width)[None, :] >= nfrac[:, None]
        field[:, int_width + 1 : int_width + 1 + frac_width] = np.where(
            blank, np.uint8(_SPACE), frac_cols
        )
        rows[idx, 1 : width + 1] = field
    for i, text in specials.items():
        rows[i, 1 : 1 + len(text)] = np.frombuffer(text, dtype=np.uint8)
    return rows
