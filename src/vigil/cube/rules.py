"""Extraction rules: metric points from ``line`` log entries (docs/rules.md).

A rule selects entries (a regex on the message and/or exact field values) and
says what to measure: ``count`` (1 per entry, summed per path and second) or
a number captured by a named group. Its metric path is a template filled
from captured groups and entry fields:

>>> rule = Rule.from_dict({"name": "nginx-latency",
...     "match": "upstream_response_time=(?P<latency>[0-9.]+)",
...     "metric": "logs.{app}.{host}.upstream_ms", "value": "latency", "scale": 1000})
>>> rule.metric
'logs.{app}.{host}.upstream_ms'

The semantics are Python's ``re`` (``re.search``, first match). For speed a
rule is evaluated over a whole batch at once with Arrow's RE2 kernels where
RE2 gives the same answer: the pattern compiles in RE2 and uses nothing RE2
reads differently, and the message is plain ASCII without a trailing newline
(where ``\\s``, ``$`` and case folding agree). Other patterns and messages go
through Python's ``re`` one row at a time. Errors are never raised by
``apply``: a broken rule is reported when loaded, a capture that is not a
number is counted against its rule.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import string
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.model import POINTS_SCHEMA

# Placeholders of a metric template filled from entry fields (when no group has the name).
TEMPLATE_FIELDS = ("host", "app", "dc", "cluster", "name", "type")
# Fields a rule can filter on, with the type of their values.
FILTER_FIELDS: dict[str, type] = {
    "kind": str,
    "host": str,
    "cluster": str,
    "dc": str,
    "app": str,
    "type": str,
    "name": str,
    "status": int,
    "severity": int,
    "facility": int,
}
# How the points of a value rule sharing a path and second are combined.
AGGREGATES = ("none", "sum", "avg", "min", "max")
RULE_KEYS = ("name", "match", "metric", "value", "scale", "fields", "agg")
NOT_A_NUMBER = "capture is not a number"
# Reserved by the API's routes (/api/rules/backfill/...).
_RESERVED_NAMES = ("backfill",)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}\Z")
# Characters of a field or capture that would change a Graphite path's meaning.
_UNSAFE_PATH = r"[.\s/\\*?\[\]{},]"
_LITERAL_BAD = re.compile(r"[\s*?\[\]{},/\\]")
# A number as a capture must spell it (the same in RE2 and Python).
_NUMBER_RE2 = r"\A[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\z"
_NUMBER_PY = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
# Messages on which RE2 and Python ``re`` may disagree: non-ASCII (Unicode
# classes and case folding differ), VT and 0x1c-0x1f (Python's ``\s`` takes
# them), or a trailing newline (Python's ``$`` matches before it).
_PYTHON_ROWS = r"[^\x00-\x0a\x0c-\x1b\x20-\x7f]|\n\z"
# Pattern text RE2 accepts with another meaning than Python: ``{,n}`` (a
# literal in RE2) and POSIX classes ``[[:digit:]]`` (a nested set in Python).
_RE2_DIFFERENT = ("{,", "[:")


class RuleError(ValueError):
    """A rule that cannot be used; the message names the rule and what to change."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """One extraction rule as written in the rules file or posted to the API.

    ``fields`` maps a field to the values it may have (any of them);
    ``value`` is ``"count"`` or the name of a group capturing a number, which
    is multiplied by ``scale``. Build rules with ``from_dict``, which checks them.
    """

    name: str
    metric: str
    match: str = ""
    fields: tuple[tuple[str, tuple[str | int, ...]], ...] = ()
    value: str = "count"
    scale: float = 1.0
    agg: str = "none"

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Rule:
        """A checked rule from its TOML/JSON form; ``RuleError`` says what is wrong."""
        if not isinstance(doc, Mapping):
            raise RuleError("a rule must be a table/object with name, match or fields, metric")
        name = doc.get("name")
        label = f"rule {name!r}" if isinstance(name, str) and name else "rule"
        unknown = sorted(set(doc) - set(RULE_KEYS))
        if unknown:
            raise RuleError(f"{label}: unknown key(s) {', '.join(unknown)}; use {RULE_KEYS}")
        if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED_NAMES:
            raise RuleError(
                f"{label}: name must be 1-100 letters, digits, '_', '-' or '.'"
                f" (and not {', '.join(_RESERVED_NAMES)})"
            )
        for key in ("metric",):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise RuleError(f"{label}: missing {key} (a Graphite path template)")
        match = doc.get("match", "")
        value = doc.get("value", "count")
        agg = doc.get("agg", "none")
        scale = doc.get("scale", 1.0)
        if not isinstance(match, str):
            raise RuleError(f"{label}: match must be a string (a regular expression)")
        if not isinstance(value, str) or not value:
            raise RuleError(f"{label}: value must be 'count' or the name of a captured group")
        if (
            isinstance(scale, bool)
            or not isinstance(scale, int | float)
            or not math.isfinite(scale)
        ):
            raise RuleError(f"{label}: scale must be a finite number")
        if agg not in AGGREGATES:
            raise RuleError(f"{label}: agg must be one of {', '.join(AGGREGATES)}")
        rule = cls(
            name=name,
            metric=doc["metric"],
            match=match,
            fields=_parse_fields(label, doc.get("fields", {})),
            value=value,
            scale=float(scale),
            agg=agg,
        )
        if not rule.match and not rule.fields:
            raise RuleError(f"{label}: give match (a regex), fields (filters) or both")
        _Compiled(rule)  # raises RuleError for a bad regex, template or value
        return rule

    def to_dict(self) -> dict[str, Any]:
        """The rule in the form ``from_dict`` reads (and the API answers)."""
        doc: dict[str, Any] = {"name": self.name, "metric": self.metric, "value": self.value}
        if self.match:
            doc["match"] = self.match
        if self.fields:
            doc["fields"] = {f: list(v) if len(v) > 1 else v[0] for f, v in self.fields}
        if self.scale != 1.0:
            doc["scale"] = self.scale
        if self.agg != "none":
            doc["agg"] = self.agg
        return doc


def _parse_fields(label: str, raw: Any) -> tuple[tuple[str, tuple[str | int, ...]], ...]:
    if not isinstance(raw, Mapping):
        raise RuleError(f'{label}: fields must be a table such as {{app = "nginx"}}')
    out = []
    for field, values in sorted(raw.items()):
        kind = FILTER_FIELDS.get(field)
        if kind is None:
            raise RuleError(
                f"{label}: cannot filter on field {field!r}; use {', '.join(FILTER_FIELDS)}"
            )
        listed = values if isinstance(values, list) else [values]
        if not listed or any(type(v) is not kind for v in listed):
            raise RuleError(f"{label}: fields.{field} must be a {kind.__name__} or a list of them")
        out.append((field, tuple(listed)))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class _Part:
    """A piece of a metric template: literal text, a field or a captured group."""

    text: str
    source: str  # "literal", "field" or "group"


class _Compiled:
    """A rule ready to run over batches: its regex, how it runs, and its template."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        label = f"rule {rule.name!r}"
        try:
            self.regex = re.compile(rule.match) if rule.match else None
        except re.error as e:
            raise RuleError(f"{label}: bad regex {rule.match!r}: {e}") from None
        groups = set(self.regex.groupindex) if self.regex else set()
        self.parts = _parse_template(label, rule.metric, groups)
        self.counting = rule.value == "count"
        if not self.counting and rule.value not in groups:
            raise RuleError(
                f"{label}: value {rule.value!r} is neither 'count' nor a named group of match"
                f" (groups: {', '.join(sorted(groups)) or 'none'}; name one as (?P<{rule.value}>...))"
            )
        needed = {p.text for p in self.parts if p.source == "group"}
        if not self.counting:
            needed.add(rule.value)
        self.groups = tuple(sorted(needed))
        self.template_fields = tuple(sorted({p.text for p in self.parts if p.source == "field"}))
        self.mode = _mode(rule.match, bool(self.groups)) if rule.match else "none"

    def select(self, batch: pa.Table, lines: pa.ChunkedArray) -> pa.Table:
        """The entries of ``batch`` the rule's field filters (and kind) let through."""
        filters = dict(self.rule.fields)
        mask = lines if "kind" not in filters else None
        for field, values in filters.items():
            column = batch.column(field)
            hit = pc.is_in(column, value_set=pa.array(values, type=column.type))
            mask = hit if mask is None else pc.and_(mask, hit)
        columns = ["ts", "message", *self.template_fields]
        if "_python" in batch.column_names:
            columns.append("_python")
        return batch.select(columns).filter(mask)

    def match(self, rows: pa.Table) -> tuple[pa.Table, dict[str, pa.Array]]:
        """The rows whose message matches, and the captured groups of each."""
        if self.mode == "none" or not rows.num_rows:
            return rows, {g: pa.array([""] * rows.num_rows, pa.string()) for g in self.groups}
        if self.mode == "python":
            return self._match_python(rows)
        python = rows.column("_python")
        fast, slow = rows.filter(pc.invert(python)), rows.filter(python)
        if self.mode == "re2-filter":
            # RE2 cannot extract (unnamed groups): it preselects, Python extracts.
            hit = pc.match_substring_regex(fast.column("message"), self.rule.match)
            return self._match_python(pa.concat_tables([fast.filter(hit), slow]))
        message = fast.column("message")
        # Matching is several times faster than extracting: extract from the matches only.
        fast = fast.filter(pc.match_substring_regex(message, self.rule.match))
        groups = {}
        if self.groups:
            found = pc.extract_regex(fast.column("message"), self.rule.match)
            groups = {g: pc.struct_field(found, g) for g in self.groups}
        slow, slow_groups = self._match_python(slow)
        if not slow.num_rows:
            return fast, {g: _array(v) for g, v in groups.items()}
        joined = {
            g: _array(pa.chunked_array([*_chunks(groups[g]), slow_groups[g]])) for g in groups
        }
        return pa.concat_tables([fast, slow]), joined

    def _match_python(self, rows: pa.Table) -> tuple[pa.Table, dict[str, pa.Array]]:
        assert self.regex is not None
        search = self.regex.search
        keep: list[int] = []
        captured: dict[str, list[str]] = {g: [] for g in self.groups}
        for i, message in enumerate(rows.column("message").to_pylist()):
            m = search(message)
            if m is None:
                continue
            keep.append(i)
            for g, out in captured.items():
                out.append(m.group(g) or "")
        groups = {g: pa.array(v, pa.string()) for g, v in captured.items()}
        return rows.take(pa.array(keep, pa.int64())), groups

    def points(self, rows: pa.Table, groups: dict[str, pa.Array]) -> tuple[pa.Table, int]:
        """The points of matched rows, and how many rows had no usable number."""
        errors = 0
        if self.counting:
            values = pa.array([1.0] * rows.num_rows, pa.float64())
        else:
            text = groups[self.rule.value]
            ok = pc.match_substring_regex(text, _NUMBER_RE2)
            numbers = pc.cast(text.filter(ok), pa.float64())
            finite = pc.is_finite(numbers)
            ok_all = _scatter(ok, finite)
            errors = rows.num_rows - int(pc.sum(finite).as_py() or 0)
            rows = rows.filter(ok_all)
            groups = {g: v.filter(ok_all) for g, v in groups.items()}
            values = numbers.filter(finite)
            if self.rule.scale != 1.0:
                values = pc.multiply(values, self.rule.scale)
        if not rows.num_rows:
            return POINTS_SCHEMA.empty_table(), errors
        pieces: list[Any] = []
        for part in self.parts:
            if part.source == "literal":
                pieces.append(pa.scalar(part.text))
            elif part.source == "group":
                pieces.append(_path_safe(groups[part.text]))
            else:
                pieces.append(_path_safe_dictionary(rows.column(part.text)))
        if all(isinstance(p, pa.Scalar) for p in pieces):
            path = pa.array(
                [self.rule.metric.replace("{{", "{").replace("}}", "}")] * rows.num_rows
            )
        else:
            path = pc.binary_join_element_wise(*pieces, "")
        seconds = pc.cast(pc.divide(pc.cast(rows.column("ts"), pa.int64()), 1000), pa.uint32())
        table = pa.table({"path": _array(path), "ts": _array(seconds), "value": _array(values)})
        agg = "sum" if self.counting else self.rule.agg
        if agg != "none":
            method = "mean" if agg == "avg" else agg
            table = table.group_by(["path", "ts"], use_threads=False).aggregate([("value", method)])
            table = table.rename_columns(["path", "ts", "value"]).select(["path", "ts", "value"])
        return pa.Table.from_arrays(table.columns, schema=POINTS_SCHEMA), errors


def _array(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values


def _chunks(values: Any) -> list[pa.Array]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def _scatter(ok: pa.Array, finite: pa.Array) -> pa.Array:
    """``ok`` narrowed to the rows whose number (one per true ``ok``) is also finite."""
    out = ok.to_numpy(zero_copy_only=False).copy()
    out[out] = finite.to_numpy(zero_copy_only=False)
    return pa.array(out)


def _path_safe(values: Any) -> Any:
    """Text made into one path node: separators become ``_``, empty becomes ``_``."""
    safe = pc.replace_substring_regex(values, _UNSAFE_PATH, "_")
    return pc.if_else(pc.equal(safe, ""), "_", safe)


def _path_safe_dictionary(values: pa.ChunkedArray) -> pa.Array:
    """``_path_safe`` done once per distinct value (fields repeat a lot)."""
    distinct = pc.unique(values)
    return pc.take(_path_safe(distinct), pc.index_in(values, value_set=distinct))


def _parse_template(label: str, metric: str, groups: set[str]) -> list[_Part]:
    """The pieces of a metric template, e.g. ``"logs.{app}.{status}"`` with group ``status``.

    A name is a captured group when ``match`` has one of that name, else one
    of ``TEMPLATE_FIELDS``.
    """
    parts: list[_Part] = []
    try:
        parsed = list(string.Formatter().parse(metric))
    except ValueError as e:
        raise RuleError(f"{label}: bad metric template {metric!r}: {e}") from None
    for literal, field, spec, conversion in parsed:
        if literal:
            if _LITERAL_BAD.search(literal) or ".." in literal:
                raise RuleError(
                    f"{label}: metric {metric!r} has spaces, '..', slashes or glob characters"
                )
            parts.append(_Part(literal, "literal"))
        if field is None:
            continue
        if spec or conversion or not field.isidentifier():
            raise RuleError(f"{label}: metric placeholder {{{field}}} must be a plain name")
        if field in groups:
            parts.append(_Part(field, "group"))
        elif field in TEMPLATE_FIELDS:
            parts.append(_Part(field, "field"))
        else:
            raise RuleError(
                f"{label}: metric placeholder {{{field}}} is neither a named group of match"
                f" nor a field ({', '.join(TEMPLATE_FIELDS)})"
            )
    if metric.startswith(".") or metric.endswith("."):
        raise RuleError(f"{label}: metric {metric!r} must not start or end with '.'")
    return parts


@functools.lru_cache(maxsize=1024)
def _mode(pattern: str, extract: bool) -> str:
    """How a pattern runs: ``re2``, ``re2-filter`` (RE2 preselects, Python extracts) or ``python``."""
    if not pattern.isascii() or any(text in pattern for text in _RE2_DIFFERENT):
        return "python"
    probe = pa.array([""], pa.string())
    try:
        pc.match_substring_regex(probe, pattern)
    except pa.ArrowException:
        return "python"
    if extract:
        try:
            pc.extract_regex(probe, pattern)
        except pa.ArrowException:
            return "re2-filter"
    return "re2"


def regex_mode(rule: Rule) -> str:
    """How ``rule``'s regex runs (``none``, ``re2``, ``re2-filter`` or ``python``), for listings."""
    return _Compiled(rule).mode


class RuleSet:
    """Rules that load and their load errors; ``apply`` runs them over batches.

    Immutable: a changed set of rules is a new ``RuleSet``.
    """

    def __init__(self, rules: Iterable[Rule] = (), errors: Iterable[dict[str, str]] = ()) -> None:
        self._compiled = [_Compiled(r) for r in rules]
        self.rules = [c.rule for c in self._compiled]
        self.errors = list(errors)
        self._any_re2 = any(c.mode.startswith("re2") for c in self._compiled)

    @classmethod
    def from_dicts(cls, docs: Iterable[Any], source: str = "") -> RuleSet:
        """Rules from their dict forms; a bad one or a repeated name is an error, not fatal."""
        rules: list[Rule] = []
        errors: list[dict[str, str]] = []
        for doc in docs:
            name = str(doc.get("name", "")) if isinstance(doc, Mapping) else ""
            try:
                rule = Rule.from_dict(doc)
            except RuleError as e:
                errors.append({"rule": name, "error": f"{source}{e}"})
                continue
            if any(r.name == rule.name for r in rules):
                errors.append({"rule": name, "error": f"{source}rule {name!r} is defined twice"})
                continue
            rules.append(rule)
        return cls(rules, errors)

    def only(self, name: str) -> RuleSet:
        """The set holding only the rule ``name``; ``KeyError`` when there is none."""
        for rule in self.rules:
            if rule.name == name:
                return RuleSet([rule])
        raise KeyError(name)

    def apply(self, batch: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        """``POINTS_SCHEMA`` points of a ``LOGS_SCHEMA`` batch, and errors per rule (non-zero)."""
        outcome = self.apply_detailed(batch)
        return outcome.points, outcome.error_counts()

    def apply_detailed(self, batch: pa.Table) -> Outcome:
        """As ``apply``, with each rule's errors per reason and its number of points."""
        outcome = Outcome(POINTS_SCHEMA.empty_table())
        if not self._compiled or not batch.num_rows:
            return outcome
        lines = pc.equal(batch.column("kind"), "line")
        if self._any_re2:
            batch = batch.append_column("_python", python_rows(batch.column("message")))
        tables = []
        for rule in self._compiled:
            name = rule.rule.name
            try:
                rows, groups = rule.match(rule.select(batch, lines))
                points, bad = rule.points(rows, groups)
            except (pa.ArrowException, ValueError, TypeError, re.error) as e:
                outcome.errors.setdefault(name, {})[f"failed: {e}"] = batch.num_rows
                continue
            if bad:
                outcome.errors.setdefault(name, {})[NOT_A_NUMBER] = bad
            if points.num_rows:
                outcome.produced[name] = points.num_rows
                tables.append(points)
        if tables:
            outcome.points = pa.concat_tables(tables)
        return outcome


@dataclasses.dataclass
class Outcome:
    """What a ``RuleSet`` made of a batch: points, errors per rule and reason, points per rule."""

    points: pa.Table
    errors: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    produced: dict[str, int] = dataclasses.field(default_factory=dict)

    def error_counts(self) -> dict[str, int]:
        """Errors per rule, whatever the reason."""
        return {name: sum(reasons.values()) for name, reasons in self.errors.items()}


def python_rows(messages: pa.ChunkedArray) -> pa.Array:
    """Which messages must go through Python's ``re`` (see ``_PYTHON_ROWS``).

    One numpy pass over the bytes of the column: several times faster than the
    same test as an RE2 scan, and most batches have no such message at all.
    """
    masks = []
    for chunk in messages.chunks:
        if chunk.type != pa.string():
            masks.append(pc.match_substring_regex(chunk, _PYTHON_ROWS).to_numpy(False))
            continue
        n = len(chunk)
        if n == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], np.int32)[chunk.offset : chunk.offset + n + 1]
        data = chunk.buffers()[2]
        raw = (
            np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
            if data
            else np.zeros(0, np.uint8)
        )
        odd = (raw >= 0x80) | (raw == 0x0B) | ((raw >= 0x1C) & (raw <= 0x1F))
        mask = np.zeros(n, bool)
        where = np.flatnonzero(odd)
        if len(where):
            mask[np.searchsorted(offsets, where + offsets[0], side="right") - 1] = True
        masks.append(mask)
    odd_bytes = pa.array(np.concatenate(masks) if masks else np.zeros(0, bool))
    return pc.or_(odd_bytes, pc.ends_with(messages, "\n").combine_chunks())


def load_rules(path: Path) -> RuleSet:
    """The rules of a TOML file of ``[[rule]]`` tables; problems are listed, never raised.

    A file that cannot be read or parsed gives a set without rules whose
    ``errors`` say why.
    """
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        return RuleSet([], [{"rule": "", "error": f"rules file {path}: {e}"}])
    unknown = sorted(set(doc) - {"rule"})
    tables = doc.get("rule", [])
    errors = [
        {"rule": "", "error": f"rules file {path}: unknown section [{u}]; rules are [[rule]]"}
        for u in unknown
    ]
    if not isinstance(tables, list):
        tables = []
        errors.append({"rule": "", "error": f"rules file {path}: write rules as [[rule]] tables"})
    loaded = RuleSet.from_dicts(tables, source=f"{path}: ")
    return RuleSet(loaded.rules, errors + loaded.errors)
