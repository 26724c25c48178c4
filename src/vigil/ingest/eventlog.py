"""Vigil's event-log protocol: JSON lines parsed a chunk at a time into a log batch.

Spec: ``docs/formats/eventlog.md``. One entry per line; a chunk holds whole
lines. The fast path hands the chunk to Arrow's C++ JSON reader with the
known fields typed, then validates with vectorised compute and turns the
``data`` object (inferred as a struct) into a map of strings. Anything the
reader cannot type (a wrong field type, a string ``ts``, a nested ``data``
value, invalid UTF-8, a line that is not JSON) fails the whole chunk, which
then goes line by line through ``parse_entry``, the reference parser that
names the reason of every reject. Both give the same entries for the same
input (a property test holds them to it).

>>> r = parse_chunk(b'{"ts": 1700000000.5, "kind": "event", "name": "deploy"}\\n', 1, 1700000000000)
>>> r.entries.column("name").to_pylist(), r.rejects
(['deploy'], [])
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import math
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import json as pajson

from vigil.ingest.logrules import LogRules
from vigil.model import ENTRY_KINDS, LOG_DEFAULTS, LOGS_SCHEMA, Reject, logs_from_rows

REPAIRED_UTF8 = "invalid utf-8 replaced"
_STRING_FIELDS = ("kind", "host", "cluster", "dc", "app", "type", "name", "id", "parent", "message")
_INT_RANGES = {"status": (-(2**31), 2**31 - 1), "severity": (0, 7), "facility": (0, 23)}
# The fields the fast path types; ``data`` is inferred, unknown fields are ignored.
_TYPED = pa.schema(
    [("ts", pa.float64())]
    + [(name, pa.string()) for name in _STRING_FIELDS]
    + [(name, pa.int64()) for name in _INT_RANGES]
    + [("duration_ms", pa.float64())]
)
_READ = pajson.ReadOptions(use_threads=False, block_size=1 << 30)
_PARSE = pajson.ParseOptions(explicit_schema=_TYPED, unexpected_field_behavior="infer")
_SCALARS = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_string)


@dataclasses.dataclass(frozen=True)
class LineReject:
    """A rejected line: its number on the connection or in the body, and why."""

    line: int
    error: str
    sample: str = ""

    def as_reject(self) -> Reject:
        """The reject as counted per reason."""
        return Reject.of(self.error, self.sample)


@dataclasses.dataclass(frozen=True)
class ParsedEntries:
    """What a chunk of JSON lines became: entries, rejected lines, lines repaired."""

    entries: pa.Table
    rejects: list[LineReject]
    repaired: int = 0


class EntryError(ValueError):
    """An entry that breaks the protocol; the message names the field."""


def parse_chunk(chunk: bytes, first_line: int, now_ms: int, rules: LogRules) -> ParsedEntries:
    """Whole JSON lines as a ``LOGS_SCHEMA`` batch (``uid`` 0) and the lines rejected.

    ``first_line`` is the number of the chunk's first line (from 1 on each
    connection or body), so that rejects name lines as the sender counts them.
    """
    if not chunk.strip():
        return ParsedEntries(LOGS_SCHEMA.empty_table(), [])
    if _fast_path_fits(chunk, rules.max_entry_bytes):
        try:
            return _parse_fast(chunk, first_line, now_ms, rules)
        except (ValueError, TypeError, pa.ArrowException, _Fallback):
            pass
    return _parse_lines(chunk, first_line, now_ms, rules)


def parse_entry(line: bytes, now_ms: int, rules: LogRules) -> dict[str, Any]:
    """One JSON line as an entry dict (``ts`` in epoch ms), or ``EntryError`` saying why not.

    The reference parser: it defines what the fast path must agree with.
    """
    if len(line) > rules.max_entry_bytes:
        raise EntryError(f"entry longer than {rules.max_entry_bytes} bytes")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise EntryError("not a JSON object") from None
    if not isinstance(obj, dict):
        raise EntryError("not a JSON object")
    entry: dict[str, Any] = {}
    for name in _STRING_FIELDS:
        value = obj.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise EntryError(f"{name}: expected a string")
            entry[name] = value
    if "kind" not in entry and entry.get("type") in ENTRY_KINDS:
        entry["kind"] = entry["type"]  # {"type": "heartbeat"} can only mean the kind
    for name, (low, high) in _INT_RANGES.items():
        value = obj.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise EntryError(f"{name}: expected an integer")
            if not low <= value <= high:
                raise EntryError(f"{name}: outside {low}..{high}")
            entry[name] = value
    duration = obj.get("duration_ms")
    if duration is not None:
        if not _is_number(duration):
            raise EntryError("duration_ms: expected a number")
        entry["duration_ms"] = float(duration)
    entry["ts"] = _ts_ms(obj.get("ts"))
    entry["data"] = _data_of(obj.get("data"))
    _check(entry, now_ms, rules)
    return entry


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ts_ms(value: Any) -> int:
    if value is None:
        raise EntryError("ts: missing")
    if _is_number(value):
        if not math.isfinite(value):
            raise EntryError("ts: not a number or RFC 3339 time")
        return int(round(float(value) * 1000))
    if isinstance(value, str):
        try:
            when = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise EntryError("ts: not a number or RFC 3339 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return int(round(when.timestamp() * 1000))
    raise EntryError("ts: not a number or RFC 3339 time")


def _data_of(value: Any) -> dict[str, str]:
    """``data`` with its values as text: numbers as the fast path prints them, nested as JSON."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EntryError("data: expected an object")
    out: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            continue
        if isinstance(item, str):
            out[key] = item
        elif isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, int):
            out[key] = str(item)
        elif isinstance(item, float):
            out[key] = pa.array([item]).cast(pa.string())[0].as_py()
        else:
            out[key] = orjson.dumps(item).decode()
    return out


def _check(entry: dict[str, Any], now_ms: int, rules: LogRules) -> None:
    """The rules every entry obeys, whichever path parsed it."""
    kind = entry.get("kind", "line")
    if kind not in ENTRY_KINDS:
        raise EntryError(f"kind: not one of {', '.join(ENTRY_KINDS)}")
    low, high = rules.ts_window_ms(now_ms)
    if entry["ts"] > high:
        raise EntryError(f"ts: more than {rules.future_seconds} s in the future")
    if entry["ts"] < low:
        raise EntryError(f"ts: more than {rules.past_seconds} s in the past")
    if kind == "end" and not entry.get("id"):
        raise EntryError("id: an end needs the id of its begin")
    duration = entry.get("duration_ms", 0.0)
    if not (math.isfinite(duration) and duration >= 0):
        raise EntryError("duration_ms: expected a finite number >= 0")


def _parse_lines(chunk: bytes, first_line: int, now_ms: int, rules: LogRules) -> ParsedEntries:
    rows: list[dict[str, Any]] = []
    rejects: list[LineReject] = []
    repaired = 0
    for number, line in enumerate(chunk.split(b"\n"), first_line):
        if not line.strip(b" \t\r"):
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            line = line.decode("utf-8", "replace").encode()
            repaired += 1
        try:
            rows.append(parse_entry(line, now_ms, rules))
        except EntryError as e:
            rejects.append(LineReject(number, str(e), line[:200].decode("utf-8", "replace")))
    return ParsedEntries(logs_from_rows(rows), rejects, repaired)


class _Fallback(Exception):
    """The fast path met input it does not handle; the chunk goes line by line."""


def _fast_path_fits(chunk: bytes, max_entry_bytes: int) -> bool:
    """Whether every line starts with ``{`` (no blank lines) and none is too long.

    Arrow's reader crashes on a first line of ``null`` and turns later ``null``
    lines into rows, and skips blank lines, which would break line numbering.
    """
    data = np.frombuffer(chunk, np.uint8)
    ends = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], ends + 1))
    ends = np.concatenate((ends, [len(chunk)]))
    if starts[-1] == len(chunk):
        starts, ends = starts[:-1], ends[:-1]
    return bool((data[starts] == ord("{")).all() and (ends - starts).max() <= max_entry_bytes)


def _parse_fast(chunk: bytes, first_line: int, now_ms: int, rules: LogRules) -> ParsedEntries:
    table = pajson.read_json(io.BytesIO(chunk), read_options=_READ, parse_options=_PARSE)
    table.validate(full=True)  # the reader does not check UTF-8; this does, in C++
    n = table.num_rows
    columns: dict[str, pa.Array] = {}
    for name in _STRING_FIELDS:
        columns[name] = pc.fill_null(table.column(name), LOG_DEFAULTS[name]).combine_chunks()
    kind, type_ = table.column("kind"), table.column("type")
    if kind.null_count and type_.null_count < n:
        # {"type": "heartbeat"} without a kind can only mean the kind.
        as_kind = pc.and_(pc.is_null(kind), pc.is_in(type_, pa.array(ENTRY_KINDS)))
        columns["kind"] = pc.if_else(as_kind, type_, columns["kind"]).combine_chunks()
    for name, (low, high) in _INT_RANGES.items():
        values = table.column(name)
        if pc.any(pc.or_(pc.less(values, low), pc.greater(values, high))).as_py():
            raise _Fallback
        default = LOG_DEFAULTS[name]
        columns[name] = pc.fill_null(values, default).cast(LOGS_SCHEMA.field(name).type)
    columns["duration_ms"] = pc.fill_null(table.column("duration_ms"), 0.0).combine_chunks()
    ts = table.column("ts")
    if ts.null_count:
        raise _Fallback
    ts_ms = np.rint(ts.to_numpy() * 1000)
    columns["data"] = _data_map(table, n)
    bad = _invalid_rows(columns, ts_ms, now_ms, rules)
    rejects: list[LineReject] = []
    if bad.any():
        # Name each bad line's reason with the reference parser, keep the rest.
        lines = chunk.split(b"\n")
        for row in np.flatnonzero(bad):
            try:
                parse_entry(lines[row], now_ms, rules)
                raise _Fallback  # the paths disagree: trust the reference parser
            except EntryError as e:
                sample = lines[row][:200].decode("utf-8", "replace")
                rejects.append(LineReject(first_line + int(row), str(e), sample))
        keep = pa.array(~bad)
        columns = {name: values.filter(keep) for name, values in columns.items()}
        ts_ms = ts_ms[~bad]
    columns["ts"] = pa.array(ts_ms.astype(np.int64), pa.int64()).cast(pa.timestamp("ms"))
    columns["uid"] = pa.array(np.zeros(len(ts_ms), np.uint64))
    return ParsedEntries(pa.table(columns, schema=LOGS_SCHEMA), rejects)


def _invalid_rows(
    columns: dict[str, pa.Array], ts_ms: np.ndarray[Any, Any], now_ms: int, rules: LogRules
) -> np.ndarray[Any, Any]:
    """Rows that break a rule of ``_check``, as a boolean mask."""
    low, high = rules.ts_window_ms(now_ms)
    kind = columns["kind"]
    bad = ~np.isfinite(ts_ms) | (ts_ms < low) | (ts_ms > high)
    bad |= ~np.asarray(pc.is_in(kind, pa.array(ENTRY_KINDS)), dtype=bool)
    is_end = np.asarray(pc.equal(kind, "end"), dtype=bool)
    bad |= is_end & (np.asarray(pc.binary_length(columns["id"])) == 0)
    duration = columns["duration_ms"].to_numpy()
    bad |= ~np.isfinite(duration) | (duration < 0)
    return np.asarray(bad, dtype=bool)


def _data_map(table: pa.Table, n: int) -> pa.Array:
    """The inferred ``data`` struct as a map of strings (absent keys and nulls dropped)."""
    empty = pa.array(np.zeros(n + 1, np.int32))
    if "data" not in table.column_names:
        return pa.MapArray.from_arrays(empty, pa.array([], pa.string()), pa.array([], pa.string()))
    data = table.column("data").combine_chunks()
    if pa.types.is_null(data.type):
        return pa.MapArray.from_arrays(empty, pa.array([], pa.string()), pa.array([], pa.string()))
    if not pa.types.is_struct(data.type):
        raise _Fallback
    names = [data.type.field(i).name for i in range(data.type.num_fields)]
    kids = [data.field(i) for i in range(len(names))]
    if any(not (pa.types.is_null(k.type) or any(t(k.type) for t in _SCALARS)) for k in kids):
        raise _Fallback
    if len(set(names)) != len(names):
        raise _Fallback
    present = np.zeros((n, len(names)), dtype=bool)
    for j, kid in enumerate(kids):
        present[:, j] = np.asarray(kid.is_valid(), dtype=bool)
    present &= np.asarray(data.is_valid(), dtype=bool)[:, None]
    rows, cols = np.nonzero(present)
    texts = [_as_text(k) for k in kids]
    values = pa.concat_arrays(texts).take(pa.array(cols.astype(np.int64) * n + rows))
    keys = pa.array(np.array(names, dtype=object)[cols], pa.string())
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(present.sum(axis=1), out=offsets[1:])
    return pa.MapArray.from_arrays(pa.array(offsets), keys, values)


def _as_text(values: pa.Array) -> pa.Array:
    if pa.types.is_boolean(values.type):
        return pc.if_else(values, "true", "false")
    return values.cast(pa.string())
