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
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
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
_ASCII_OTHER_SPACE = (b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_OTHER_SPACE = (
    "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f\\x85\\xa0\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
)

_BOM = b"\xef\xbb\xbf"
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
    # Arrow's CSV reader drops a leading byte-order mark, which the line
    # parser counts as part of the first path: such a chunk takes the exact path.
    if not chunk.startswith(_BOM):
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
    if _other_whitespace(chunk, table):
        raise pa.ArrowInvalid("a path holds whitespace other than the delimiter")
    extra = _parse_slow("\n".join(odd_rows).encode(), now, rules, rejects) if odd_rows else None
    if table.num_rows == 0:
        return extra if extra is not None else POINTS_SCHEMA.empty_table()
    path = table.column("path").combine_chunks()
    value = table.column("value").to_numpy()
    ts = table.column("ts").to_numpy()
    # Each check first looks at the whole column (a min, a max, a byte search)
    # and builds a per-row mask only when some row may fail.
    checks: list[tuple[Callable[[], NDArray[np.bool_]], str]] = []
    if not np.isfinite(value).all():
        checks.append((lambda: ~np.isfinite(value), "value is NaN or infinite"))
    # NaN would make min() and max() NaN and hide every other bad stamp.
    nan = np.isnan(ts)
    if nan.any():
        ts = np.where(nan, -2.0, ts)
    if ts.min() < 0:
        ts = np.where(ts == -1, float(now), ts)
    if ts.min() < 0 or ts.max() > MAX_TS:
        checks.append((lambda: ~((ts >= 0) & (ts <= MAX_TS)), "timestamp out of range"))
    if ts.max() > now + rules.future_seconds:
        reason = f"timestamp more than {rules.future_seconds}s in the future"
        checks.append((lambda: ts > now + rules.future_seconds, reason))
    lengths = pc.binary_length(path).to_numpy()
    if lengths.max() > rules.max_line_bytes:
        reason = f"line longer than {rules.max_line_bytes} bytes"
        checks.append((lambda: lengths > rules.max_line_bytes, reason))
    if lengths.min() == 0:
        checks.append((lambda: lengths == 0, "empty metric path"))
    if b";" in chunk:
        tagged = pc.match_substring(path, ";")
        well_formed = pc.or_(pc.invert(tagged), pc.match_substring_regex(path, _TAGGED))
        checks.append(
            (
                lambda: ~well_formed.to_numpy(zero_copy_only=False),
                "malformed tags (use name;tag=value;...)",
            )
        )
    ok = np.ones(table.num_rows, dtype=bool)
    for failing, reason in checks:
        failed = failing() & ok
        if failed.any():
            i = int(np.argmax(failed))
            sample = f"{path[i]} {value[i]} {table.column('ts')[i]}"
            rejects.append(Reject.of(reason, sample, int(failed.sum())))
        ok &= ~failed
    good = pa.table(
        [path, pa.array(np.where(ok, ts, 0.0).astype(np.int64).astype(np.uint32)), pa.array(value)],
        schema=POINTS_SCHEMA,
    )
    good = good if ok.all() else good.filter(pa.array(ok))
    return good if extra is None else pa.concat_tables([good, extra])


def _other_whitespace(chunk: bytes, table: pa.Table) -> bool:
    """Whether a path may hold whitespace other than the space delimiter.

    Byte searches over the chunk cover ASCII (a bare CR splits a CSV row but
    not a reference line); only non-ASCII input needs the regex over paths.
    """
    if any(c in chunk for c in _ASCII_OTHER_SPACE):
        return True
    if b"\r" in chunk and b"\r" in chunk.replace(b"\r\n", b"\n"):
        return True
    if chunk.isascii():
        return False
    return bool(pc.any(pc.match_substring_regex(table.column("path"), _OTHER_SPACE)).as_py())


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
