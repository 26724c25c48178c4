"""Graphite's plaintext protocol, parsed a chunk at a time into a columnar batch.

Spec: https://graphite.readthedocs.io/en/latest/feeding-carbon.html, one
``<path> <value> <timestamp>\\n`` per line, paths optionally tagged as in
Graphite 1.1 (``cpu.load;host=a;dc=x``); a timestamp of ``-1`` means "now".

The fast path hands a whole chunk of complete lines to Arrow's C++ CSV
reader (space-delimited, typed columns) and validates with vectorised
compute. Any line Arrow cannot convert (a bad number, invalid UTF-8, two
spaces) fails the whole chunk; then the chunk is bisected so that only small
pieces fall back to ``parse_line``, the per-line reference parser that also
names the reason of every reject.

>>> parse_chunk(b"a.b 1.5 1700000000\\nbad line\\n", now=1700000000).points.to_pylist()
[{'path': 'a.b', 'ts': 1700000000, 'value': 1.5}]
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from vigil.model import POINTS_SCHEMA, ParseResult, Reject

MAX_TS = 2**32 - 1
# Below this many lines a failed chunk is parsed line by line.
LINE_BY_LINE = 64
# A tagged path: a name, then tag=value pairs; Graphite forbids ';' '!' '^' '=' in
# tag names and '~' at the start of values, and empty names or values.
_TAGGED = r"^[^;]+(;[^;!^=~]+=[^;~][^;]*)+$"
_TAGGED_RE = re.compile(_TAGGED)
# Whitespace other than the space delimiter (what str.split() splits on): a path
# holding it is split differently by the reference parser, so it takes that path.
_OTHER_SPACE = (
    "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f\\x85\\xa0\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
)

_READ = csv.ReadOptions(column_names=["path", "value", "ts"], use_threads=False, block_size=1 << 26)
_CONVERT = csv.ConvertOptions(
    column_types={"path": pa.string(), "value": pa.float64(), "ts": pa.float64()},
    strings_can_be_null=False,
    quoted_strings_can_be_null=False,
    null_values=[],
)


class LineRules:
    """What a valid line is, besides its syntax: length and timestamp window."""

    def __init__(self, max_line_bytes: int = 8192, future_seconds: int = 86400) -> None:
        self.max_line_bytes = max_line_bytes
        self.future_seconds = future_seconds


DEFAULT_RULES = LineRules()


def parse_line(
    line: bytes, now: int, rules: LineRules = DEFAULT_RULES
) -> tuple[str, int, float] | Reject:
    """One line as ``(path, ts, value)``, or the reason it is rejected."""
    line = line.rstrip(b"\r\n")
    if len(line) > rules.max_line_bytes:
        return Reject.of(f"line longer than {rules.max_line_bytes} bytes", line)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return Reject.of("invalid UTF-8", line)
    fields = text.split()
    if len(fields) != 3:
        return Reject.of(f"expected 3 fields (path value timestamp), got {len(fields)}", line)
    path, value_text, ts_text = fields
    try:
        value = float(value_text)
    except ValueError:
        return Reject.of("value is not a number", line)
    if not math.isfinite(value):
        return Reject.of("value is NaN or infinite", line)
    try:
        ts_float = float(ts_text)
    except ValueError:
        return Reject.of("timestamp is not a number", line)
    problem = _timestamp_problem(ts_float, now, rules)
    if problem:
        return Reject.of(problem, line)
    if ";" in path and not _TAGGED_RE.match(path):
        return Reject.of("malformed tags (use name;tag=value;...)", line)
    ts = now if ts_float == -1 else int(ts_float)
    return path, ts, value


def _timestamp_problem(ts: float, now: int, rules: LineRules) -> str | None:
    if ts == -1:
        return None
    if not math.isfinite(ts) or ts < 0 or ts > MAX_TS:
        return "timestamp out of range"
    if ts > now + rules.future_seconds:
        return f"timestamp more than {rules.future_seconds}s in the future"
    return None


def parse_chunk(chunk: bytes, now: int, rules: LineRules = DEFAULT_RULES) -> ParseResult:
    """Every complete line of ``chunk`` as one batch of points, plus rejects."""
    tables: list[pa.Table] = []
    rejects: list[Reject] = []
    _parse_into(chunk, now, rules, tables, rejects)
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return ParseResult(POINTS_SCHEMA.empty_table(), rejects)
    points = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    return ParseResult(points, rejects)


def _parse_into(
    chunk: bytes, now: int, rules: LineRules, tables: list[pa.Table], rejects: list[Reject]
) -> None:
    try:
        tables.append(_parse_fast(chunk, now, rules, rejects))
        return
    except pa.ArrowInvalid:
        pass
    lines = chunk.count(b"\n")
    if lines <= LINE_BY_LINE:
        tables.append(_parse_slow(chunk, now, rules, rejects))
        return
    middle = chunk.find(b"\n", len(chunk) // 2)
    if middle < 0 or middle == len(chunk) - 1:
        middle = chunk.rfind(b"\n", 0, len(chunk) - 1)
    _parse_into(chunk[: middle + 1], now, rules, tables, rejects)
    _parse_into(chunk[middle + 1 :], now, rules, tables, rejects)


def _parse_fast(chunk: bytes, now: int, rules: LineRules, rejects: list[Reject]) -> pa.Table:
    """The vectorised path; raises ArrowInvalid when a line needs the slow path."""
    try:
        chunk.decode("utf-8")  # Arrow's bad-row callback cannot take invalid UTF-8
    except UnicodeDecodeError:
        raise pa.ArrowInvalid("chunk is not valid UTF-8") from None
    odd_rows: list[str] = []

    def wrong_field_count(row: csv.InvalidRow) -> str:
        # Runs of spaces or tabs make extra fields; the reference parser decides.
        odd_rows.append(row.text)
        return "skip"

    parse = csv.ParseOptions(
        delimiter=" ", quote_char=False, escape_char=False, invalid_row_handler=wrong_field_count
    )
    table = csv.read_csv(io.BytesIO(chunk), _READ, parse, _CONVERT)
    path = table.column("path")
    if pc.any(pc.match_substring_regex(path, _OTHER_SPACE)).as_py():
        raise pa.ArrowInvalid("path holds whitespace other than the delimiter")
    extra = _parse_slow("\n".join(odd_rows).encode(), now, rules, rejects) if odd_rows else None
    if table.num_rows == 0:
        return extra if extra is not None else POINTS_SCHEMA.empty_table()
    value = table.column("value")
    ts = table.column("ts")
    ts = pc.if_else(pc.equal(ts, -1.0), float(now), ts)
    checks = [
        (pc.is_finite(value), "value is NaN or infinite"),
        (
            pc.and_(pc.greater_equal(ts, 0.0), pc.less_equal(ts, float(MAX_TS))),
            "timestamp out of range",
        ),
        (
            pc.less_equal(ts, float(now + rules.future_seconds)),
            f"timestamp more than {rules.future_seconds}s in the future",
        ),
        (
            pc.less_equal(pc.binary_length(path), rules.max_line_bytes),
            f"line longer than {rules.max_line_bytes} bytes",
        ),
        (pc.greater(pc.binary_length(path), 0), "empty metric path"),
    ]
    tagged = pc.match_substring(path, ";")
    if pc.any(tagged).as_py():
        well_formed = pc.or_(pc.invert(tagged), pc.match_substring_regex(path, _TAGGED))
        checks.append((well_formed, "malformed tags (use name;tag=value;...)"))
    ok = np.ones(table.num_rows, dtype=bool)
    for passed, reason in checks:
        failed = ~np.asarray(passed.to_numpy(zero_copy_only=False), dtype=bool) & ok
        if failed.any():
            i = int(np.argmax(failed))
            sample = f"{path[i]} {value[i]} {table.column('ts')[i]}"
            rejects.append(Reject.of(reason, sample, int(failed.sum())))
        ok &= ~failed
    ts_int = pc.cast(pc.floor(ts), pa.uint32(), safe=False)
    good = pa.table([path, ts_int, value], schema=POINTS_SCHEMA)
    good = good if ok.all() else good.filter(pa.array(ok))
    return good if extra is None else pa.concat_tables([good, extra])


def _parse_slow(chunk: bytes, now: int, rules: LineRules, rejects: list[Reject]) -> pa.Table:
    """The reference path, line by line, for small pieces the fast path refused."""
    paths: list[str] = []
    stamps: list[int] = []
    values: list[float] = []
    for line in chunk.split(b"\n"):
        if not line.strip():
            continue
        parsed = parse_line(line, now, rules)
        if isinstance(parsed, Reject):
            rejects.append(parsed)
        else:
            paths.append(parsed[0])
            stamps.append(parsed[1])
            values.append(parsed[2])
    return pa.table(
        [
            pa.array(paths, pa.string()),
            pa.array(stamps, pa.uint32()),
            pa.array(values, pa.float64()),
        ],
        schema=POINTS_SCHEMA,
    )
