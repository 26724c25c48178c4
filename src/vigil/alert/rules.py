"""Alert rules and notifiers, read from versionable TOML or YAML files (docs/alerts.md).

A rules directory holds any number of ``*.toml``, ``*.yaml`` and ``*.yml``
files; each has ``[[rule]]`` entries and ``[notifier.NAME]`` tables (YAML:
a ``rule`` list and a ``notifier`` mapping). The directory is read as a
whole: one bad file rejects the whole load, with its file, line and problem,
so a reload never leaves half of a change active.

>>> ruleset = parse_file(Path("api.toml"), '''
... [[rule]]
... name = "api-load"
... target = "servers.*.load"
... warning = 3
... critical = 5
... ''')
>>> ruleset.rules[0].interval, ruleset.rules[0].source
(60, 'target')
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from vigil.query.cubequery import DIMENSIONS, MEASURES
from vigil.query.errors import RenderError
from vigil.query.grammar import parse
from vigil.query.logquery import FILTER_FIELDS
from vigil.query.timeparse import parse_interval

SUFFIXES = (".toml", ".yaml", ".yml")
# Exactly one of these says what a rule watches.
SOURCES = ("target", "cube", "search", "heartbeat", "check")
DIRECTIONS = ("above", "below")
REDUCERS = ("last", "avg", "min", "max", "sum")
NODATA = ("ok", "warning", "critical", "unknown")
NOTIFIER_TYPES = {"webhook": ("url",), "email": ("to",), "command": ("command",)}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


_DURATION = re.compile(r"(\d+)(s|m|h|d|w)")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds of ``"90s"``, ``"10m"``, ``"1h30m"`` (Prometheus style) or a Graphite interval.

    >>> parse_duration("1h30m"), parse_duration("5min")
    (5400, 300)
    """
    compact = text.strip().replace(" ", "")
    if compact and _DURATION.sub("", compact) == "":
        return sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION.findall(compact))
    try:
        return parse_interval(compact)
    except RenderError as e:
        raise ValueError(str(e)) from None


class RuleFileError(ValueError):
    """A rules file that cannot be loaded: ``file:line: problem``."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One alert rule; durations are seconds."""

    name: str
    source: str  # which of SOURCES
    spec: Any  # the source's value: an expression, a table, a glob or a command
    warning: float | None = None
    critical: float | None = None
    direction: str = "above"
    interval: int = 60
    for_: int = 0
    window: int = 300
    reduce: str = "last"
    nodata: str = "unknown"
    attempts: int = 1
    repeat: int = 0
    timeout: int = 60  # heartbeat silence, or a check's run time limit
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    notify: tuple[str, ...] = ()
    heal: str | None = None
    heal_webhook: str | None = None
    heal_cooldown: int = 600
    heal_grace: int = 120
    heal_timeout: int = 60
    flap_low: float = 25.0
    flap_high: float = 50.0
    file: str = ""
    line: int = 0

    @property
    def heals(self) -> bool:
        """Whether the rule carries a heal action."""
        return bool(self.heal or self.heal_webhook)


@dataclasses.dataclass(frozen=True)
class Notifier:
    """A notification route: ``type`` is webhook, email or command."""

    name: str
    type: str
    options: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """Every rule and notifier of a rules directory."""

    rules: tuple[Rule, ...] = ()
    notifiers: Mapping[str, Notifier] = dataclasses.field(default_factory=dict)
    files: tuple[str, ...] = ()

    def rule(self, name: str) -> Rule | None:
        """The rule called ``name``, if any."""
        return next((r for r in self.rules if r.name == name), None)


def load_dir(directory: Path) -> RuleSet:
    """Every rules file of ``directory`` (sorted by name), checked as a whole.

    A missing directory is an empty rule set. Raises ``RuleFileError``.
    """
    files = sorted(p for p in directory.glob("*") if p.suffix in SUFFIXES and p.is_file())
    parts = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RuleFileError(path, None, f"cannot read: {e}") from None
        parts.append(parse_file(path, text))
    ruleset = merge(parts)
    _check_routes(ruleset)
    return ruleset


def merge(parts: Iterable[RuleSet]) -> RuleSet:
    """One rule set of several files; a name defined twice is an error naming both places."""
    rules: dict[str, Rule] = {}
    notifiers: dict[str, Notifier] = {}
    files: list[str] = []
    for part in parts:
        files += part.files
        for rule in part.rules:
            if rule.name in rules:
                first = rules[rule.name]
                raise RuleFileError(
                    Path(rule.file),
                    rule.line,
                    f"rule {rule.name!r} is also defined at {first.file}:{first.line}",
                )
            rules[rule.name] = rule
        for name, notifier in part.notifiers.items():
            if name in notifiers:
                raise RuleFileError(Path(part.files[0]), None, f"notifier {name!r} defined twice")
            notifiers[name] = notifier
    return RuleSet(tuple(rules.values()), notifiers, tuple(files))


def _check_routes(ruleset: RuleSet) -> None:
    """Every route a rule notifies is a notifier of some file."""
    for rule in ruleset.rules:
        for route in rule.notify:
            if route not in ruleset.notifiers:
                known = ", ".join(sorted(ruleset.notifiers)) or "none defined"
                raise RuleFileError(
                    Path(rule.file),
                    rule.line,
                    f"rule {rule.name!r} notifies {route!r}, which is not a notifier"
                    f" (notifiers: {known}); add a [notifier.{route}] table",
                )


def parse_file(path: Path, text: str) -> RuleSet:
    """The rules and notifiers of one file's text; ``RuleFileError`` names the line."""
    if path.suffix == ".toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            at = re.search(r"at line (\d+)", str(e))
            line = int(at.group(1)) if at else len(text.rstrip().splitlines())
            raise RuleFileError(path, line, str(e)) from None
        lines = _toml_lines(text)
    else:
        doc, lines = _yaml_doc(path, text)
    if not isinstance(doc, dict):
        raise RuleFileError(path, 1, "expected a table of 'rule' entries and 'notifier' tables")
    unknown = {str(k) for k in doc} - {"rule", "notifier"}
    if unknown:
        key = sorted(unknown)[0]
        raise RuleFileError(
            path,
            lines.get((key,)),
            f"unknown top-level key {key!r}; use [[rule]] and [notifier.NAME]",
        )
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RuleFileError(
            path, lines.get(("rule",)), "'rule' must be a list of tables ([[rule]])"
        )
    raw_notifiers = doc.get("notifier", {})
    if not isinstance(raw_notifiers, dict):
        raise RuleFileError(path, lines.get(("notifier",)), "'notifier' must be a table of tables")
    rules = tuple(_rule(path, i, raw, lines) for i, raw in enumerate(raw_rules))
    notifiers = {name: _notifier(path, name, raw, lines) for name, raw in raw_notifiers.items()}
    return merge([RuleSet(rules, notifiers, (str(path),))])


Lines = dict[tuple[Any, ...], int]


class _Checker:
    """Reads one rule's or notifier's table, raising errors that name the key's line."""

    def __init__(self, path: Path, raw: Any, at: tuple[Any, ...], lines: Lines) -> None:
        self.path = path
        self.at = at
        self.lines = lines
        if not isinstance(raw, dict):
            raise self.error(None, "expected a table of key = value")
        self.raw: dict[str, Any] = raw

    def error(self, key: str | None, problem: str) -> RuleFileError:
        line = (self.lines.get((*self.at, key)) if key else None) or self.lines.get(self.at)
        return RuleFileError(self.path, line, problem)

    def unknown(self, allowed: Iterable[str], what: str) -> None:
        extra = sorted({str(k) for k in self.raw} - set(allowed))
        if extra:
            raise self.error(extra[0], f"{what}: unknown key {extra[0]!r}")

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.raw.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.error(key, f"{key} must be a string")
        return value

    def number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"{key} must be a number, not {value!r}")
        return float(value)

    def duration(self, key: str, default: int) -> int:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            seconds = value
        elif isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError:
                raise self.error(
                    key, f"{key} = {value!r}: use a duration like 30s, 5m, 2h"
                ) from None
        else:
            raise self.error(key, f'{key} must be a duration like "10s"')
        if seconds < 0:
            raise self.error(key, f"{key} must not be negative")
        return seconds

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default) or default
        if value not in choices:
            raise self.error(key, f"{key} = {value!r}: use one of {', '.join(choices)}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"{key} must be a list of strings")
        return tuple(value)

    def table(self, key: str) -> dict[str, str]:
        value = self.raw.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"{key} must be a table of name = value")
        return {str(k): str(v) for k, v in value.items()}


_RULE_KEYS = (
    *SOURCES, "name", "warning", "critical", "direction", "interval", "for", "window",
    "reduce", "nodata", "attempts", "repeat", "timeout", "labels", "notify", "heal",
    "heal_webhook", "heal_cooldown", "heal_grace", "heal_timeout", "flap_low", "flap_high",
)  # fmt: skip


def _rule(path: Path, index: int, raw: Any, lines: Lines) -> Rule:
    c = _Checker(path, raw, ("rule", index), lines)
    name = c.text("name")
    if not name or not _NAME.match(name):
        raise c.error("name", "every rule needs a name of letters, digits, '.', '_' or '-'")
    what = f"rule {name!r}"
    c.unknown(_RULE_KEYS, what)
    given = [s for s in SOURCES if s in c.raw]
    if len(given) != 1:
        raise c.error(
            given[1] if len(given) > 1 else "name",
            f"{what} needs exactly one of {', '.join(SOURCES)} (it has {len(given)})",
        )
    source = given[0]
    spec = _source_spec(c, source, what)
    warning, critical = c.number("warning"), c.number("critical")
    if source in ("target", "cube", "search") and warning is None and critical is None:
        raise c.error(source, f"{what} needs a warning or a critical threshold")
    direction = c.choice("direction", DIRECTIONS, "above")
    if not _ordered(warning, critical, direction):
        raise c.error(
            "critical",
            f"{what}: critical {critical:g} is less severe than warning {warning:g}"
            f" for direction {direction!r}",
        )
    interval = c.duration("interval", 60)
    if interval < 1:
        raise c.error("interval", f"{what}: interval must be at least 1s")
    attempts = int(c.number("attempts") or 1)
    if attempts < 1:
        raise c.error("attempts", f"{what}: attempts must be at least 1")
    flap_low = c.number("flap_low")
    flap_high = c.number("flap_high")
    low = 25.0 if flap_low is None else flap_low
    high = 50.0 if flap_high is None else flap_high
    if not 0 <= low <= high <= 100:
        raise c.error("flap_high", f"{what}: need 0 <= flap_low <= flap_high <= 100")
    return Rule(
        name=name,
        source=source,
        spec=spec,
        warning=warning,
        critical=critical,
        direction=direction,
        interval=interval,
        for_=c.duration("for", 0),
        window=c.duration("window", max(300, 5 * interval)),
        reduce=c.choice("reduce", REDUCERS, "last"),
        nodata=c.choice("nodata", NODATA, "unknown"),
        attempts=attempts,
        repeat=c.duration("repeat", 0),
        timeout=c.duration("timeout", 60),
        labels=c.table("labels"),
        notify=c.strings("notify"),
        heal=c.text("heal"),
        heal_webhook=c.text("heal_webhook"),
        heal_cooldown=c.duration("heal_cooldown", 600),
        heal_grace=c.duration("heal_grace", 120),
        heal_timeout=c.duration("heal_timeout", 60),
        flap_low=low,
        flap_high=high,
        file=str(path),
        line=lines.get(("rule", index), 0),
    )


def _ordered(warning: float | None, critical: float | None, direction: str) -> bool:
    """Whether critical is at least as severe as warning (or one is unset)."""
    if warning is None or critical is None:
        return True
    return critical >= warning if direction == "above" else critical <= warning


def _source_spec(c: _Checker, source: str, what: str) -> Any:
    """The checked value of a rule's source key."""
    if source == "target":
        target = c.text("target") or ""
        try:
            parse(target)
        except RenderError as e:
            raise c.error("target", f"{what}: target: {e}") from None
        return target
    if source in ("heartbeat", "check"):
        value = c.text(source)
        if not value or not value.strip():
            raise c.error(source, f"{what}: {source} must not be empty")
        return value
    raw = c.raw[source]
    if source == "search" and isinstance(raw, str):
        raw = {"q": raw}
    if not isinstance(raw, dict):
        raise c.error(source, f"{what}: {source} must be a table")
    if source == "search":
        allowed: tuple[str, ...] = ("q", *FILTER_FIELDS)
    else:
        allowed = ("measure", "group_by", *DIMENSIONS)
    extra = sorted(set(raw) - set(allowed))
    if extra:
        raise c.error(
            source, f"{what}: {source} has unknown key {extra[0]!r}; keys: {', '.join(allowed)}"
        )
    if source == "cube":
        measure = raw.get("measure", "count")
        if measure not in MEASURES:
            raise c.error("cube", f"{what}: measure {measure!r}; measures: {', '.join(MEASURES)}")
        group_by = raw.get("group_by", [])
        group_by = [group_by] if isinstance(group_by, str) else group_by
        if not isinstance(group_by, list) or any(d not in DIMENSIONS for d in group_by):
            raise c.error("cube", f"{what}: group_by takes dimensions: {', '.join(DIMENSIONS)}")
        raw = {**raw, "measure": measure, "group_by": group_by}
    elif not raw.get("q") and not set(raw) & set(FILTER_FIELDS):
        raise c.error("search", f"{what}: a search needs words (q) or a field such as app or host")
    return raw


def _notifier(path: Path, name: str, raw: Any, lines: Lines) -> Notifier:
    c = _Checker(path, raw, ("notifier", name), lines)
    if not isinstance(name, str) or not _NAME.match(name):
        raise c.error(None, f"notifier name {name!r}: use letters, digits, '.', '_' or '-'")
    if "type" not in c.raw:
        raise c.error(None, f"notifier {name!r} needs type = one of {', '.join(NOTIFIER_TYPES)}")
    kind = c.choice("type", tuple(NOTIFIER_TYPES), "")
    for key in NOTIFIER_TYPES[kind]:
        if not c.raw.get(key):
            raise c.error(None, f"notifier {name!r} of type {kind} needs {key}")
    options = dict(c.raw)
    options.pop("type")
    if kind == "email":
        options["to"] = list(c.strings("to"))
    for key in ("timeout", "retry_backoff"):
        if key in options:
            options[key] = c.duration(key, 0)
    return Notifier(name, kind, options)


_TOML_HEADER = re.compile(r"^\s*\[(\[)?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _toml_lines(text: str) -> Lines:
    """Line numbers of rules, notifiers and their keys, found by scanning the text.

    ``tomllib`` keeps no positions; headers and ``key =`` lines are enough
    to point a user at the place of a problem.
    """
    lines: Lines = {}
    at: tuple[Any, ...] = ()
    rules = -1
    for number, line in enumerate(text.splitlines(), 1):
        header = _TOML_HEADER.match(line)
        if header:
            parts = [p.strip().strip("\"'") for p in header.group(2).split(".")]
            if header.group(1) and parts == ["rule"]:
                rules += 1
                at = ("rule", rules)
            elif parts[0] == "notifier" and len(parts) == 2:
                at = ("notifier", parts[1])
            elif parts[0] == "rule" and rules >= 0:
                continue  # a sub-table such as [rule.labels] of the last rule
            else:
                at = (parts[0],)
            lines.setdefault(at, number)
            continue
        key = _TOML_KEY.match(line)
        if key:
            lines.setdefault((*at, key.group(1).strip("\"'")), number)
    return lines


def _yaml_doc(path: Path, text: str) -> tuple[Any, Lines]:
    """The document of a YAML file and the line of every mapping key in it."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RuleFileError(path, mark.line + 1 if mark else None, str(e)) from None
    lines: Lines = {}

    def walk(n: yaml.Node | None, at: tuple[Any, ...]) -> None:
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                here = (*at, key.value)
                lines.setdefault(here, key.start_mark.line + 1)
                walk(value, here)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines.setdefault((*at, i), item.start_mark.line + 1)
                walk(item, (*at, i))

    walk(node, ())
    return doc if doc is not None else {}, lines
