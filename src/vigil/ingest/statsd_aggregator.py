"""StatsD aggregation: parsed batches in, one set of Graphite points (and timer sketches) per flush out.

StatsD clients send every event; the server sums them over a flush interval
and writes aggregates, named as etsy's statsd Graphite backend does in its
new namespace (``legacyNamespace: false``,
https://github.com/statsd/statsd/blob/master/docs/graphite.md), all stamped
with the flush time:

- ``stats.counters.<name>.count``: the sum, sample rates applied (a ``1|c|@0.1``
  counts 10), and ``.rate``, that sum per second of the flush interval;
- ``stats.gauges.<name>``: the last value; ``+N``/``-N`` change it, also across
  flushes, since the value is kept;
- ``stats.timers.<name>.count`` (sample rates applied), ``.count_ps``, ``.sum``,
  ``.mean``, ``.lower``, ``.upper``, ``.std`` over the samples received, and
  ``.median`` and ``.p<N>`` per configured percentile (``p99``, ``p999`` for
  99.9) from the DDSketch of the flush: the value at rank ``N/100 * (count - 1)``
  to within 1%;
- ``stats.sets.<name>.count``: distinct members seen.

Each timer also gets one sketch row (``vigil.sketch.SKETCH_SCHEMA``) per flush
at ``stats.timers.<name>``, whose bins the storage engine sums over hosts and
time, so percentiles of any rollup stay right. Tags stay at the end, where
Graphite 1.1 expects them: ``req;host=a`` gives ``stats.timers.req.p99;host=a``.

Memory is bounded: at most ``max_keys`` distinct names (all types together,
kept gauges included) and ``max_set_members`` distinct set members per flush;
what does not fit is dropped and counted in ``dropped`` by reason. Within
a batch, new names are admitted counters first, then gauges, timers and sets. Timers keep
running moments and sketch bins, not samples, so a flush costs O(keys + bins)
numpy work however many samples arrived.

>>> from vigil.ingest.statsd import parse_statsd
>>> aggregator = StatsdAggregator(flush_interval=10, percentiles=(90,))
>>> aggregator.add(parse_statsd([b"hits:3|c|@0.5\\nup:+2|g"]))
>>> points, sketches = aggregator.flush(now=1700000000)
>>> [(p["path"], p["value"]) for p in points.to_pylist()]
[('stats.counters.hits.count', 6.0), ('stats.counters.hits.rate', 0.6), ('stats.gauges.up', 2.0)]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from vigil.ingest.statsd import StatsdBatch
from vigil.model import POINTS_SCHEMA
from vigil.sketch import SKETCH_SCHEMA, grouped_quantiles, keys_of, sum_grouped_bins

Slots = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
A = TypeVar("A", npt.NDArray[np.float64], npt.NDArray[np.bool_])

MAX_TS = 2**32 - 1
# Sketch bins are re-summed when this many rows are pending (or four times the summed ones).
_COMPACT_ROWS = 1 << 16


class StatsdAggregator:
    """Sums StatsD batches over a flush interval and emits Graphite points and timer sketches.

    ``add`` and ``flush`` are plain calls, not thread-safe: the listener
    calls both from one event loop. ``deletes_idle`` (etsy's
    ``deleteIdleStats``) leaves out names that received nothing during the
    interval instead of writing zeros (or, for gauges, the old value again); a
    gauge idle for a whole interval is then forgotten, so a later ``+N`` starts
    from zero.
    """

    def __init__(
        self,
        flush_interval: float = 10,
        percentiles: Sequence[float] = (50, 90, 99),
        prefix: str = "stats",
        deletes_idle: bool = True,
        max_keys: int = 100_000,
        max_set_members: int = 1_000_000,
    ) -> None:
        if not flush_interval > 0:
            raise ValueError(
                f"flush_interval must be a positive number of seconds, got {flush_interval}"
            )
        names = [percentile_name(p) for p in percentiles]
        if len(set(names)) != len(names):
            raise ValueError(f"percentiles {list(percentiles)} give the same name twice: {names}")
        self.flush_interval = float(flush_interval)
        self.percentiles = tuple(float(p) for p in percentiles)
        self.deletes_idle = deletes_idle
        self.max_keys = max_keys
        self.max_set_members = max_set_members
        # Rows dropped since this aggregator started, by reason.
        self.dropped: Counter[str] = Counter()
        ns = f"{prefix}." if prefix else ""
        self._counters = _Keys(f"{ns}counters.")
        self._gauges = _Keys(f"{ns}gauges.")
        self._timers = _Keys(f"{ns}timers.")
        self._sets = _Keys(f"{ns}sets.")
        self._counts: Floats = np.zeros(0)
        self._gauge_values: Floats = np.zeros(0)
        self._gauge_touched: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._timer = _TimerMoments()
        self._bins = _PendingBins()
        self._members: list[set[str]] = []
        self._member_count = 0
        self._stat_names = ["median", *(f"p{name}" for name in names)]
        self._quantiles = [0.5, *(p / 100 for p in self.percentiles)]

    def add(self, batch: StatsdBatch) -> None:
        """Fold a parsed batch into the current interval.

        Sums past the float range become infinite without a warning; ``flush``
        drops and counts them.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            self._add_counters(batch.counters)
            self._add_gauges(batch.gauges)
            self._add_timers(batch.timers)
            self._add_sets(batch.sets)

    def flush(self, now: int) -> tuple[pa.Table, pa.Table]:
        """The points (``POINTS_SCHEMA``) and timer sketches (``SKETCH_SCHEMA``) of the interval, stamped ``now``.

        Starts the next interval: counters, timers and sets start from zero,
        gauges keep their values.
        """
        if not 0 <= now <= MAX_TS:
            raise ValueError(f"flush time {now} is not a unix time in seconds")
        out = _Points()
        with np.errstate(over="ignore", invalid="ignore"):
            self._emit_counters(out)
            self._emit_gauges(out)
            sketches = self._emit_timers(out, now)
            self._emit_sets(out)
        points = out.table(now)
        finite = np.isfinite(points.column("value").to_numpy())
        if not finite.all():
            self.dropped["non-finite aggregate"] += int((~finite).sum())
            points = points.filter(pa.array(finite))
        self._end_interval()
        return points, sketches

    # Counters

    def _add_counters(self, table: pa.Table) -> None:
        slots = self._register(self._counters, table, "counters")
        self._counts = _grown(self._counts, len(self._counters), 0.0)
        keep = slots >= 0
        value = table.column("value").to_numpy()[keep] / table.column("rate").to_numpy()[keep]
        self._counts += np.bincount(slots[keep], value, minlength=len(self._counters))

    def _emit_counters(self, out: _Points) -> None:
        every = np.arange(len(self._counters))
        count = self._counts[: len(every)]
        out.add(self._counters, every, ".count", count)
        out.add(self._counters, every, ".rate", count / self.flush_interval)

    # Gauges

    def _add_gauges(self, table: pa.Table) -> None:
        """Apply sets and changes in arrival order: a change applies to the last set before it."""
        slots = self._register(self._gauges, table, "gauges")
        size = len(self._gauges)
        self._gauge_values = _grown(self._gauge_values, size, 0.0)
        self._gauge_touched = _grown(self._gauge_touched, size, False)
        keep = slots >= 0
        if not keep.any():
            return
        order = np.argsort(slots[keep], kind="stable")
        slot = slots[keep][order]
        value = table.column("value").to_numpy()[keep][order]
        delta = table.column("delta").to_numpy(zero_copy_only=False)[keep][order]
        starts = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
        ends = np.r_[starts[1:], len(slot)]
        group = np.repeat(np.arange(len(starts)), ends - starts)
        position = np.arange(len(slot))
        last_set = np.maximum.accumulate(np.where(delta, -1, position))[ends - 1]
        has_set = last_set >= starts
        after = position > np.where(has_set, last_set, starts - 1)[group]
        changes = np.bincount(group, np.where(after, value, 0.0), minlength=len(starts))
        first = slot[starts]
        base = np.where(has_set, value[np.maximum(last_set, 0)], self._gauge_values[first])
        self._gauge_values[first] = base + changes
        self._gauge_touched[first] = True

    def _emit_gauges(self, out: _Points) -> None:
        size = len(self._gauges)
        shown = self._gauge_touched[:size] if self.deletes_idle else np.ones(size, dtype=bool)
        slots = np.flatnonzero(shown)
        out.add(self._gauges, slots, "", self._gauge_values[slots])

    # Timers

    def _add_timers(self, table: pa.Table) -> None:
        slots = self._register(self._timers, table, "timers")
        keep = slots >= 0
        value = table.column("value").to_numpy()[keep]
        weight = 1.0 / table.column("rate").to_numpy()[keep]
        self._timer.add(slots[keep], value, weight, len(self._timers))
        self._bins.add(slots[keep], keys_of(value), weight)

    def _emit_timers(self, out: _Points, now: int) -> pa.Table:
        size = len(self._timers)
        t = self._timer
        t.grow(size)
        every = np.arange(size)
        seen = np.flatnonzero(t.n[:size] > 0)
        out.add(self._timers, every, ".count", t.weight[:size])
        out.add(self._timers, every, ".count_ps", t.weight[:size] / self.flush_interval)
        n = t.n[seen]
        for stat, values in (
            (".sum", t.total[seen]),
            (".mean", t.total[seen] / n),
            (".lower", t.lower[seen]),
            (".upper", t.upper[seen]),
            (".std", np.sqrt(np.maximum(t.m2[seen], 0.0) / n)),
        ):
            out.add(self._timers, seen, stat, values)
        groups, keys, counts = self._bins.summed()
        offsets = np.searchsorted(groups, np.arange(size + 1))
        quantiles = grouped_quantiles(offsets, keys, counts, self._quantiles)
        for column, stat in enumerate(self._stat_names):
            out.add(self._timers, seen, f".{stat}", quantiles[seen, column])
        lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys))
        counts_lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(counts))
        take = pa.array(seen)
        return pa.table(
            [
                self._timers.paths(seen, ""),
                pa.array(np.full(len(seen), now), pa.uint32()),
                lists.take(take),
                counts_lists.take(take),
            ],
            schema=SKETCH_SCHEMA,
        )

    # Sets

    def _add_sets(self, table: pa.Table) -> None:
        slots = self._register(self._sets, table, "sets")
        self._members.extend(set() for _ in range(len(self._sets) - len(self._members)))
        keep = slots >= 0
        if not keep.any():
            return
        pairs = pa.table(
            {"slot": slots[keep], "member": table.column("member").filter(pa.array(keep))}
        )
        distinct = pairs.group_by(["slot", "member"], use_threads=False).aggregate([])
        room = self.max_set_members - self._member_count
        for slot, member in zip(
            distinct.column("slot").to_pylist(), distinct.column("member").to_pylist(), strict=True
        ):
            members = self._members[slot]
            if member in members:
                continue
            if room <= 0:
                self.dropped["set member cap"] += 1
                continue
            members.add(member)
            room -= 1
        self._member_count = self.max_set_members - room

    def _emit_sets(self, out: _Points) -> None:
        every = np.arange(len(self._sets))
        counts = np.array([len(m) for m in self._members[: len(every)]], dtype=np.float64)
        out.add(self._sets, every, ".count", counts)

    # Keys and intervals

    def _register(self, keys: _Keys, table: pa.Table, kind: str) -> Slots:
        room = self.max_keys - sum(
            len(k) for k in (self._counters, self._gauges, self._timers, self._sets)
        )
        slots = keys.slots(table.column("name"), room)
        dropped = int((slots < 0).sum())
        if dropped:
            self.dropped[f"key cap ({kind})"] += dropped
        return slots

    def _end_interval(self) -> None:
        if self.deletes_idle:
            kept = np.flatnonzero(self._gauge_touched[: len(self._gauges)])
            self._gauges.keep(kept)
            self._gauge_values = self._gauge_values[kept]
            for keys in (self._counters, self._timers, self._sets):
                keys.clear()
        self._gauge_touched = np.zeros(len(self._gauges), dtype=bool)
        self._counts = np.zeros(len(self._counters))
        self._timer = _TimerMoments()
        self._bins = _PendingBins()
        self._members = [set() for _ in range(len(self._sets))]
        self._member_count = 0


def percentile_name(percentile: float) -> str:
    """The ``p<N>`` suffix digits of a percentile: ``99`` gives ``99``, ``99.9`` gives ``999``.

    Raises ``ValueError`` outside ``[0, 100]``, since such a percentile is a
    configuration mistake.
    """
    if not 0 <= percentile <= 100 or math.isnan(percentile):
        raise ValueError(f"percentile must be between 0 and 100, got {percentile}")
    return f"{percentile:g}".replace(".", "")


class _Keys:
    """Names seen in an interval, numbered densely, with the pieces of their output paths."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._slot: dict[str, int] = {}
        self._heads: list[str] = []
        self._tails: list[str] = []

    def __len__(self) -> int:
        return len(self._heads)

    def slots(self, names: pa.ChunkedArray, room: int) -> Slots:
        """The slot of each name, registering new names while ``room`` lasts; -1 for the rest."""
        encoded = pc.dictionary_encode(names).combine_chunks()
        lookup = []
        for name in encoded.dictionary.to_pylist():
            slot = self._slot.get(name)
            if slot is None and room > 0:
                slot = self._slot[name] = len(self._heads)
                base, semicolon, tags = name.partition(";")
                self._heads.append(self.namespace + base)
                self._tails.append(semicolon + tags)
                room -= 1
            lookup.append(-1 if slot is None else slot)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        slots: Slots = (
            np.array(lookup, dtype=np.int64)[indices] if len(indices) else np.zeros(0, np.int64)
        )
        return slots

    def paths(self, slots: npt.NDArray[np.int64], suffix: str) -> pa.Array:
        """``<namespace><name><suffix><tags>`` for each slot."""
        take = pa.array(slots, pa.int64())
        heads = pa.array(self._heads, pa.string()).take(take)
        tails = pa.array(self._tails, pa.string()).take(take)
        return pc.binary_join_element_wise(heads, suffix, tails, "")

    def keep(self, slots: npt.NDArray[np.int64]) -> None:
        """Forget every name but those at ``slots``, which are renumbered in order."""
        names = list(self._slot)
        self._heads = [self._heads[s] for s in slots]
        self._tails = [self._tails[s] for s in slots]
        self._slot = {names[s]: i for i, s in enumerate(slots.tolist())}

    def clear(self) -> None:
        """Forget every name."""
        self.keep(np.zeros(0, dtype=np.int64))


class _TimerMoments:
    """Per-timer count, sum, extremes and squared deviations, merged batch by batch (Chan et al.)."""

    def __init__(self) -> None:
        self.n: Floats = np.zeros(0)
        self.weight: Floats = np.zeros(0)
        self.total: Floats = np.zeros(0)
        self.mean: Floats = np.zeros(0)
        self.m2: Floats = np.zeros(0)
        self.lower: Floats = np.zeros(0)
        self.upper: Floats = np.zeros(0)

    def grow(self, size: int) -> None:
        """Make room for timers numbered below ``size``."""
        for name in ("n", "weight", "total", "mean", "m2"):
            setattr(self, name, _grown(getattr(self, name), size, 0.0))
        self.lower = _grown(self.lower, size, math.inf)
        self.upper = _grown(self.upper, size, -math.inf)

    def add(self, slots: Slots, value: Floats, weight: Floats, size: int) -> None:
        """Fold in samples ``value`` of timers ``slots``, each standing for ``weight`` events."""
        self.grow(size)
        if not len(slots):
            return
        n_b = np.bincount(slots, minlength=size).astype(np.float64)
        sum_b = np.bincount(slots, value, minlength=size)
        seen = n_b > 0
        mean_b = np.divide(sum_b, n_b, out=np.zeros(size), where=seen)
        m2_b = np.bincount(slots, (value - mean_b[slots]) ** 2, minlength=size)
        n = self.n + n_b
        delta = mean_b - self.mean
        share = np.divide(n_b, n, out=np.zeros(size), where=seen)
        self.m2 = self.m2 + m2_b + delta**2 * self.n * share
        self.mean = self.mean + delta * share
        self.n = n
        self.total = self.total + sum_b
        self.weight = self.weight + np.bincount(slots, weight, minlength=size)
        np.minimum.at(self.lower, slots, value)
        np.maximum.at(self.upper, slots, value)


class _PendingBins:
    """Sketch bins of every timer of the interval: rows appended per batch, summed now and then."""

    def __init__(self) -> None:
        self._chunks: list[tuple[Slots, npt.NDArray[np.int32], Floats]] = []
        self._pending = 0
        self._summed = 0

    def add(self, slots: Slots, keys: npt.NDArray[np.int32], weights: Floats) -> None:
        self._chunks.append((slots, keys, weights))
        self._pending += len(slots)
        if self._pending > max(_COMPACT_ROWS, 4 * self._summed):
            self.summed()

    def summed(self) -> tuple[Slots, npt.NDArray[np.int32], Floats]:
        """The bins so far, one row per (timer, key), sorted by timer then key."""
        if not self._chunks:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0)
        groups, keys, counts = sum_grouped_bins(
            np.concatenate([c[0] for c in self._chunks]),
            np.concatenate([c[1] for c in self._chunks]),
            np.concatenate([c[2] for c in self._chunks]),
        )
        self._chunks = [(groups, keys, counts)]
        self._pending = self._summed = len(groups)
        return groups, keys, counts


class _Points:
    """Output columns collected type by type, assembled once into a points table."""

    def __init__(self) -> None:
        self._paths: list[pa.Array] = []
        self._values: list[Floats] = []

    def add(self, keys: _Keys, slots: Slots, suffix: str, values: Floats) -> None:
        if len(slots):
            self._paths.append(keys.paths(slots, suffix))
            self._values.append(np.asarray(values, dtype=np.float64))

    def table(self, now: int) -> pa.Table:
        if not self._paths:
            return POINTS_SCHEMA.empty_table()
        values = np.concatenate(self._values)
        return pa.table(
            [
                pa.concat_arrays(self._paths),
                pa.array(np.full(len(values), now), pa.uint32()),
                pa.array(values),
            ],
            schema=POINTS_SCHEMA,
        )


def _grown(array: A, size: int, fill: object) -> A:
    """``array`` extended with ``fill`` to ``size`` entries (never shrunk)."""
    if len(array) >= size:
        return array
    grown: A = np.concatenate([array, np.full(size - len(array), fill, dtype=array.dtype)])
    return grown
