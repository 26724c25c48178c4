"""Carbon's storage-schemas.conf and storage-aggregation.conf, as Vigil reads them.

Same syntax as carbon (https://graphite.readthedocs.io/en/latest/config-carbon.html)
so that users bring their files unchanged::

    [servers]
    pattern = ^servers\\.
    retentions = 10s:7d,1m:90d,1h:5y

    [max]
    pattern = \\.max$
    aggregationMethod = max

The first section whose pattern matches a path wins. Each schema becomes a
retention class stored with every point, so that retention drops whole
partitions of that class; each archive after the first becomes a rollup kept
by the engine.
"""

from __future__ import annotations

import configparser
import dataclasses
import re
from pathlib import Path

UNITS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
    "y": 31536000, "year": 31536000, "years": 31536000,
}  # fmt: skip

METHODS = ("average", "sum", "min", "max", "last")

DEFAULT_SCHEMAS = """
[vigil]
pattern = ^vigil\\.
retentions = 10s:7d,1m:90d

[default]
pattern = .*
retentions = 10s:7d,1m:90d,1h:5y
"""

DEFAULT_AGGREGATION = """
[min]
pattern = \\.(min|lower)$
xFilesFactor = 0
aggregationMethod = min

[max]
pattern = \\.(max|upper)$
xFilesFactor = 0
aggregationMethod = max

[sum]
pattern = \\.(count|sum)$
xFilesFactor = 0
aggregationMethod = sum

[default_average]
pattern = .*
xFilesFactor = 0
aggregationMethod = average
"""


class RetentionError(ValueError):
    """A storage-schemas or storage-aggregation file that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Archive:
    """One resolution: a point every ``step`` seconds, kept ``keep`` seconds."""

    step: int
    keep: int


@dataclasses.dataclass(frozen=True)
class Schema:
    """A storage-schemas section: which paths, kept at which resolutions."""

    name: str
    pattern: str
    archives: tuple[Archive, ...]


@dataclasses.dataclass(frozen=True)
class Aggregation:
    """A storage-aggregation section: how to roll up matching paths."""

    name: str
    pattern: str
    method: str
    x_files_factor: float


def parse_duration(text: str, what: str) -> int:
    """Seconds in ``10s``, ``1m``, ``90d``, ``5y``; a bare number means seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-z]*)\s*", text)
    if not m or (m.group(2) and m.group(2) not in UNITS):
        raise RetentionError(f"{what}: {text!r} is not a duration such as 10s, 1m, 90d or 5y")
    return int(m.group(1)) * UNITS.get(m.group(2) or "s", 1)


def parse_retentions(text: str, what: str = "retentions") -> tuple[Archive, ...]:
    """Archives of ``10s:7d,1m:90d,1h:5y``, checked as carbon checks them.

    >>> parse_retentions("10s:7d,1m:90d")
    (Archive(step=10, keep=604800), Archive(step=60, keep=7776000))
    """
    archives = []
    for part in text.split(","):
        step_text, sep, keep_text = part.partition(":")
        if not sep:
            raise RetentionError(f"{what}: {part.strip()!r} must be STEP:KEEP, e.g. 1m:90d")
        step = parse_duration(step_text, what)
        keep = parse_duration(keep_text, what)
        if step <= 0 or keep < step:
            raise RetentionError(f"{what}: {part.strip()!r} must keep at least one step")
        archives.append(Archive(step, keep))
    for finer, coarser in zip(archives, archives[1:]):
        if coarser.step <= finer.step or coarser.step % finer.step:
            raise RetentionError(
                f"{what}: each step must be a multiple of the one before ({text!r})"
            )
        if coarser.keep <= finer.keep:
            raise RetentionError(f"{what}: each archive must keep longer than the one before")
    return tuple(archives)


def _sections(text: str, source: str) -> list[tuple[str, dict[str, str]]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source)
    except configparser.Error as e:
        raise RetentionError(f"{source}: {e}") from None
    out = []
    for name in parser.sections():
        section = dict(parser[name])
        if "pattern" not in section:
            raise RetentionError(f"{source} [{name}]: missing pattern")
        try:
            re.compile(section["pattern"])
        except re.error as e:
            raise RetentionError(f"{source} [{name}]: bad pattern: {e}") from None
        out.append((name, section))
    return out


def parse_schemas(text: str, source: str = "storage-schemas") -> tuple[Schema, ...]:
    """The schemas of a storage-schemas.conf text; a final catch-all is added if missing."""
    schemas = []
    for name, section in _sections(text, source):
        if "retentions" not in section:
            raise RetentionError(f"{source} [{name}]: missing retentions")
        archives = parse_retentions(section["retentions"], f"{source} [{name}]")
        schemas.append(Schema(name, section["pattern"], archives))
    if not schemas or schemas[-1].pattern not in (".*", ""):
        schemas.append(parse_schemas(DEFAULT_SCHEMAS)[-1])
    return tuple(schemas)


def parse_aggregation(text: str, source: str = "storage-aggregation") -> tuple[Aggregation, ...]:
    """The rules of a storage-aggregation.conf text; a final average catch-all is added."""
    rules = []
    for name, section in _sections(text, source):
        method = section.get("aggregationMethod", "average")
        if method == "avg":
            method = "average"
        if method not in METHODS:
            raise RetentionError(
                f"{source} [{name}]: aggregationMethod {method!r} is not one of {', '.join(METHODS)}"
            )
        try:
            xff = float(section.get("xFilesFactor", "0"))
        except ValueError:
            raise RetentionError(f"{source} [{name}]: xFilesFactor must be a number") from None
        rules.append(Aggregation(name, section["pattern"], method, xff))
    if not rules or rules[-1].pattern not in (".*", ""):
        rules.append(Aggregation("default_average", ".*", "average", 0.0))
    return tuple(rules)


@dataclasses.dataclass(frozen=True)
class StoragePolicy:
    """Schemas and aggregation rules together: what the store needs to lay out tables."""

    schemas: tuple[Schema, ...]
    aggregations: tuple[Aggregation, ...]

    @classmethod
    def from_files(cls, schemas_file: str, aggregation_file: str) -> StoragePolicy:
        """The policy from carbon-style files; an empty name means the built-in default."""

        def read(name: str, default: str) -> tuple[str, str]:
            if not name:
                return default, "built-in default"
            try:
                return Path(name).read_text(), name
            except OSError as e:
                raise RetentionError(f"cannot read {name}: {e.strerror}") from None

        return cls(
            parse_schemas(*read(schemas_file, DEFAULT_SCHEMAS)),
            parse_aggregation(*read(aggregation_file, DEFAULT_AGGREGATION)),
        )

    def schema_index(self, path: str) -> int:
        """Index of the first schema matching ``path`` (the retention class)."""
        return next(i for i, s in enumerate(self.schemas) if re.search(s.pattern, path))

    def aggregation_index(self, path: str) -> int:
        """Index of the first aggregation rule matching ``path``."""
        return next(i for i, a in enumerate(self.aggregations) if re.search(a.pattern, path))

    def rollup_steps(self) -> dict[int, list[int]]:
        """Each coarser step kept by some schema, with the retention classes that keep it."""
        steps: dict[int, list[int]] = {}
        for cls, schema in enumerate(self.schemas):
            for archive in schema.archives[1:]:
                steps.setdefault(archive.step, []).append(cls)
        return dict(sorted(steps.items()))

    def archive_for(self, cls: int, start: int, now: int) -> Archive:
        """The finest archive of class ``cls`` whose retention still covers ``start``."""
        archives = self.schemas[cls].archives
        return next((a for a in archives if now - a.keep <= start), archives[-1])
