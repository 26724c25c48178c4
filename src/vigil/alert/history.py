"""Alert history: every state change, notification, heal, silence and acknowledgement.

Records are stored as timeline events tagged ``alert`` (so they show on
graphs like deploys) with the structured record as the event's data. They are
written in batches from a bounded buffer: evaluation never waits for the
engine, and what the buffer drops is counted.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from prometheus_client import Counter

from vigil.store.interface import Storage, StorageError
from vigil.telemetry import Telemetry

log = logging.getLogger("vigil.alert")
TAG = "alert"
KINDS = ("state", "notification", "delivery", "heal", "silence", "ack")
# Notices that reach a person's phone; recoveries and flap ends are news, not pages.
WAKING = frozenset({"problem", "repeat", "flapping"})


class History:
    """The alert history of one node: a write buffer in front of the event store."""

    def __init__(self, storage: Storage, telemetry: Telemetry, capacity: int = 100_000) -> None:
        self.storage = storage
        self.capacity = capacity
        self._pending: collections.deque[dict[str, Any]] = collections.deque()
        self.dropped = Counter(
            "vigil_alert_history_dropped",
            "Alert history records dropped because the store could not keep up",
            registry=telemetry.registry,
        )

    def record(
        self, ts: float, kind: str, rule: str, target: str, state: str, message: str, **data: Any
    ) -> None:
        """Queue one record; the oldest queued record goes when the buffer is full."""
        if len(self._pending) >= self.capacity:
            self._pending.popleft()
            self.dropped.inc()
        self._pending.append(
            {"ts": ts, "kind": kind, "rule": rule, "target": target, "state": state,
             "message": message, "data": data}
        )  # fmt: skip

    async def flush(self) -> None:
        """Write what is queued; on a storage error keep it for the next flush."""
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        events = [
            (
                r["ts"],
                f"{r['rule']} {r['target']}: {r['kind']} {r['state']} {r['message']}"[:500],
                [TAG, f"alert-{r['kind']}", f"rule:{r['rule']}"],
                orjson.dumps(r).decode(),
            )
            for r in batch
        ]
        try:
            await asyncio.to_thread(self.storage.write_events, events)
        except StorageError as e:
            log.warning("alert history not stored yet (%s); retrying", e)
            self._pending.extendleft(reversed(batch))
            while len(self._pending) > self.capacity:
                self._pending.popleft()
                self.dropped.inc()

    def query(self, start: int, end: int, rule: str | None = None) -> list[dict[str, Any]]:
        """Records in ``[start, end)`` epoch seconds (of one rule if given), oldest first."""
        tags = [TAG] + ([f"rule:{rule}"] if rule else [])
        out = []
        for event in self.storage.events(start, end, tags):
            try:
                out.append(orjson.loads(event.data))
            except orjson.JSONDecodeError:
                continue  # an event tagged 'alert' by hand, not a record
        return out


def report(records: Iterable[dict[str, Any]], now: float) -> dict[str, Any]:
    """The interruption report: per rule, how often people were woken, what healed, how long.

    ``weeks`` maps ISO weeks to waking notices; ``by_week`` lists per week the
    waking notices, heals that healed, incidents begun and their seconds.

    Rules are sorted noisiest first (most waking notifications, then longest).
    An incident is a HARD non-OK spell of one target; one still open at
    ``now`` counts until ``now``.
    """
    rules: dict[str, dict[str, Any]] = {}
    open_since: dict[tuple[str, str], float] = {}

    def of(rule: str) -> dict[str, Any]:
        return rules.setdefault(
            rule,
            {"rule": rule, "notifications": 0, "woke": 0, "suppressed": 0, "healed": 0,
             "heals": 0, "incidents": 0, "total_seconds": 0.0, "longest_seconds": 0.0,
             "weeks": {}, "by_week": {}},
        )  # fmt: skip

    def week_of(entry: dict[str, Any], ts: float) -> dict[str, Any]:
        year, number, _ = dt.datetime.fromtimestamp(ts, dt.UTC).isocalendar()
        week = f"{year}-W{number:02d}"
        weeks: dict[str, dict[str, Any]] = entry["by_week"]
        return weeks.setdefault(
            week, {"week": week, "woke": 0, "healed": 0, "incidents": 0, "seconds": 0.0}
        )

    def close(key: tuple[str, str], ts: float) -> None:
        began = open_since.pop(key)
        entry = of(key[0])
        entry["total_seconds"] += ts - began
        entry["longest_seconds"] = max(entry["longest_seconds"], ts - began)
        week_of(entry, began)["seconds"] += ts - began

    for r in sorted(records, key=lambda r: r["ts"]):
        entry = of(r["rule"])
        key = (r["rule"], r["target"])
        data = r.get("data", {})
        if r["kind"] == "notification":
            if data.get("suppressed"):
                entry["suppressed"] += 1
                continue
            entry["notifications"] += 1
            if data.get("reason") in WAKING:
                entry["woke"] += 1
                week = week_of(entry, r["ts"])
                week["woke"] += 1
                entry["weeks"][week["week"]] = week["woke"]
        elif r["kind"] == "heal":
            entry["heals"] += data.get("phase") == "start"
            if data.get("phase") == "healed":
                entry["healed"] += 1
                week_of(entry, r["ts"])["healed"] += 1
        elif r["kind"] == "state" and data.get("forgotten"):
            if key in open_since:
                close(key, r["ts"])
        elif r["kind"] == "state" and data.get("hard"):
            if r["state"] == "OK":
                if key in open_since:
                    close(key, r["ts"])
            elif key not in open_since:
                open_since[key] = r["ts"]
                entry["incidents"] += 1
                week_of(entry, r["ts"])["incidents"] += 1
    for key in list(open_since):
        close(key, now)
    for entry in rules.values():
        entry["by_week"] = sorted(entry["by_week"].values(), key=lambda w: w["week"])
    ordered = sorted(rules.values(), key=lambda e: (-e["woke"], -e["total_seconds"], e["rule"]))
    return {"since": None, "until": now, "rules": ordered}
