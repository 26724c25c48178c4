"""What a ClickHouse engine can do, and the SQL forms that follow from it.

The embedded engine (chDB, ClickHouse 26) has everything the schema uses:
``EMBEDDED``, whose forms are the SQL the embedded store has always run (its
data directories must keep working as they are). A server may be as old as
Debian's 18.16, which lacks column codecs, data-skipping indexes, ``Map``,
``DateTime64``, ``SimpleAggregateFunction`` and a few functions; ``detect``
probes a server for each and the builders emit portable forms where one is
missing:

=====================  ==============================  =================================
feature                present                         missing
=====================  ==============================  =================================
codecs                 ``CODEC(DoubleDelta, ZSTD)``    no clause (the server's LZ4)
low_cardinality        ``LowCardinality(String)``      ``String``
simple_aggregates      ``SimpleAggregateFunction``     ``AggregateFunction`` + -State/-Merge
datetime64             ``DateTime64(3)``               ``Int64`` epoch milliseconds
maps                   ``Map(String, String)``         ``Nested(key String, value String)``
token_index            ``tokenbf_v1`` index, hasToken  no index, a word-boundary regex
=====================  ==============================  =================================
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable


def sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# One probe per feature: a statement that fails on a server without it.
# ``{db}`` is a scratch database the probes may create tables in.
PROBES: dict[str, str] = {
    "codecs": "CREATE TABLE {db}.probe_codecs (x UInt64 CODEC(ZSTD)) ENGINE = Memory",
    "low_cardinality": (
        "CREATE TABLE {db}.probe_low_cardinality (s LowCardinality(String)) ENGINE = Memory"
    ),
    "simple_aggregates": "SELECT CAST(toUInt64(1) AS SimpleAggregateFunction(sum, UInt64))",
    "datetime64": "SELECT fromUnixTimestamp64Milli(toInt64(1))",
    "maps": "SELECT CAST(([], []) AS Map(String, String))",
    "token_index": (
        "CREATE TABLE {db}.probe_token_index (s String,"
        " INDEX words s TYPE tokenbf_v1(256, 2, 0) GRANULARITY 1)"
        " ENGINE = MergeTree ORDER BY tuple()"
    ),
    "ttl": (
        "CREATE TABLE {db}.probe_ttl (d DateTime) ENGINE = MergeTree ORDER BY d"
        " TTL d + INTERVAL 1 DAY"
    ),
    "multi_match": "SELECT multiMatchAny('a', ['a'])",
    "modern_functions": (
        "SELECT trimBoth(' a '), groupUniqArray(2)(1), reinterpretAsFloat64(toInt64(0)),"
        " sumMap(([1], [1]))"
    ),
    "merge_tree_cleanup": (
        "SELECT throwIf(count() = 0) FROM system.merge_tree_settings"
        " WHERE name = 'max_cleanup_delay_period'"
    ),
    "optimize_on_insert": "SET optimize_on_insert = 0",
    "adaptive_granularity": (
        "SELECT throwIf(count() = 0) FROM system.merge_tree_settings"
        " WHERE name = 'index_granularity_bytes'"
    ),
    "drop_sync": "DROP TABLE IF EXISTS {db}.probe_drop_sync SYNC",
    "drop_view_statement": "DROP VIEW IF EXISTS {db}.probe_drop_view",
}

# Merged-away parts are deleted after this many seconds (ClickHouse keeps them
# 8 minutes by default, which doubles the disk use of a busy store for that
# long), by a cleanup that runs every few seconds (by default it backs off to
# 5 minutes when idle, so the parts of the last merges lingered that long).
MERGE_TREE_OPTIONS = (
    "old_parts_lifetime = 30, cleanup_delay_period = 5, max_cleanup_delay_period = 10"
)
# The same without the back-off cap, which servers before 19.x do not know.
_OLD_MERGE_TREE_OPTIONS = "old_parts_lifetime = 30, cleanup_delay_period = 5"


@dataclasses.dataclass(frozen=True)
class Dialect:
    """The features of one engine (see the module table); all present by default."""

    version: str = "embedded"
    codecs: bool = True
    low_cardinality: bool = True
    simple_aggregates: bool = True
    datetime64: bool = True
    maps: bool = True
    token_index: bool = True
    ttl: bool = True
    multi_match: bool = True
    modern_functions: bool = True
    merge_tree_cleanup: bool = True
    optimize_on_insert: bool = True
    adaptive_granularity: bool = True
    drop_sync: bool = True
    drop_view_statement: bool = True
    # chDB reads Python objects as tables (``Python(name)``); servers cannot.
    python_tables: bool = True
    # Views over a subquery, or over ALIAS columns: 18.16 cannot push inserts
    # through them, so servers get flat views (a modern server runs both).
    view_subqueries: bool = True
    # Appended to every read: a server answers with its own thread count. chDB
    # hands results over as Arrow in memory: compressing them (LZ4 by default)
    # took more than half of a cube query's engine time.
    read_settings: str = (
        " SETTINGS max_threads = 1, output_format_arrow_compression_method = 'none'"
    )

    def describe(self) -> str:
        """One line for the log: the version, the features used and those missing."""
        used = [name for name in PROBES if getattr(self, name)]
        missing = [name for name in PROBES if not getattr(self, name)]
        return (
            f"ClickHouse {self.version}: using {', '.join(used) or 'no optional feature'};"
            f" missing {', '.join(missing) or 'nothing'} (portable forms used instead)"
        )

    # -- table definitions ----------------------------------------------------

    def codec(self, spec: str) -> str:
        """`` CODEC(spec)`` where codecs exist, else nothing (the server's default)."""
        return f" CODEC({spec})" if self.codecs else ""

    @property
    def short_string(self) -> str:
        """The type of short repetitive strings (hosts, apps): dictionary-encoded if possible."""
        return "LowCardinality(String)" if self.low_cardinality else "String"

    @property
    def ms_type(self) -> str:
        """The type of a millisecond timestamp column."""
        return "DateTime64(3)" if self.datetime64 else "Int64"

    def aggregate_type(self, function: str, arg: str) -> str:
        """A column the engine merges by ``function`` (sum, min, max; sumMap of ``Tuple(keys, values)``).

        >>> Dialect(simple_aggregates=False).aggregate_type("sumMap", "Tuple(Array(Int32), Array(UInt64))")
        'AggregateFunction(sumMap, Array(Int32), Array(UInt64))'
        """
        if self.simple_aggregates:
            return f"SimpleAggregateFunction({function}, {arg})"
        if function == "sumMap":  # the state of the two arrays, as -State takes them
            arg = arg.removeprefix("Tuple(").removesuffix(")")
        return f"AggregateFunction({function}, {arg})"

    def aggregate_state(self, function: str, expr: str, condition: str = "") -> str:
        """What a materialized view writes into an ``aggregate_type`` column (rows where ``condition``)."""
        combinator = "" if self.simple_aggregates else "State"
        args = self._arguments(function, expr, plain=self.simple_aggregates)
        if condition:
            return f"{function}{combinator}If({args}, {condition})"
        return f"{function}{combinator}({args})"

    def aggregate_count(self) -> str:
        """The row count written into an ``aggregate_type('sum', 'UInt64')`` column."""
        return "count()" if self.simple_aggregates else "sumState(toUInt64(1))"

    def aggregate_remerge(self, function: str, column: str) -> str:
        """An ``aggregate_type`` column merged into a coarser one of the same type."""
        if self.simple_aggregates:
            return f"{function}({self._arguments(function, column, plain=True)})"
        return f"{function}MergeState({column})"

    def aggregate_value(self, function: str, column: str) -> str:
        """The merged value of an ``aggregate_type`` column in a read."""
        if self.simple_aggregates:
            return f"{function}({self._arguments(function, column, plain=True)})"
        return f"{function}Merge({column})"

    def _arguments(self, function: str, expr: str, plain: bool) -> str:
        """``expr`` as the arguments of ``function``.

        ``sumMap`` of a ``Tuple(keys, values)`` takes the two arrays, except
        for a plain sum on engines that take the tuple whole.
        """
        if function != "sumMap" or (plain and self.modern_functions):
            return expr
        return f"{expr}.1, {expr}.2"

    @property
    def merge_tree_settings(self) -> str:
        """The ``SETTINGS`` clause of every MergeTree table."""
        options = MERGE_TREE_OPTIONS if self.merge_tree_cleanup else _OLD_MERGE_TREE_OPTIONS
        return f"SETTINGS {options}"

    # -- expressions ----------------------------------------------------------

    def ms(self, ms: int) -> str:
        """A millisecond timestamp literal comparable with an ``ms_type`` column."""
        if self.datetime64:
            return f"fromUnixTimestamp64Milli(toInt64({int(ms)}))"
        return f"toInt64({int(ms)})"

    def ms_of(self, column: str) -> str:
        """An ``ms_type`` column as Int64 epoch milliseconds."""
        return f"toUnixTimestamp64Milli({column})" if self.datetime64 else column

    def ms_seconds(self, expr: str) -> str:
        """An ``ms_type`` value as Float64 epoch seconds."""
        return f"toFloat64({expr})" if self.datetime64 else f"toFloat64({expr}) / 1000"

    def seconds(self, epoch: int) -> str:
        """An epoch-second literal comparable with an ``ms_type`` column."""
        return f"toDateTime64({epoch}, 3)" if self.datetime64 else f"toInt64({epoch * 1000})"

    def ms_date(self, column: str) -> str:
        """The day of an ``ms_type`` column (the partition key of logs and errors)."""
        return (
            f"toDate({column})"
            if self.datetime64
            else f"toDate(toDateTime(intDiv({column}, 1000)))"
        )

    def ms_month(self, column: str) -> str:
        """The month of an ``ms_type`` column (the partition key of events)."""
        if self.datetime64:
            return f"toYYYYMM({column})"
        return f"toYYYYMM(toDateTime(intDiv({column}, 1000)))"

    def ms_hour(self, column: str) -> str:
        """The hour of an ``ms_type`` column (the first sort key of logs)."""
        return f"toStartOfHour({column})" if self.datetime64 else f"intDiv({column}, 3600000)"

    def uniq_names(self, limit: int, column: str) -> str:
        """Up to ``limit`` distinct values of ``column`` in a group."""
        if self.modern_functions:
            return f"groupUniqArray({limit})({column})"
        return f"arraySlice(groupUniqArray({column}), 1, {limit})"

    def trim_underscores(self, expr: str) -> str:
        """``expr`` without leading and trailing underscores."""
        if self.modern_functions:
            return f"trimBoth({expr}, '_')"
        return f"replaceRegexpAll({expr}, '^_+|_+$', '')"

    def float_bits(self, column: str) -> str:
        """An Int64 column's bits read as a Float64."""
        if self.modern_functions:
            return f"reinterpretAsFloat64({column})"
        return f"reinterpretAsFloat64(reinterpretAsString({column}))"

    def sum_map(self, column: str) -> str:
        """Key-wise sum of a ``Tuple(Array, Array)`` column."""
        return f"sumMap({self._arguments('sumMap', column, plain=True)})"

    def drop_table(self, name: str) -> str:
        """Drop a table now (not 8 minutes later) where the engine can."""
        return f"DROP TABLE {name} SYNC" if self.drop_sync else f"DROP TABLE {name}"

    def drop_view(self, name: str) -> str:
        """Drop a view if it exists (old servers drop views as tables)."""
        return f"DROP {'VIEW' if self.drop_view_statement else 'TABLE'} IF EXISTS {name}"

    def has_word(self, column: str, word: str) -> str:
        """``word`` (lower case) is a token of the lower-cased ``column``."""
        if self.token_index:
            return f"hasToken(lowerUTF8({column}), {sql_string(word)})"
        # A token is a run of letters and digits, as hasToken splits them.
        escaped = re.sub(r"([^\w])", r"\\\1", word)
        regex = f"(^|[^\\pL\\pN]){escaped}($|[^\\pL\\pN])"
        return f"match(lowerUTF8({column}), {sql_string(regex)})"


EMBEDDED = Dialect()


def detect(version: str, probe: Callable[[str], bool], scratch_db: str) -> Dialect:
    """The dialect of a server: ``probe`` runs a statement and says whether it worked."""
    found = {name: probe(sql.format(db=scratch_db)) for name, sql in PROBES.items()}
    return Dialect(
        version=version, python_tables=False, view_subqueries=False, read_settings="", **found
    )
