"""What an alert rule watches, evaluated into ``Check`` results.

Render targets go through the same query functions as graphs. Rules due in
the same round with the same window share one storage read: every path their
expressions name is fetched at once (``query.prefetch.Prefetch``), then each is
evaluated over what was read. That keeps ten thousand rules at a handful of
engine queries per round instead of one each.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.alert.rules import Rule
from vigil.alert.state import Check, Status
from vigil.query.cubequery import CubeQuery
from vigil.query.errors import RenderError
from vigil.query.evaluator import evaluate_target, make_context
from vigil.query.logquery import MAX_LIMIT, LogQuery, parse_words
from vigil.query.prefetch import Prefetch, paths_of
from vigil.query.series import Series
from vigil.store.interface import Storage

# A log-search rule counts matches up to this many (then says "at least").
MAX_SEARCH_COUNT = 10_000
# Results of one rule beyond this many targets are an error, not ten thousand alerts.
MAX_TARGETS = 5_000


def classify(value: float | None, rule: Rule) -> Status:
    """The state a value puts a threshold rule in; no value is the rule's ``nodata``."""
    if value is None or math.isnan(value):
        return Status[rule.nodata.upper()]
    above = rule.direction == "above"
    for level, status in ((rule.critical, Status.CRITICAL), (rule.warning, Status.WARNING)):
        if level is not None and (value >= level if above else value <= level):
            return status
    return Status.OK


def threshold_check(target: str, value: float | None, rule: Rule, what: str = "") -> Check:
    """A ``Check`` of a value against the rule's thresholds, saying which was crossed."""
    status = classify(value, rule)
    if value is None or math.isnan(value):
        return Check(target, status, None, f"{target}: no data in the last {rule.window}s")
    sign = ">=" if rule.direction == "above" else "<="
    level = {Status.CRITICAL: rule.critical, Status.WARNING: rule.warning}.get(status)
    crossed = f" {sign} {level:g}" if level is not None else ""
    return Check(target, status, value, f"{what or target} = {value:g}{crossed}")


def reduce(series: Series, how: str) -> float | None:
    """One value of a series over the rule's window, skipping gaps."""
    values = series.values[~np.isnan(series.values)]
    if not len(values):
        return None
    if how == "last":
        return float(values[-1])
    if how == "avg":
        return float(values.mean())
    return float(values.min() if how == "min" else values.max() if how == "max" else values.sum())


def evaluate_renders(
    storage: Storage, rules: Sequence[Rule], now: int, max_series: int, max_points: int
) -> dict[str, list[Check] | str]:
    """The checks of render-target rules (all with one window), or each rule's error."""
    if not rules:
        return {}
    start, end = now - rules[0].window, now + 1
    patterns: set[str] = set()
    for rule in rules:
        with contextlib.suppress(RenderError):  # reported by the rule's own evaluation
            patterns.update(paths_of(rule.spec))
    out: dict[str, list[Check] | str] = {}
    try:
        source = Prefetch(storage, patterns, start, end)
    except (RenderError, ValueError, RuntimeError) as e:
        return {rule.name: f"reading {len(patterns)} paths failed: {e}" for rule in rules}
    ctx = make_context(source, start, end, now, max_series, max_points)
    for rule in rules:
        try:
            series = evaluate_target(rule.spec, ctx)
        except (RenderError, ValueError, RuntimeError) as e:
            out[rule.name] = f"target {rule.spec!r}: {e}"
            continue
        if len(series) > MAX_TARGETS:
            out[rule.name] = f"target gives {len(series)} series, more than {MAX_TARGETS}"
            continue
        out[rule.name] = [threshold_check(s.name, reduce(s, rule.reduce), rule) for s in series]
    return out


def evaluate_cube(storage: Storage, rule: Rule, now: int) -> list[Check]:
    """One check per group of the rule's cube query over its window."""
    spec = rule.spec
    group_by = tuple(spec["group_by"])
    filters = {
        k: tuple(str(v) for v in (vs if isinstance(vs, list) else [vs]))
        for k, vs in spec.items()
        if k not in ("measure", "group_by")
    }
    q = CubeQuery(now - rule.window, now + 1, (spec["measure"],), group_by, filters)
    result = storage.cube.query(q)
    index = {c: i for i, c in enumerate(result.columns)}
    checks = []
    for row in result.rows[:MAX_TARGETS]:
        key = ",".join(f"{d}={row[index[d]]}" for d in group_by) or spec["measure"]
        value = row[index[spec["measure"]]]
        number = None if value is None else float(value)
        checks.append(threshold_check(key, number, rule, f"{key} {spec['measure']}"))
    if not checks and not group_by:
        checks.append(threshold_check(spec["measure"], None, rule))
    return checks


def evaluate_search(storage: Storage, rule: Rule, now: int) -> Check:
    """The number of log entries matching the rule's search over its window."""
    spec = rule.spec
    words, phrases = parse_words(str(spec.get("q", "")))
    filters = {
        k: tuple(str(v) for v in (vs if isinstance(vs, list) else [vs]))
        for k, vs in spec.items()
        if k != "q"
    }
    q = LogQuery((now - rule.window) * 1000, (now + 1) * 1000, filters, words, phrases, MAX_LIMIT)
    count = 0
    while True:
        page = storage.logs.search(q)
        count += len(page.entries)
        if page.next_cursor is None or count >= MAX_SEARCH_COUNT:
            break
        last = page.entries[-1]
        q = LogQuery(q.start_ms, q.end_ms, filters, words, phrases, MAX_LIMIT,
                     cursor=(round(float(last["ts"]) * 1000), int(last["uid"])))  # fmt: skip
    target = " ".join(f"{k}={','.join(v)}" for k, v in filters.items())
    target = " ".join(p for p in (str(spec.get("q", "")), target) if p)
    return threshold_check(target, float(count), rule, f"{target}: {count} entries")


class Heartbeats:
    """When each source (host/app) last sent a heartbeat, from the bus's log batches."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def observe(self, batch: pa.Table) -> None:
        """Take the heartbeats of one log batch."""
        beats = batch.filter(pc.equal(batch.column("kind"), "heartbeat"))
        if not beats.num_rows:
            return
        latest = beats.group_by(["host", "app"]).aggregate([("ts", "max")])
        for host, app, ts in zip(
            latest.column("host").to_pylist(),
            latest.column("app").to_pylist(),
            latest.column("ts_max").cast(pa.int64()).to_pylist(),
            strict=True,
        ):
            key = f"{host}/{app}"
            self.last[key] = max(self.last.get(key, 0.0), ts / 1000)

    def check(self, rule: Rule, now: float) -> list[Check]:
        """CRITICAL for each matching source silent longer than the rule's timeout."""
        pattern = rule.spec if "/" in rule.spec else f"{rule.spec}/*"
        checks = []
        for source, seen in sorted(self.last.items()):
            if not fnmatch.fnmatchcase(source, pattern):
                continue
            age = now - seen
            if age > rule.timeout:
                message = f"no heartbeat from {source} for {age:.0f}s (timeout {rule.timeout}s)"
                checks.append(Check(source, Status.CRITICAL, age, message))
            else:
                checks.append(Check(source, Status.OK, age, f"heartbeat {age:.0f}s ago"))
        return checks
