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
whitespace) so that all datapoints of a group of series have the same width,
a multiple of eight bytes::

    [{"target":"a","tags":{"name":"a"},"datapoints":[[ 1.5     , 60],[null     ,120]]}]
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


_GROUP_POINTS = 1 << 12


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
# field is an integer part right-aligned, a point, a fraction left-aligned. Rows
# are built as little-endian uint64 words, eight characters each, with 1-D numpy
# operations only: every character is stored as its XOR with a space, so a blank
# is 0 and fields are merged into a row of spaces with ``^=``.

_U64 = np.uint64
_SPACES = 0x2020202020202020
_DIGITS4 = np.frombuffer(
    b"".join(bytes(c ^ 0x20 for c in b"%04d" % i) for i in range(10_000)), dtype=np.uint32
).astype(np.uint64)
_LEAD = np.array([sum(0x10 << 8 * b for b in range(j)) for j in range(9)], dtype=np.uint64)
_TRAIL = np.array([sum(0x10 << 8 * (7 - b) for b in range(j)) for j in range(9)], dtype=np.uint64)
_SIGN = np.array([0, *(0x0D << 8 * (7 - j) for j in range(8)), 0], dtype=np.uint64)
_POW10_F = 10.0 ** np.arange(23)  # every entry is exact
_POW10_BOUNDS = 10.0 ** np.arange(-5, 18)  # _POW10_BOUNDS[e + 5] is 10**e, rounded below 1
_UP = np.array([1.0, *(10.0**k for k in range(19))])  # _UP[s + 1] * a / _DOWN[s + 1] = a * 10**s
_DOWN = np.array([10.0, *([1.0] * 19)])
_POW10_I = 10 ** np.arange(19, dtype=np.int64)
_SPLIT = 134217729.0  # 2**27 + 1, Dekker's splitter for float64
_LOG10_2 = 0.30102999566398120
_TIE = 1e-9


def _shortest(a: FloatArray) -> tuple[IntArray, IntArray, IntArray, BoolArray]:
    """Shortest ``K * 10**-s`` reading back as each ``a`` in ``[1e-4, 1e16)``, and its zeros.

    The third array counts the trailing zeros of K, the fraction digits to blank.

    Values of at most 15 significant digits are found by rounding and checked
    exactly (one correctly rounded multiplication or division by an exact
    power of ten); the others get 16 or 17 digits chosen in the rounding
    interval of ``a``, computed exactly with Dekker's two-product. Both are
    computed for every value and blended, which is cheaper in numpy than
    masking. The last array flags values too close to a tie to decide (left to
    ``repr``).
    """
    mant, exp2 = np.frexp(a)
    e10 = np.floor((exp2 - 1) * _LOG10_2).astype(np.int64)
    np.clip(e10, -4, 15, out=e10)
    e10 += a >= _POW10_BOUNDS[e10 + 6]

    # At most 15 digits: m = round(a * 10**s) must divide back to a exactly.
    s_short = 14 - e10
    up, down = _UP[s_short + 1], _DOWN[s_short + 1]
    m = np.rint(a * up / down)
    short = (m * down / up == a) & (m < 1e15)
    zeros_short = np.zeros(len(a), dtype=np.int64)
    rest = m
    for k in (8, 4, 2, 1):
        q = rest / _POW10_F[k]
        whole = q == np.floor(q)
        rest = rest + whole * (q - rest)
        zeros_short += whole * k

    # 16 or 17 digits: x = a * 10**s in [1e16, 1e17) exactly as xh + xl.
    s_long = 16 - e10
    p = _POW10_F[s_long]
    xh = a * p
    t = a * _SPLIT
    ah = t - (t - a)
    al = a - ah
    tp = p * _SPLIT
    ph = tp - (tp - p)
    pl = p - ph
    xl = ((ah * ph - xh) + ah * pl + al * ph) + al * pl
    floor_l = np.floor(xl)
    n = xh.astype(np.int64) + floor_l.astype(np.int64)
    f = xl - floor_l
    half_up = np.ldexp(p, exp2 - 54)  # half an ulp of a, scaled like x
    half_down = half_up * (1.0 - 0.5 * (mant == 0.5))
    r = n - (n // 10) * 10
    d_down = r + f
    d_up = 10.0 - d_down
    ok_down = d_down < half_down
    ok_up = d_up < half_up
    sixteen = ok_down | ok_up
    pick_up = ok_up & (~ok_down | (d_up < d_down))
    k16 = n - r + 10 * pick_up
    k17 = n + (f > 0.5)
    k_long = k17 + sixteen * (k16 - k17)
    undecided = ~short & (
        (np.abs(d_down - half_down) < _TIE)
        | (np.abs(d_up - half_up) < _TIE)
        | (ok_down & ok_up & (np.abs(d_down - d_up) < _TIE))
        | (~sixteen & (np.abs(f - 0.5) < _TIE))
    )
    m_int = m.astype(np.int64)
    k_out = k_long + short * (m_int - k_long)
    s_out = s_long + short * (s_short - s_long)
    zeros = sixteen + short * (zeros_short - sixteen)
    return k_out, s_out, zeros, undecided


def _ndigits(x: IntArray) -> IntArray:
    """Decimal digits of each ``0 <= x < 10**18`` (1 for 0)."""
    y = np.maximum(x, 1)
    d = np.floor(np.log10(y)).astype(np.int64) + 1
    np.clip(d, 1, 18, out=d)
    d += y >= _POW10_I[d]
    d -= y < _POW10_I[d - 1]
    return d


def _chunks(x: IntArray, count: int) -> list[npt.NDArray[np.uint64]]:
    """8-digit chunks of ``x`` as words of digit characters, the last chunk first."""
    words = []
    rest = x
    for _ in range(count):
        q = rest // 100_000_000
        chunk = rest - q * 100_000_000
        hi = chunk // 10_000
        words.append(_DIGITS4[hi] | (_DIGITS4[chunk - hi * 10_000] << _U64(32)))
        rest = q
    return words


def _integer_words(
    x: IntArray, negative: npt.NDArray[np.uint64], width: int
) -> list[npt.NDArray[np.uint64]]:
    """``x`` right-aligned in ``width`` columns with blanks before it and ``-`` if negative."""
    nd = _ndigits(x)
    words = _chunks(x, -(-width // 8))
    for k, word in enumerate(words):
        word -= _LEAD[np.clip(8 * k + 8 - nd, 0, 8)]
        word += _SIGN[np.clip(nd - 8 * k, -1, 8) + 1] * negative
    return words


def _fraction_words(x: IntArray, nfrac: IntArray, width: int) -> list[npt.NDArray[np.uint64]]:
    """``x`` (``width`` digits, zero-padded) with blanks after its first ``nfrac`` digits."""
    words = _chunks(x, -(-width // 8))
    for k, word in enumerate(words):
        word -= _TRAIL[np.clip(width - nfrac - 8 * k, 0, 8)]
    return words


def _place(
    row: list[npt.NDArray[np.uint64]], words: list[npt.NDArray[np.uint64]], end: int, start: int
) -> None:
    """XOR right-aligned chunk words into ``row`` so the last digit is at byte ``end``."""
    for k, word in enumerate(words):
        offset = end - 8 * k - 7
        if offset < start:
            word = word >> _U64(8 * (start - offset))
            offset = start
        index, shift = divmod(offset, 8)
        row[index] ^= word << _U64(8 * shift)
        if shift and index + 1 < len(row):  # past the row only the dropped, blank bytes
            row[index + 1] ^= word >> _U64(64 - 8 * shift)


def _constant(row: list[npt.NDArray[np.uint64]], text: bytes, offset: int, where: object) -> None:
    for i, c in enumerate(text):
        index, shift = divmod(offset + i, 8)
        row[index] ^= _U64((c ^ 0x20) << 8 * shift) * where  # type: ignore[operator]


def _datapoint_rows(values: FloatArray, stamps: IntArray) -> ByteArray:
    """One equal-width row ``[value,ts],`` per datapoint, as a byte matrix."""
    count = len(values)
    a = np.abs(values)
    finite = np.isfinite(values)
    zero = a == 0
    fast = finite & (((a >= 1e-4) & (a < 1e16)) | zero)
    k, s, zeros, undecided = _shortest(np.where(fast & ~zero, a, 1.0))
    good = fast & ~undecided & (s <= 18)
    negative = np.signbit(values) & good

    frac_digits = np.clip(s, 0, 18)
    p = _POW10_I[frac_digits]
    whole = k // p
    frac = k - whole * p
    whole += (s < 0) * (k * 10 - whole)
    whole *= ~zero
    nfrac = np.maximum(frac_digits - zeros, 1)

    specials: dict[int, bytes] = {}
    for i in np.flatnonzero(finite & ~good).tolist():
        specials[i] = repr(float(values[i])).encode()
    for i in np.flatnonzero(np.isinf(values)).tolist():
        specials[i] = b"-1e9999" if values[i] < 0 else b"1e9999"
    nulls = np.isnan(values)

    int_width = int(_ndigits(np.array([(whole * good).max(initial=0)]))[0]) + int(negative.any())
    frac_width = int((nfrac * good).max(initial=1))
    width = max(
        int_width + 1 + frac_width, 4 * int(nulls.any()), *(len(b) for b in specials.values())
    )
    stamp_negative = stamps < 0
    stamp_abs = np.abs(stamps)
    stamp_width = int(_ndigits(np.array([stamp_abs.max(initial=0)]))[0]) + int(
        stamp_negative.any()
    )
    row_width = width + stamp_width + 4
    width += -row_width % 8
    row_width += -row_width % 8

    row = [np.full(count, _SPACES, dtype=np.uint64) for _ in range(row_width // 8)]
    value = [np.zeros(count, dtype=np.uint64) for _ in range(row_width // 8)]
    scale = frac_width - frac_digits
    shifted = (frac * _POW10_I[np.clip(scale, 0, 18)]) // _POW10_I[np.clip(-scale, 0, 18)]
    _place(value, _integer_words(whole, negative.astype(np.uint64), int_width), int_width, 1)
    _constant(value, b".", int_width + 1, 1)
    _place(
        value,
        _fraction_words(shifted, nfrac, frac_width),
        int_width + frac_width + 1,
        int_width + 2,
    )
    good_words = good.astype(np.uint64)
    for index, word in enumerate(value):
        row[index] ^= word * good_words
    _constant(row, b"null", 1, nulls.astype(np.uint64))
    _constant(row, b"[", 0, 1)
    _constant(row, b",", width + 1, 1)
    _place(row, _integer_words(stamp_abs, stamp_negative.astype(np.uint64), stamp_width),
           row_width - 3, width + 2)
    _constant(row, b"],", row_width - 2, 1)

    rows = np.empty((count, row_width // 8), dtype=np.uint64)
    for index, word in enumerate(row):
        rows[:, index] = word
    out = rows.view(np.uint8)
    for i, text in specials.items():
        out[i, 1 : 1 + len(text)] = np.frombuffer(text, dtype=np.uint8)
    return out
