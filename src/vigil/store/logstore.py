"""Log entries in the engine: one table laid out for how people search, and its guards.

Layout: partitions by day (retention drops them); sorted by hour, then host,
app, type, name, status, time, so that a time range selects a few granules
and a host or app narrows them further; a token bloom-filter index on the
lower-cased message lets a rare word skip almost everything (word search is
case-insensitive). ``kind`` and the other short strings are dictionary-encoded.

Searches must use an index: every query carries a time range, and the
engine's guards (``force_index_by_date``, ``force_primary_key``,
``max_rows_to_read``) make one that would scan too much fail; the error is
turned into one that says which filter to add.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.model import LOGS_SCHEMA, entries_of
from vigil.query.logquery import LogPage, LogQuery, LogQueryError, encode_cursor
from vigil.store.dialect import EMBEDDED, Dialect
from vigil.store.interface import StorageError
from vigil.store.schema import in_conditions, sql_string

DB = "vigil"
TABLE = f"{DB}.logs"


# Without adaptive granularity a server counts whole 8192-row granules towards
# max_rows_to_read before reading: smaller ones keep the search guard near the truth.
_SMALL_GRANULES = ", index_granularity = 1024"


def create_statement(d: Dialect = EMBEDDED, db: str = DB) -> str:
    """Idempotent DDL of the log table."""
    low = d.short_string
    data = "Map(String, String)" if d.maps else "Nested(key String, value String)"
    index = (
        ", INDEX words lowerUTF8(message) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1"
        if d.token_index
        else ""
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.logs ("
        f"ts {d.ms_type}{d.codec('DoubleDelta, ZSTD')}, uid UInt64{d.codec('Delta, ZSTD')},"
        f" kind {low}, host {low}, cluster {low}, dc {low}, app {low}, type {low},"
        f" name {low}, status Int32{d.codec('ZSTD')}, duration_ms Float64{d.codec('ZSTD')},"
        f" id String{d.codec('ZSTD')}, parent String{d.codec('ZSTD')}, severity Int8, facility Int8,"
        f" message String{d.codec('ZSTD(3)')}, data {data}{d.codec('ZSTD(3)') if d.maps else ''}"
        f"{index})"
        f" ENGINE = MergeTree PARTITION BY {d.ms_date('ts')}"
        f" ORDER BY ({d.ms_hour('ts')}, host, app, type, name, status, ts)"
        f" {d.merge_tree_settings}{'' if d.adaptive_granularity else _SMALL_GRANULES}"
    )


def columns(d: Dialect = EMBEDDED) -> str:
    """The select list of a log batch (``LOGS_SCHEMA``)."""
    names = [f.name for f in LOGS_SCHEMA]
    if not d.maps:  # the pairs of the Nested columns, which the connection reads as a map
        names[names.index("data")] = "arrayMap((k, v) -> (k, v), data.key, data.value) AS data"
    return ", ".join(names)


# Engine error codes of the guards: TOO_MANY_ROWS, INDEX_NOT_USED.
_TOO_MANY_ROWS = "Code: 158"
_INDEX_NOT_USED = "Code: 277"


class LogStore:
    """Writes and searches of log entries over the engine connections of a ``SqlStore``."""

    def __init__(
        self,
        query: Callable[[str], pa.Table],
        insert: Callable[[str, pa.Table], None],
        max_scan_rows: int,
        retention_days: int,
        dialect: Dialect = EMBEDDED,
    ) -> None:
        self._query = query
        self._d = dialect
        self._ms = dialect.ms
        self._columns = columns(dialect)
        self._insert = insert
        self.max_scan_rows = max_scan_rows
        self.retention_days = retention_days

    def write(self, batch: pa.Table, replay: bool = False) -> int:
        """Store a ``LOGS_SCHEMA`` batch; returns the rows stored.

        ``replay`` batches may be stored already (a spool replay after a
        crash, a retried insert): their entries already present, by ``uid``,
        are skipped, so a replay stores each entry exactly once.
        """
        if replay and batch.num_rows:
            batch = self._unstored(batch)
        if batch.num_rows:
            self._insert(TABLE, batch)
        return int(batch.num_rows)

    def _unstored(self, batch: pa.Table) -> pa.Table:
        uids = batch.select(["uid"])  # noqa: F841 - read by the engine's Python() table function
        ts = batch.column("ts").cast(pa.int64()).to_numpy()
        listed = (
            "SELECT uid FROM Python(uids)"
            if self._d.python_tables
            else ", ".join(map(str, batch.column("uid").to_pylist()))
        )
        sql = (
            f"SELECT uid FROM {TABLE} WHERE ts >= {self._ms(int(ts.min()))}"
            f" AND ts <= {self._ms(int(ts.max()))} AND uid IN ({listed})"
        )
        stored = self._query(sql).column("uid").to_numpy()
        if not len(stored):
            return batch
        fresh = ~np.isin(batch.column("uid").to_numpy(), stored)
        return batch.filter(pa.array(fresh))

    def search(self, q: LogQuery) -> LogPage:
        """One page of entries matching ``q``, newest first."""
        conds = [f"ts >= {self._ms(q.start_ms)}", f"ts < {self._ms(q.end_ms)}"]
        conds += in_conditions(q.filters)
        # Case-insensitive, as the index holds the lower-cased message's tokens.
        conds += [self._d.has_word("message", w.lower()) for w in q.words]
        conds += [f"positionCaseInsensitiveUTF8(message, {sql_string(p)}) > 0" for p in q.phrases]
        if q.cursor is not None:
            ts_ms, uid = q.cursor
            conds.append(f"(ts, uid) < ({self._ms(ts_ms)}, toUInt64({uid}))")
        sql = (
            f"SELECT {self._columns} FROM {TABLE} WHERE {' AND '.join(conds)}"
            f" ORDER BY ts DESC, uid DESC LIMIT {q.limit + 1}"
        )
        rows = self._guarded(sql, q)
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        if q.context:
            for row in rows:
                row["context"] = self.context(row, q.context)
        last = rows[-1] if more else None
        cursor = encode_cursor(round(last["ts"] * 1000), int(last["uid"])) if last else None
        return LogPage(rows, cursor)

    def _guarded(self, sql: str, q: LogQuery, entries: bool = True) -> list[dict[str, Any]]:
        """Rows of ``sql`` under the index guards (as wire-format entries if ``entries``)."""
        guards = (
            " SETTINGS force_index_by_date = 1, force_primary_key = 1,"
            f" max_rows_to_read = {self.max_scan_rows}, read_overflow_mode = 'throw'"
        )
        try:
            result = self._query(sql + guards)
            return entries_of(result) if entries else result.to_pylist()
        except StorageError as e:
            text = str(e)
            if _TOO_MANY_ROWS in text or _INDEX_NOT_USED in text:
                span = (q.end_ms - q.start_ms) / 3_600_000
                raise LogQueryError(
                    f"this search would read more than {self.max_scan_rows} entries"
                    f" ({span:.3g} h of logs): narrow from/until, or add host=, app=, type=,"
                    " name= or a rarer word to q="
                ) from None
            raise

    def sources(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Every (host, app) with entries in ``[start_ms, end_ms)``: what it sent and when.

        One row per source, by host and app: ``last_seen`` and ``last_heartbeat``
        (epoch seconds, ``None`` without heartbeats), ``entries`` per kind and up
        to five ``names`` of each kind. Reads only the short dictionary-encoded
        columns, under the search guards, so the range is what bounds it.
        """
        sql = (
            f"SELECT host, app, kind, count() AS n, {self._d.ms_seconds('max(ts)')} AS last,"
            f" {self._d.uniq_names(5, 'name')} AS names"
            f" FROM {TABLE} WHERE ts >= {self._ms(start_ms)} AND ts < {self._ms(end_ms)}"
            " GROUP BY host, app, kind ORDER BY host, app, kind"
        )
        rows = self._guarded(sql, LogQuery(start_ms, end_ms), entries=False)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            src = out.setdefault(
                (row["host"], row["app"]),
                {"host": row["host"], "app": row["app"], "last_seen": 0.0,
                 "last_heartbeat": None, "entries": {}, "names": {}},
            )  # fmt: skip
            src["last_seen"] = max(src["last_seen"], row["last"])
            src["entries"][row["kind"]] = row["n"]
            src["names"][row["kind"]] = sorted(n for n in row["names"] if n)
            if row["kind"] == "heartbeat":
                src["last_heartbeat"] = row["last"]
        return list(out.values())

    def context(self, entry: dict[str, Any], n: int) -> dict[str, list[dict[str, Any]]]:
        """The ``n`` entries of the same host and app before and after ``entry``."""
        ts_ms, uid = round(entry["ts"] * 1000), int(entry["uid"])
        same = f"host = {sql_string(entry['host'])} AND app = {sql_string(entry['app'])}"
        here = f"({self._ms(ts_ms)}, toUInt64({uid}))"
        hour = 3_600_000
        before = (
            f"SELECT {self._columns} FROM {TABLE} WHERE ts >= {self._ms(ts_ms - hour)} AND ts <= {self._ms(ts_ms)}"
            f" AND {same} AND (ts, uid) < {here} ORDER BY ts DESC, uid DESC LIMIT {n}"
        )
        after = (
            f"SELECT {self._columns} FROM {TABLE} WHERE ts >= {self._ms(ts_ms)} AND ts <= {self._ms(ts_ms + hour)}"
            f" AND {same} AND (ts, uid) > {here} ORDER BY ts, uid LIMIT {n}"
        )
        return {
            "before": entries_of(self._query(before))[::-1],
            "after": entries_of(self._query(after)),
        }

    def read_lines(self, start_ms: int, end_ms: int) -> pa.Table:
        """Every ``line`` entry in ``[start_ms, end_ms)`` as a ``LOGS_SCHEMA`` batch (backfills).

        Reads by time only, without the search guards: callers slice a long
        range into short ones.
        """
        sql = (
            f"SELECT {self._columns} FROM {TABLE} WHERE ts >= {self._ms(start_ms)} AND ts < {self._ms(end_ms)}"
            " AND kind = 'line' ORDER BY ts, uid"
        )
        result = self._query(sql)
        columns = [result.column(f.name).cast(f.type) for f in LOGS_SCHEMA]
        return pa.Table.from_arrays(columns, schema=LOGS_SCHEMA)

    def count(self, start_ms: int, end_ms: int) -> int:
        """Entries stored in ``[start_ms, end_ms)`` (for tests, status and benchmarks)."""
        sql = f"SELECT count() AS n FROM {TABLE} WHERE ts >= {self._ms(start_ms)} AND ts < {self._ms(end_ms)}"
        return int(self._query(sql).column("n")[0].as_py())

    def expired_partitions(self, now: float, partitions: list[str]) -> list[str]:
        """The day partitions (``YYYY-MM-DD``) wholly older than the retention."""
        cutoff = now - self.retention_days * 86400
        return [
            p for p in partitions if calendar.timegm(time.strptime(p, "%Y-%m-%d")) + 86400 <= cutoff
        ]
