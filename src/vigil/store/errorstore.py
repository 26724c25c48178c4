"""Error groups in the engine: occurrences by fingerprint, a summary per fingerprint, user merges.

Tables (database ``vigil``):

- ``error_occurrences``: one row per error entry (``cube.fingerprint.errors_of``),
  partitioned by day and sorted by (fingerprint, ts), so a group's
  occurrences over a range are one range read per member fingerprint;
- ``error_fingerprints``: per fingerprint, first and last seen over all time
  and the (uid, title) of its latest occurrence, kept by the engine from
  ``error_occurrences`` by a materialized view (aggregate states, so writes
  from several nodes merge). First/last seen survive the occurrences' day
  partitions being dropped;
- ``error_merges``: the user's decisions, fingerprint -> group (the root
  fingerprint of the group it was merged into; itself after a split), newest
  version wins. They are applied when a query runs, never folded into the
  occurrences, so a merge holds for occurrences that arrive later.

The sample of a group is not copied: it is the latest occurrence's entry,
read from ``vigil.logs`` by (ts, uid), so it has the full message and stack
and costs nothing to keep. When log retention has dropped it, the group has
no sample (``None``).

A group's id is the 16 hex digits of its root fingerprint: the fingerprint
itself for a group nobody merged, the surviving group's for a merge. An old
id of a group merged away still finds the group it went into.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from vigil.model import entries_of
from vigil.store.dialect import EMBEDDED, Dialect
from vigil.store.logstore import columns as log_columns
from vigil.store.schema import sql_string

DB = "vigil"
OCCURRENCES = f"{DB}.error_occurrences"
FINGERPRINTS = f"{DB}.error_fingerprints"
MERGES = f"{DB}.error_merges"


def create_statements(d: Dialect = EMBEDDED, db: str = DB) -> list[str]:
    """Idempotent DDL of the error tables and the view that keeps the fingerprints."""
    low, ms, settings = d.short_string, d.ms_type, d.merge_tree_settings
    occurrences, fingerprints = f"{db}.error_occurrences", f"{db}.error_fingerprints"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {occurrences} ("
        f"ts {ms}{d.codec('DoubleDelta, ZSTD')}, uid UInt64{d.codec('ZSTD')},"
        f" fingerprint UInt64, title String{d.codec('ZSTD(3)')},"
        f" host {low}, app {low}, dc {low}, cluster {low})"
        f" ENGINE = MergeTree PARTITION BY {d.ms_date('ts')} ORDER BY (fingerprint, ts)"
        f" {settings}",
        f"CREATE TABLE IF NOT EXISTS {fingerprints} (fingerprint UInt64,"
        f" first_seen {d.aggregate_type('min', ms)},"
        f" last_seen {d.aggregate_type('max', ms)},"
        f" latest AggregateFunction(argMax, Tuple(UInt64, String), {ms}))"
        f" ENGINE = AggregatingMergeTree ORDER BY fingerprint {settings}",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {fingerprints}_mv TO {fingerprints} AS"
        f" SELECT fingerprint, {d.aggregate_state('min', 'ts')} AS first_seen,"
        f" {d.aggregate_state('max', 'ts')} AS last_seen,"
        f" argMaxState((uid, title), ts) AS latest FROM {occurrences} GROUP BY fingerprint",
        f"CREATE TABLE IF NOT EXISTS {db}.error_merges (fingerprint UInt64, grp UInt64, version UInt64)"
        f" ENGINE = ReplacingMergeTree(version) ORDER BY fingerprint {settings}",
    ]


# Filters a listing of groups takes.
FILTER_FIELDS = ("app", "host", "dc", "cluster")
# Hosts and applications named per group, at most.
MAX_NAMES = 50
# Events around a group's first appearance: this many ms before and after.
EVENT_WINDOW_MS = 3_600_000


def _hex(fingerprint: int) -> str:
    return f"{fingerprint:016x}"


def parse_id(text: str) -> int:
    """The fingerprint of a group or fingerprint id (16 hex digits); ``ValueError`` if it is not one."""
    if not (1 <= len(text) <= 16) or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"{text!r} is not an error group id (16 hex digits)")
    return int(text, 16)


def _uint64s(values: Iterable[int]) -> str:
    return "CAST([" + ", ".join(str(int(v)) for v in values) + "] AS Array(UInt64))"


class ErrorStore:
    """Writes and reads of error groups over the engine connections of a ``SqlStore``.

    Time bounds are epoch milliseconds, ``start_ms`` inclusive, ``end_ms``
    exclusive; every read of occurrences carries them.
    """

    def __init__(
        self,
        query: Callable[[str], pa.Table],
        insert: Callable[[str, pa.Table], None],
        dialect: Dialect = EMBEDDED,
    ) -> None:
        self._query = query
        self._d = dialect
        self._insert = insert
        self._lock = threading.Lock()
        self._version = 0

    # -- writes ---------------------------------------------------------------

    def write(self, occurrences: pa.Table) -> None:
        """Store the rows of ``errors_of`` (``ERRORS_SCHEMA``); the caller gives up the batch."""
        if occurrences.num_rows:
            self._insert(OCCURRENCES, occurrences)

    def merge(self, ids: list[str]) -> str:
        """Merge the groups ``ids`` into the first of them; returns its id.

        Every member fingerprint of the others now belongs to the first,
        including their future occurrences. ``ValueError`` names an unknown id.
        """
        if not ids:
            raise ValueError("name the error groups to merge: ids is empty")
        with self._lock:
            mapping = self._mapping()
            roots = [mapping.get(f, f) for f in (parse_id(i) for i in ids)]
            unknown = set(roots) - self._known(roots)
            if unknown:
                raise ValueError(f"unknown error group(s): {', '.join(map(_hex, sorted(unknown)))}")
            survivor = roots[0]
            moved = [
                f
                for root in dict.fromkeys(roots)
                if root != survivor
                for f in self._members(root, mapping)
            ]
            self._record([(f, survivor) for f in moved])
        return _hex(survivor)

    def split(self, id: str, fingerprint: str) -> None:
        """Take ``fingerprint`` out of group ``id``: it becomes a group of its own.

        Splitting off the group's root leaves the other members together, under
        the smallest of their fingerprints as the new root (so a new id).
        """
        with self._lock:
            mapping = self._mapping()
            root = self._resolve(parse_id(id), mapping)
            f = parse_id(fingerprint)
            members = self._members(root, mapping)
            if f not in members:
                raise ValueError(f"fingerprint {_hex(f)} is not in error group {_hex(root)}")
            if len(members) == 1:
                raise ValueError(f"error group {_hex(root)} has one fingerprint: nothing to split")
            if f != root:
                self._record([(f, f)])
                return
            rest = sorted(members - {f})
            self._record([(f, f)] + [(m, rest[0]) for m in rest])

    def _record(self, changes: list[tuple[int, int]]) -> None:
        version = max(self._version + 1, time.time_ns())
        self._version = version
        rows = pa.table(
            {
                "fingerprint": pa.array([f for f, _ in changes], pa.uint64()),
                "grp": pa.array([g for _, g in changes], pa.uint64()),
                "version": pa.array([version] * len(changes), pa.uint64()),
            }
        )
        self._insert(MERGES, rows)

    # -- reads ----------------------------------------------------------------

    def _mapping(self) -> dict[int, int]:
        """Fingerprint -> root of its group, for the fingerprints that users moved."""
        sql = f"SELECT fingerprint, argMax(grp, version) AS grp FROM {MERGES} GROUP BY fingerprint"
        table = self._query(sql)
        return {
            int(f): int(g)
            for f, g in zip(
                table.column("fingerprint").to_pylist(), table.column("grp").to_pylist()
            )
            if f != g
        }

    @staticmethod
    def _members(root: int, mapping: dict[int, int]) -> set[int]:
        return {root} | {f for f, g in mapping.items() if g == root}

    @staticmethod
    def _resolve(fingerprint: int, mapping: dict[int, int]) -> int:
        return mapping.get(fingerprint, fingerprint)

    def _known(self, fingerprints: Iterable[int]) -> set[int]:
        sql = (
            f"SELECT DISTINCT fingerprint FROM {FINGERPRINTS}"
            f" WHERE has({_uint64s(fingerprints)}, fingerprint)"
        )
        return {int(f) for f in self._query(sql).column("fingerprint").to_pylist()}

    def _summaries(self, fingerprints: Iterable[int]) -> dict[int, dict[str, Any]]:
        """First/last seen (ms, over all time) and the latest (uid, title) per fingerprint."""
        d = self._d
        first, last = d.aggregate_value("min", "first_seen"), d.aggregate_value("max", "last_seen")
        sql = (
            f"SELECT fingerprint, toInt64({d.ms_of(first)}) AS first,"
            f" toInt64({d.ms_of(last)}) AS last,"
            " tupleElement(argMaxMerge(latest), 1) AS uid,"
            " tupleElement(argMaxMerge(latest), 2) AS title"
            f" FROM {FINGERPRINTS} WHERE has({_uint64s(fingerprints)}, fingerprint)"
            " GROUP BY fingerprint"
        )
        return {int(row.pop("fingerprint")): row for row in self._query(sql).to_pylist()}

    def groups(
        self,
        start_ms: int,
        end_ms: int,
        filters: dict[str, str] | None = None,
        buckets: int = 30,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The groups with occurrences in ``[start_ms, end_ms)``, most occurrences first.

        Each: ``id``, ``title`` (of the root's latest occurrence), ``count`` (in the
        range), ``first_seen``/``last_seen`` (epoch seconds, over all time),
        ``hosts``, ``apps`` and ``sparkline`` (occurrences in each of
        ``buckets`` equal parts of the range).
        """
        conds = self._range(start_ms, end_ms, buckets, limit)
        for field, value in (filters or {}).items():
            if field not in FILTER_FIELDS:
                raise ValueError(f"cannot filter error groups on {field!r}: use {FILTER_FIELDS}")
            if value:
                conds.append(f"{field} = {sql_string(value)}")
        found = self._grouped(conds, self._mapping(), start_ms, end_ms, buckets, limit)
        for group in found:
            del group["_latest"]
        return found

    def group(
        self, id: str, start_ms: int, end_ms: int, buckets: int = 30
    ) -> dict[str, Any] | None:
        """One group as in ``groups``, plus ``sample``, ``fingerprints`` and ``events``; ``None`` if unknown.

        ``sample`` is the latest entry of the group (wire format, with its
        message and stack; ``None`` once log retention dropped it);
        ``fingerprints`` its members (hex); ``events`` the timeline events
        within an hour of its first appearance.
        """
        conds = self._range(start_ms, end_ms, buckets, 1)
        mapping = self._mapping()
        root = self._resolve(parse_id(id), mapping)
        members = self._members(root, mapping)
        conds.append(f"has({_uint64s(members)}, fingerprint)")
        found = self._grouped(conds, mapping, start_ms, end_ms, buckets, 1)
        if found:
            group = found[0]
        else:  # nothing in the range: the group still exists if it was ever seen
            summaries = self._summaries(members)
            if not summaries:
                return None
            group = self._describe(root, 0, [], [], [0] * buckets, summaries)
        latest = group.pop("_latest")
        group["fingerprints"] = [_hex(f) for f in sorted(members)]
        group["sample"] = self._entry(*latest) if latest else None
        first_ms = round(group["first_seen"] * 1000)
        group["events"] = self._events(first_ms - EVENT_WINDOW_MS, first_ms + EVENT_WINDOW_MS)
        return group

    def _range(self, start_ms: int, end_ms: int, buckets: int, limit: int) -> list[str]:
        if end_ms <= start_ms:
            raise ValueError("the end of the range must be after its start")
        if not 1 <= buckets <= 1000:
            raise ValueError("buckets must be between 1 and 1000")
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        return [f"ts >= {self._d.ms(start_ms)}", f"ts < {self._d.ms(end_ms)}"]

    def _grouped(
        self,
        conds: list[str],
        mapping: dict[int, int],
        start_ms: int,
        end_ms: int,
        buckets: int,
        limit: int,
    ) -> list[dict[str, Any]]:
        width = -(-(end_ms - start_ms) // buckets)
        group_of = (
            f"transform(fingerprint, {_uint64s(mapping)}, {_uint64s(mapping.values())}, fingerprint)"
            if mapping
            else "fingerprint"
        )
        sql = (
            "SELECT g, count() AS n, groupUniqArray(fingerprint) AS fps,"
            f" {self._d.uniq_names(MAX_NAMES, 'host')} AS hosts,"
            f" {self._d.uniq_names(MAX_NAMES, 'app')} AS apps,"
            " tupleElement(sumMap([b], [toUInt64(1)]), 1) AS bk,"
            " tupleElement(sumMap([b], [toUInt64(1)]), 2) AS bn"
            f" FROM (SELECT {group_of} AS g, fingerprint, host, app,"
            f" toUInt32(intDiv({self._d.ms_of('ts')} - {int(start_ms)}, {width})) AS b"
            f" FROM {OCCURRENCES} WHERE {' AND '.join(conds)})"
            f" GROUP BY g ORDER BY n DESC, g LIMIT {int(limit)}"
        )
        rows = self._query(sql).to_pylist()
        members: dict[int, set[int]] = {int(r["g"]): set(r["fps"]) for r in rows}
        for f, g in mapping.items():
            if g in members:
                members[g].add(f)
        summaries = self._summaries(set().union(*members.values())) if rows else {}
        out = []
        for r in rows:
            g = int(r["g"])
            sparkline = [0] * buckets
            for b, n in zip(r["bk"], r["bn"]):
                if 0 <= b < buckets:
                    sparkline[b] += int(n)
            own = {f: summaries[f] for f in members[g] if f in summaries}
            out.append(
                self._describe(
                    g, int(r["n"]), sorted(r["hosts"]), sorted(r["apps"]), sparkline, own
                )
            )
        return out

    @staticmethod
    def _describe(
        root: int,
        count: int,
        hosts: list[str],
        apps: list[str],
        sparkline: list[int],
        summaries: dict[int, dict[str, Any]],
    ) -> dict[str, Any]:
        latest = max(summaries.values(), key=lambda s: s["last"], default=None)
        # The root's title, so a merged group keeps its name whichever member came last.
        named = summaries.get(root, latest)
        return {
            "id": _hex(root),
            "title": named["title"] if named else "",
            "count": count,
            "first_seen": min((s["first"] for s in summaries.values()), default=0) / 1000,
            "last_seen": latest["last"] / 1000 if latest else 0.0,
            "hosts": hosts,
            "apps": apps,
            "sparkline": sparkline,
            "_latest": (latest["last"], latest["uid"]) if latest else None,
        }

    def _entry(self, ts_ms: int, uid: int) -> dict[str, Any] | None:
        sql = (
            f"SELECT {log_columns(self._d)} FROM {DB}.logs WHERE ts = {self._d.ms(ts_ms)}"
            f" AND uid = toUInt64({int(uid)}) LIMIT 1"
        )
        found = entries_of(self._query(sql))
        return found[0] if found else None

    def _events(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        d = self._d
        # ``when`` in the condition is the alias (seconds) where the column holds epoch ms.
        low, high = (
            (d.ms(start_ms), d.ms(end_ms)) if d.datetime64 else (start_ms / 1000, end_ms / 1000)
        )
        sql = (
            f"SELECT id, toFloat64({d.ms_of('when')}) / 1000 AS when, what, tags, data"
            f" FROM {DB}.events WHERE when >= {low} AND when <= {high}"
            " ORDER BY when, id LIMIT 100"
        )
        rows: list[dict[str, Any]] = self._query(sql).to_pylist()
        for row in rows:
            row["id"] = str(row["id"])
        return rows
