"""Error fingerprints: which log entries are errors, and which of them are the same error.

An entry is an error when its ``status`` is not 0, its syslog ``severity`` is
0..3 (emerg, alert, crit, err), or its message holds a stack trace. Errors
are grouped by a fingerprint, a 64-bit hash of:

- for a recognised stack trace (Python tracebacks, Java ``at pkg.Class.m(F.java:12)``
  frames with ``Caused by:``, Go panics with ``goroutine N [running]:``): the
  exception type(s) and the frames (function and file), without line numbers,
  addresses, goroutine ids or generated class numbers, so the same crash from
  another host, process or request has the same fingerprint;
- otherwise: the application, type, name, status and the first line of the
  message with numbers, UUIDs, hex, quoted values, IP addresses and e-mail
  addresses masked (``mask_lines``).

The work is columnar, as ingest is: error rows are selected and first lines
masked with Arrow compute (RE2) over whole columns; stack traces are parsed
in Python once per distinct trace after their numbers and addresses are
masked (the same crash repeats, so there are few distinct ones); keys are
hashed once per distinct key. ``bench/fingerprint_rate.py`` measures it.

Example: ``KeyError: 'sku'`` raised in ``cart.py:add`` on web01 (request
``7f3a``) and on web02 (request ``9c1e``) give one row each with the same
``fingerprint`` and the title ``KeyError: 'sku'``.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# One row per error entry, as ``errors_of`` returns and ``ErrorStore.write`` stores.
ERRORS_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ms"), nullable=False),
        pa.field("uid", pa.uint64(), nullable=False),
        pa.field("fingerprint", pa.uint64(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("host", pa.string(), nullable=False),
        pa.field("app", pa.string(), nullable=False),
        pa.field("dc", pa.string(), nullable=False),
        pa.field("cluster", pa.string(), nullable=False),
    ]
)

# Longest title kept, in characters.
TITLE_CHARS = 200

# Recognised stack traces (RE2, for the whole-column test).
_TRACE = (
    r"(?m)Traceback \(most recent call last\):"
    r"|^[ \t]+at [\w$.<>/@-]+\("
    r"|^goroutine \d+ \["
)

# Masks of a first line, in order (RE2 pattern, replacement). Earlier masks
# take the longer forms (a UUID before its hex runs, an IP before its
# numbers); each replacement survives the later masks unchanged, so masking
# twice is masking once.
_LINE_MASKS = [
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>"),
    (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "<email>"),
    (r"\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?", "<ip>"),
    # A quote opens after a space or punctuation, not in a word: "can't" stays.
    (r"(^|[\s=:(\[,{])'[^'\n]*'", r"\1'<q>'"),
    (r"(^|[\s=:(\[,{])\"[^\"\n]*\"", r'\1"<q>"'),
    # A long hex run may be all digits: hex and numbers are one kind.
    (r"0[xX][0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+", "<n>"),
]

# One pass over a whole trace: ids, addresses, hex runs and numbers (line
# numbers, goroutine ids, lambda and proxy numbers) become <n>.
_TRACE_MASK = (
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|0[xX][0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+"
)

_PY_START = "Traceback (most recent call last):"
_PY_FRAME = re.compile(r'^\s*File "([^"]*)", line [^,]*, in (.+?)\s*$')
_PY_EXC = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")
_PY_NOT_EXC = ("Traceback", "During handling", "The above exception")

_JAVA_HEAD = re.compile(r'^(?:Exception in thread "[^"]*" )?([A-Za-z_$][\w$]*(?:\.[\w$]+)+)(?::|$)')
_JAVA_FRAME = re.compile(r"^\s*at\s+(?:[\w.@<>-]*/)*([\w$.<>]+)\(([^)]*)\)")
_JAVA_CAUSE = re.compile(r"^\s*(?:Caused by|Suppressed): ([\w$.]+)")

_GO_GOROUTINE = re.compile(r"^goroutine <n> \[")
_GO_FILE = re.compile(r"^\t(.+?):<n>(?: \+<n>)?\s*$")
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def _path_tail(path: str) -> str:
    """The last two components of a file path: hosts install the same code in different places."""
    return "/".join(path.replace("\\", "/").rsplit("/", 2)[-2:])


def _python_trace(lines: list[str]) -> tuple[str, str] | None:
    frames: list[str] = []
    types: list[str] = []
    title = ""
    in_trace = False
    for line in lines:
        if line.startswith(_PY_START):
            in_trace = True
            continue
        m = _PY_FRAME.match(line)
        if m and in_trace:
            frames.append(f"{_path_tail(m.group(1))}:{m.group(2)}")
            continue
        if in_trace and frames and not line.startswith((" ", "\t", *_PY_NOT_EXC)):
            e = _PY_EXC.match(line)
            if e:
                types.append(e.group(1))
                title = line.strip()
                in_trace = False
    if not frames:
        return None
    return "py\x1f" + ",".join(types) + "\x1f" + "\n".join(frames), title or "Traceback"


def _java_trace(lines: list[str]) -> tuple[str, str] | None:
    frames: list[str] = []
    types: list[str] = []
    title = ""
    for line in lines:
        m = _JAVA_FRAME.match(line)
        if m:
            frames.append(f"{m.group(1)}({m.group(2).split(':', 1)[0]})")
            continue
        c = _JAVA_CAUSE.match(line)
        if c:
            types.append(c.group(1))
            continue
        if not frames and not types:
            h = _JAVA_HEAD.match(line)
            if h:
                types.append(h.group(1))
                title = line.strip()
                if title.startswith("Exception in thread"):
                    title = title.split('" ', 1)[-1]
    if not frames:
        return None
    return "java\x1f" + ",".join(types) + "\x1f" + "\n".join(frames), title or types[0]


def _go_trace(lines: list[str]) -> tuple[str, str] | None:
    kind = ""
    frames: list[str] = []
    in_goroutine = False
    for line in lines:
        if not kind and line.startswith(("panic: ", "fatal error: ")):
            kind = _QUOTED.sub("<q>", line.split(" [", 1)[0].strip())
            continue
        if _GO_GOROUTINE.match(line):
            if in_goroutine:
                break  # only the goroutine that failed
            in_goroutine = True
            continue
        if not in_goroutine or not line.strip():
            continue
        f = _GO_FILE.match(line)
        if f:
            frames.append(_path_tail(f.group(1)))
        elif line.startswith("created by "):
            frames.append(line[len("created by ") :].split(" in goroutine", 1)[0].strip())
        elif line.rstrip().endswith(")") and "(" in line:
            frames.append(line[: line.rstrip().rindex("(")].strip())
    if not frames:
        return None
    return "go\x1f" + kind + "\x1f" + "\n".join(frames), kind or "goroutine panic"


def trace_key(masked: str) -> tuple[str, str] | None:
    """The fingerprint key and title of a stack trace whose numbers are masked (``<n>``).

    ``None`` when no trace is recognised (the entry is then keyed by its
    first line). The key holds the exception types and frames only: the
    message of an exception varies between occurrences of the same error.
    """
    lines = masked.splitlines()
    if _PY_START in masked:
        found = _python_trace(lines)
        if found:
            return found
    if "goroutine <n> [" in masked:
        found = _go_trace(lines)
        if found:
            return found
    return _java_trace(lines)


def mask_lines(lines: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Lines with numbers, UUIDs, hex, quoted values, IPs and e-mail addresses masked.

    ``user 'bob' from 10.0.0.7 failed 3 times`` becomes
    ``user '<q>' from <ip> failed <n> times``; ``0x1f``, ``3f2a9c8b`` and ``12`` are all ``<n>``. Masking is idempotent.
    """
    for pattern, replacement in _LINE_MASKS:
        lines = pc.replace_substring_regex(lines, pattern=pattern, replacement=replacement)
    return lines


def _hashes(keys: list[str]) -> np.ndarray:
    """64-bit BLAKE2b hashes of ``keys`` (stable across processes and versions)."""
    out = np.empty(len(keys), dtype=np.uint64)
    for i, key in enumerate(keys):
        out[i] = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return out


def _first_lines(messages: pa.Array) -> pa.Array:
    parts = pc.split_pattern(messages, pattern="\n", max_splits=1)
    first = pc.list_element(parts, 0)
    return pc.utf8_rtrim(first, characters="\r ")


def errors_of(batch: pa.Table) -> pa.Table:
    """One ``ERRORS_SCHEMA`` row per error entry of a ``LOGS_SCHEMA`` batch, in batch order."""
    message = batch.column("message")
    severity = batch.column("severity")
    is_trace = pc.match_substring_regex(message, _TRACE)
    is_error = pc.or_(
        pc.or_(
            pc.not_equal(batch.column("status"), 0),
            pc.and_(pc.greater_equal(severity, 0), pc.less_equal(severity, 3)),
        ),
        is_trace,
    )
    rows = batch.filter(is_error)
    n = rows.num_rows
    if n == 0:
        return ERRORS_SCHEMA.empty_table()
    is_trace = is_trace.filter(is_error).combine_chunks()
    message = rows.column("message").combine_chunks()

    # Everything keyed by its first line; traces that parse override it below.
    first = mask_lines(_first_lines(message))
    fallback = pc.utf8_trim_whitespace(
        pc.binary_join_element_wise(
            rows.column("type").combine_chunks(),
            rows.column("name").combine_chunks(),
            pc.binary_join_element_wise("status", pc.cast(rows.column("status"), pa.string()), " "),
            " ",
        )
    )
    title = pc.if_else(pc.equal(first, ""), fallback, first)
    key = pc.binary_join_element_wise(
        "L",
        rows.column("app").combine_chunks(),
        rows.column("type").combine_chunks(),
        rows.column("name").combine_chunks(),
        pc.cast(rows.column("status").combine_chunks(), pa.string()),
        first,
        "\x1f",
    )
    if pc.any(is_trace).as_py():
        traces = pc.replace_substring_regex(
            message.filter(is_trace), pattern=_TRACE_MASK, replacement="<n>"
        ).dictionary_encode()
        parsed = [trace_key(m) for m in traces.dictionary.to_pylist()]
        ok = pa.array([p is not None for p in parsed], pa.bool_())
        t_keys = pa.array([p[0] if p else "" for p in parsed], pa.string())
        t_titles = pa.array([p[1] if p else "" for p in parsed], pa.string())
        t_ok = pc.take(ok, traces.indices)
        use = pc.replace_with_mask(is_trace, is_trace, t_ok)  # trace rows that parsed
        key = pc.replace_with_mask(key, use, pc.take(t_keys, traces.indices).filter(t_ok))
        title = pc.replace_with_mask(title, use, pc.take(t_titles, traces.indices).filter(t_ok))
    distinct = key.dictionary_encode()
    fingerprint = _hashes(distinct.dictionary.to_pylist())[distinct.indices.to_numpy()]
    return pa.table(
        {
            "ts": rows.column("ts"),
            "uid": rows.column("uid"),
            "fingerprint": pa.array(fingerprint, pa.uint64()),
            "title": pc.utf8_slice_codeunits(title, 0, TITLE_CHARS),
            "host": rows.column("host"),
            "app": rows.column("app"),
            "dc": rows.column("dc"),
            "cluster": rows.column("cluster"),
        },
        schema=ERRORS_SCHEMA,
    )
