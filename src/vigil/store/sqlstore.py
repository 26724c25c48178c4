"""The point and event store in SQL, shared by every ClickHouse-speaking backend.

A backend only supplies connections (``Connection``); everything about
tables, reads and retention is here, so the embedded engine and a server
answer the same SQL.
"""

from __future__ import annotations

import calendar
import contextlib
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.query.cubequery import STEPS as CUBE_STEPS
from vigil.query.pathglob import glob_body, is_pattern, literal_prefix
from vigil.query.series import Series, parse_tags
from vigil.query.source import Event, MetricNode
from vigil.sketch import grouped_quantiles
from vigil.store import cubepaths, cubestore, decimal, errorstore, logstore, schema
from vigil.store.connection import Connection, Shards
from vigil.store.cubestore import CubeStore
from vigil.store.dialect import EMBEDDED, MERGE_TREE_OPTIONS, Dialect
from vigil.store.errorstore import ErrorStore
from vigil.store.interface import EventFields, QueryLimitError, StorageError
from vigil.store.logstore import LogStore
from vigil.store.retention import METHODS, StoragePolicy
from vigil.store.series_keys import SeriesKeys, normalise
from vigil.store.seriessql import path_range, tag_condition, tag_value_sql

DB = schema.DB
sql_string = schema.sql_string


# Beyond this many globs in one fetch (alert rounds), the catalogue is matched in one scan.
MANY_GLOBS = 16


class SqlStore:
    """Points, series and events in a ClickHouse-semantics engine."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        policy: StoragePolicy,
        *,
        clock: Callable[[], float] = time.time,
        max_points: int = 20_000_000,
        log_max_scan_rows: int = 50_000_000,
        log_retention_days: int = 30,
        cube: bool = True,
        dialect: Dialect = EMBEDDED,
        shards: Shards | None = None,
    ) -> None:
        self.policy = policy
        self.dialect = dialect
        self._shards = shards
        self._local_db = shards.database if shards else DB
        self.clock = clock
        self.max_points = max_points
        self._connect = connect
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._event_ids = itertools.count(int(clock() * 1000) << 10)
        if shards:
            shards.install(self._ddl)
        else:
            for stmt in self._ddl(DB):
                self._conn().execute(stmt)
        self.cube = CubeStore(
            self._query,
            lambda sql: self._conn().execute(sql),
            lambda table, rows: self._insert(table.removeprefix(f"{DB}."), rows, "cube rows"),
            enabled=cube,
            dialect=dialect,
        )
        self.cube.upgrade()
        self.errors = ErrorStore(
            self._query,
            lambda table, rows: self._insert(table.removeprefix(f"{DB}."), rows, "errors"),
            dialect,
        )
        self.logs = LogStore(
            self._query,
            self._insert_logs,
            log_max_scan_rows,
            log_retention_days,
            dialect,
        )
        self._keys = self._series_keys("series")
        self._sketch_keys = self._series_keys("sketch_series")

    def _ddl(self, db: str) -> list[str]:
        """Every statement that creates the tables and views in ``db``."""
        d = self.dialect
        stmts = [
            *schema.create_statements(self.policy, d, db),
            logstore.create_statement(d, db),
            *cubestore.create_statements(d, db),
            *errorstore.create_statements(d, db),
        ]
        if d.merge_tree_cleanup:  # tables made by an older version too
            stmts += [
                f"ALTER TABLE {db}.{table} MODIFY SETTING {MERGE_TREE_OPTIONS}"
                for table in schema.stored_tables(self.policy)
            ]
        return stmts

    def _series_keys(self, catalogue: str) -> SeriesKeys:
        """Keys for the series of one catalogue table, ids continuing after its largest."""

        def lookup(paths: list[str]) -> dict[str, int]:
            found: dict[str, int] = {}
            for i in range(0, len(paths), 10_000):
                names = ", ".join(sql_string(p) for p in paths[i : i + 10_000])
                sql = f"SELECT path, any(id) FROM {DB}.{catalogue} WHERE path IN ({names}) GROUP BY path"
                found.update((str(p), int(sid)) for p, sid in _rows(self._query(sql)))
            return found

        largest = _rows(self._query(f"SELECT max(id) FROM {DB}.{catalogue}"))[0][0]
        return SeriesKeys(self.policy, lookup, int(largest) + 1)

    def _conn(self) -> Connection:
        """This thread's connection: the engine wants one per thread."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _query(self, sql: str, conn: Connection | None = None) -> pa.Table:
        try:
            return (conn or self._conn()).query_arrow(sql + self.dialect.read_settings)
        except Exception as e:  # engine errors carry their own message
            raise StorageError(f"query failed: {e}") from e

    @contextlib.contextmanager
    def _data_connections(self) -> Iterator[list[Connection]]:
        """Connections to where the data lies: each shard of a cluster, else this thread's."""
        if self._shards is None:
            yield [self._conn()]
            return
        conns = self._shards.connect()
        try:
            yield conns
        finally:
            for conn in conns:
                conn.close()

    # -- writes ---------------------------------------------------------------

    def write_points(self, batch: pa.Table) -> None:
        """Store a batch of points; see ``interface`` for the contract."""
        if batch.num_rows == 0:
            return
        ids, classes, methods, fresh = self._keys.encode(batch.column("path"))
        mantissa, exponent = decimal.split(batch.column("value").to_numpy())
        keyed = pa.table(
            {
                "cls": classes,
                "m": methods,
                "id": ids,
                "ts": batch.column("ts"),
                "v": mantissa,
                "e": exponent,
            }
        )
        self._insert("series", fresh, "series")
        self._insert("points", keyed, "points")

    def write_sketches(self, batch: pa.Table) -> None:
        """Store timer sketches (``sketch.SKETCH_SCHEMA``); same contract as ``write_points``."""
        if batch.num_rows == 0:
            return
        ids, classes, _, fresh = self._sketch_keys.encode(batch.column("path"))
        keyed = pa.table(
            {
                "cls": classes,
                "id": ids,
                "ts": batch.column("ts"),
                "keys": batch.column("keys"),
                "counts": batch.column("counts"),
            }
        )
        self._insert("sketch_series", fresh, "sketch series")
        self._insert("sketches_in", keyed, "sketches")

    def _insert_logs(self, table: str, rows: pa.Table) -> None:
        """Store log entries, then count them in the cube (``cubestore``)."""
        self._insert(table.removeprefix(f"{DB}."), rows, "log entries")
        self.cube.write(rows)

    def _insert(self, table: str, rows: pa.Table, what: str) -> None:
        if rows.num_rows == 0:
            return
        try:
            self._conn().insert_arrow(f"{DB}.{table}", rows)
        except Exception as e:  # the engine's message says why
            # A retried batch must register its new series again.
            self._keys.forget_all()
            self._sketch_keys.forget_all()
            raise StorageError(f"insert of {rows.num_rows} {what} failed: {e}") from e

    def write_event(self, when: float, what: str, tags: Sequence[str], data: str) -> Event:
        """Store one timeline event and return it with its id."""
        return self.write_events([(when, what, tags, data)])[0]

    def write_events(self, events: Sequence[EventFields]) -> list[Event]:
        """Store ``(when, what, tags, data)`` events in one insert; they come back with ids."""
        stored = [Event(next(self._event_ids), w, what, tuple(t), d) for w, what, t, d in events]
        rows = pa.table(
            {
                "id": pa.array([e.id for e in stored], pa.uint64()),
                "when": pa.array([int(e.when * 1000) for e in stored], pa.timestamp("ms")),
                "what": pa.array([e.what for e in stored], pa.string()),
                "tags": pa.array([list(e.tags) for e in stored], pa.list_(pa.string())),
                "data": pa.array([e.data for e in stored], pa.string()),
            }
        )
        try:
            self._conn().insert_arrow(f"{DB}.events", rows)
        except Exception as e:
            raise StorageError(f"storing events failed: {e}") from e
        return stored

    # -- series lookups -------------------------------------------------------

    def find(self, pattern: str) -> list[MetricNode]:
        """Nodes one level deep matching a Graphite glob, branches and leaves (cube's too)."""
        cube = cubepaths.find(self.cube.read, pattern, int(self.clock()), self.dialect)
        nodes = self._find_series(pattern)
        return sorted({(n.path, n.is_leaf): n for n in [*nodes, *cube]}.values(), key=_node_key)

    def _find_series(self, pattern: str) -> list[MetricNode]:
        depth = pattern.count(".") + 1
        regex = sql_string(f"^{glob_body(pattern)}$")
        sql = (
            f"SELECT node, max(depth) > {depth} AS branch, min(depth) = {depth} AS leaf FROM ("
            f" SELECT arrayStringConcat(arraySlice(parts, 1, {depth}), '.') AS node, length(parts) AS depth"
            f" FROM (SELECT DISTINCT splitByChar('.', path) AS parts FROM {DB}.series"
            f" WHERE {path_range(literal_prefix(pattern))} AND position(path, ';') = 0))"
            f" WHERE depth >= {depth} AND match(node, {regex}) GROUP BY node ORDER BY node"
        )
        out = []
        for node, branch, leaf in _rows(self._query(sql)):
            if branch:
                out.append(MetricNode(node, False))
            if leaf:
                out.append(MetricNode(node, True))
        return out

    def _series_rows(self, where: str) -> list[tuple[int, str, int, int]]:
        """(id, path, class, method) of the series matching a condition."""
        sql = (
            f"SELECT id, any(path), any(cls), any(m) FROM {DB}.series"
            f" WHERE {where} GROUP BY id ORDER BY any(path)"
        )
        return [(int(i), str(p), int(c), int(m)) for i, p, c, m in _rows(self._query(sql))]

    def _pattern_condition(self, patterns: Iterable[str]) -> str:
        conds = []
        globs = []
        for pattern in patterns:
            if ";" in pattern:  # a tagged series named in full
                conds.append(f"path = {sql_string(normalise(pattern))}")
            else:
                globs.append(pattern)
        if len(globs) > MANY_GLOBS and self.dialect.multi_match:
            # one multi-regex scan (Hyperscan) instead of an OR the engine tries row by row
            regexes = ", ".join(sql_string(f"^{glob_body(p)}$") for p in globs)
            conds.append(f"multiMatchAny(path, [{regexes}])")
        else:
            for pattern in globs:
                regex = sql_string(f"^{glob_body(pattern)}$")
                conds.append(f"({path_range(literal_prefix(pattern))} AND match(path, {regex}))")
        return " OR ".join(conds) or "0"

    def tagged(self, expressions: Sequence[str]) -> list[str]:
        """Paths of tagged series matching every seriesByTag expression."""
        where = " AND ".join(["position(path, ';') > 0", *map(tag_condition, expressions)])
        return [p for _, p, _, _ in self._series_rows(where)]

    def tag_names(self, prefix: str, expressions: Sequence[str], limit: int) -> list[str]:
        """Tag names of tagged series (matching ``expressions`` if given), by prefix."""
        where = " AND ".join(["position(path, ';') > 0", *map(tag_condition, expressions)])
        sql = (
            "SELECT DISTINCT arrayJoin(arrayConcat(['name'], arrayMap(x -> splitByChar('=', x)[1],"
            f" arrayPopFront(splitByChar(';', path))))) AS tag FROM {DB}.series WHERE {where}"
            f" AND startsWith(tag, {sql_string(prefix)}) ORDER BY tag LIMIT {int(limit)}"
        )
        return [str(r[0]) for r in _rows(self._query(sql))]

    def tag_values(
        self, tag: str, prefix: str, expressions: Sequence[str], limit: int
    ) -> list[str]:
        """Values of one tag over tagged series (matching ``expressions``), by prefix."""
        where = " AND ".join(["position(path, ';') > 0", *map(tag_condition, expressions)])
        sql = (
            f"SELECT DISTINCT {tag_value_sql(tag)} AS v FROM {DB}.series WHERE {where}"
            f" AND v != '' AND startsWith(v, {sql_string(prefix)}) ORDER BY v LIMIT {int(limit)}"
        )
        return [str(r[0]) for r in _rows(self._query(sql))]

    # -- point reads ----------------------------------------------------------

    def fetch(self, patterns: Sequence[str], start: int, end: int) -> list[Series]:
        """Series matching the patterns over ``[start, end)``, at the finest covering step.

        A plain path this store has written needs no catalogue lookup: its
        keys are known, which saves one engine query per render of a series.
        """
        rows = []
        rest = []
        for p in patterns:
            key = None if is_pattern(p) else self._keys.cached(p)
            if key is None:
                rest.append(p)
            else:
                rows.append((key[0], normalise(p), key[1], key[2]))
        if rest:
            rows += self._series_rows(self._pattern_condition(rest))
        rows = list({row[0]: row for row in rows}.values())
        now = int(self.clock())
        groups: dict[tuple[int, int, int], list[tuple[int, str]]] = {}
        for sid, path, cls, method in rows:
            cls = min(cls, len(self.policy.schemas) - 1)
            archive = self.policy.archive_for(cls, start, now)
            level = self.policy.schemas[cls].archives.index(archive)
            groups.setdefault((archive.step, level, method), []).append((sid, path))
        out: list[Series] = []
        for (step, level, method), members in groups.items():
            out += self._read_group(members, step, level > 0, METHODS[method], start, end)
        out += cubepaths.fetch(self.cube.read, patterns, start, end, now, self.dialect)
        out.sort(key=lambda s: s.name)
        return out

    def _read_group(
        self,
        members: list[tuple[int, str]],
        step: int,
        rollup: bool,
        method: str,
        start: int,
        end: int,
    ) -> list[Series]:
        """Series of one (step, table, method) group, as a dense grid per series."""
        first = start - start % step
        n = max(0, -(-(end - first) // step))
        if n * len(members) > self.max_points:
            raise QueryLimitError(
                f"{len(members)} series x {n} points of {step}s exceed max_points"
                f" ({self.max_points}); narrow the pattern or the time range"
            )
        ids = ", ".join(str(sid) for sid, _ in members)
        if rollup:
            sql = (
                f"SELECT id, toUInt32(ts) AS t, {schema.rollup_aggregate(method, self.dialect)} AS v"
                f" FROM {DB}.rollup_{step} WHERE id IN ({ids})"
                f" AND ts >= toDateTime({first}) AND ts < toDateTime({end}) GROUP BY id, t"
            )
        else:
            sql = (
                f"SELECT id, intDiv(toUInt32(ts), {step}) * {step} AS t,"
                f" {schema.RAW_AGGREGATE[method]} AS v FROM {DB}.points WHERE id IN ({ids})"
                f" AND ts >= toDateTime({first}) AND ts < toDateTime({end}) GROUP BY id, t"
            )
        result = self._query(sql)
        order = np.array([sid for sid, _ in members], dtype=np.uint64)
        sorter = np.argsort(order)
        grid = np.full((len(members), n), np.nan)
        if result.num_rows:
            rid = result.column("id").to_numpy()
            t = result.column("t").to_numpy().astype(np.int64)
            v = result.column("v").to_numpy(zero_copy_only=False).astype(np.float64)
            row = sorter[np.searchsorted(order, rid, sorter=sorter)]
            col = (t - first) // step
            ok = (col >= 0) & (col < n)
            grid[row[ok], col[ok]] = v[ok]
        return [
            Series(path, first, step, grid[i], tags=parse_tags(path))
            for i, (_, path) in enumerate(members)
        ]

    def timer_quantile(self, pattern: str, start: int, end: int, q: float) -> Series | None:
        """The ``q`` quantile over every timer sketch matching ``pattern``, merged per bucket.

        Sketches of all matching timers (hosts) are merged by the engine before
        the quantile is taken, at the finest step covering ``start`` for all of
        them; None when no timer matches.
        """
        regex = sql_string(f"^{glob_body(pattern)}$")
        rows = _rows(self._query(
            f"SELECT id, any(cls) FROM {DB}.sketch_series WHERE"
            f" {path_range(literal_prefix(pattern))} AND match(path, {regex}) GROUP BY id"
        ))  # fmt: skip
        if not rows:
            return None
        now = int(self.clock())
        schemas = [self.policy.schemas[min(c, len(self.policy.schemas) - 1)] for _, c in rows]
        archives = [
            self.policy.archive_for(self.policy.schemas.index(sc), start, now) for sc in schemas
        ]
        step = max(a.step for a in archives)
        finest = all(a == sc.archives[0] for a, sc in zip(archives, schemas))
        table = "sketches" if finest else f"sketches_{step}"
        first = start - start % step
        n = max(0, -(-(end - first) // step))
        ids = ", ".join(str(i) for i, _ in rows)
        result = self._query(
            f"SELECT intDiv(toUInt32(ts), {step}) * {step} AS t, sumMapMerge(bins) AS m,"
            f" m.1 AS keys, m.2 AS counts FROM {DB}.{table} WHERE id IN ({ids})"
            f" AND ts >= toDateTime({first}) AND ts < toDateTime({end}) GROUP BY t ORDER BY t"
        )
        values = np.full(n, np.nan)
        if result.num_rows:
            keys = result.column("keys").combine_chunks()
            counts = result.column("counts").combine_chunks()
            offsets = keys.offsets.to_numpy()
            quantiles = grouped_quantiles(
                offsets, keys.flatten().to_numpy(), counts.flatten().to_numpy(), [q]
            )[:, 0]
            col = (result.column("t").to_numpy().astype(np.int64) - first) // step
            ok = (col >= 0) & (col < n)
            values[col[ok]] = quantiles[ok]
        return Series(pattern, first, step, values)

    # -- events ---------------------------------------------------------------

    def events(self, start: int, end: int, tags: Sequence[str] = ()) -> list[Event]:
        """Events in ``[start, end)`` carrying all of ``tags``, oldest first."""
        d = self.dialect
        conds = [f"when >= {d.seconds(start)}", f"when < {d.seconds(end)}"]
        conds += [f"has(tags, {sql_string(t)})" for t in tags]
        sql = (
            f"SELECT id, toFloat64({d.ms_of('when')}) / 1000 AS w, what, tags, data"
            f" FROM {DB}.events WHERE {' AND '.join(conds)} ORDER BY when, id"
        )
        return [
            Event(int(i), float(w), str(what), tuple(tg), str(data))
            for i, w, what, tg, data in _rows(self._query(sql))
        ]

    # -- retention ------------------------------------------------------------

    def sweep_retention(self, now: int) -> int:
        """Drop whole partitions older than the retention of their class and table."""
        with self._data_connections() as conns:
            return sum(self._sweep(conn, now) for conn in conns)

    def _sweep(self, conn: Connection, now: int) -> int:
        """``sweep_retention`` on the tables one connection holds."""
        db = self._local_db
        dropped = self._sweep_logs(conn, now) + self._sweep_cube(conn, now)
        tables = {
            "points": 0,
            **{f"rollup_{s}": s for s in self.policy.rollup_steps()},
            **schema.sketch_tables(self.policy),
        }
        names = ", ".join(sql_string(t) for t in tables)
        sql = (
            "SELECT DISTINCT table, partition_id, partition FROM system.parts"
            f" WHERE database = '{db}' AND active AND table IN ({names})"
        )
        for table, pid, partition in _rows(self._query(sql, conn)):
            m = re.fullmatch(r"\((\d+),\s*(\d+)\)", str(partition))
            if not m:
                continue
            cls, period = int(m.group(1)), m.group(2)
            if cls >= len(self.policy.schemas):
                continue
            step = tables[str(table)]
            archive = (
                next((a for a in self.policy.schemas[cls].archives if a.step == step), None)
                if step
                else self.policy.schemas[cls].archives[0]
            )
            if archive is None or _period_end(period) > now - archive.keep:
                continue
            conn.execute(f"ALTER TABLE {db}.{table} DROP PARTITION ID {sql_string(pid)}")
            dropped += 1
        return dropped

    def _sweep_cube(self, conn: Connection, now: int) -> int:
        """Drop cube partitions past the retention the policy gives ``cube.*`` paths."""
        archives = self.policy.schemas[self.policy.schema_index("cube.x")].archives
        dropped = 0
        for step in CUBE_STEPS:
            keeps = [a.keep for a in archives if a.step <= step] or [archives[0].keep]
            sql = (
                "SELECT DISTINCT partition_id, partition FROM system.parts"
                f" WHERE database = '{self._local_db}' AND active AND table = 'cube_{step}'"
            )
            for pid, period in _rows(self._query(sql, conn)):
                if _period_end(str(period)) <= now - max(keeps):
                    table = cubestore.table(step, self._local_db)
                    conn.execute(f"ALTER TABLE {table} DROP PARTITION ID {sql_string(pid)}")
                    dropped += 1
        return dropped

    def _sweep_logs(self, conn: Connection, now: int) -> int:
        """Drop days of log entries, and of error occurrences, past the log retention."""
        dropped = 0
        db = self._local_db
        for table in ("logs", "error_occurrences"):
            sql = (
                "SELECT DISTINCT partition FROM system.parts"
                f" WHERE database = '{db}' AND active AND table = '{table}'"
            )
            days = [str(p) for (p,) in _rows(self._query(sql, conn))]
            for day in self.logs.expired_partitions(now, days):
                conn.execute(f"ALTER TABLE {db}.{table} DROP PARTITION {sql_string(day)}")
                dropped += 1
        return dropped

    def compact(self) -> list[str]:
        """Merge every table's parts now (``OPTIMIZE ... FINAL``); returns the tables merged.

        The engine merges in the background anyway; this is for an operator
        who wants the final size now, e.g. before measuring disk use.
        """
        tables = schema.stored_tables(self.policy)
        with self._data_connections() as conns:
            for conn in conns:
                for table in tables:
                    conn.execute(f"OPTIMIZE TABLE {self._local_db}.{table} FINAL")
        return tables

    def usage(self) -> dict[str, dict[str, int]]:
        """Rows, active parts and bytes on disk of each table that keeps data (all shards)."""
        names = ", ".join(sql_string(t) for t in schema.stored_tables(self.policy))
        sql = (
            "SELECT table, sum(rows) AS rows, count() AS parts, sum(bytes_on_disk) AS bytes"
            f" FROM system.parts WHERE database = '{self._local_db}' AND active"
            f" AND table IN ({names}) GROUP BY table ORDER BY table"
        )
        out: dict[str, dict[str, int]] = {}
        with self._data_connections() as conns:
            for conn in conns:
                for t, r, p, b in _rows(self._query(sql, conn)):
                    total = out.setdefault(str(t), {"rows": 0, "parts": 0, "bytes_on_disk": 0})
                    total["rows"] += int(r)
                    total["parts"] += int(p)
                    total["bytes_on_disk"] += int(b)
        return out

    def close(self) -> None:
        """Close every connection this store opened, once the cube counted what was stored."""
        self.cube.close()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _node_key(node: MetricNode) -> tuple[str, bool]:
    return node.path, node.is_leaf


def _period_end(period: str) -> int:
    """Epoch second just after a YYYYMMDD day or YYYYMM month partition."""
    year, month = int(period[:4]), int(period[4:6])
    if len(period) == 8:
        return calendar.timegm((year, month, int(period[6:8]), 0, 0, 0)) + 86400
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0))


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows of a small result as tuples."""
    columns = [c.to_pylist() for c in table.columns]
    return list(zip(*columns))
