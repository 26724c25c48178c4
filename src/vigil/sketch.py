"""Timer percentiles from DDSketch bins, in a form the storage engine can merge by summing.

Percentiles cannot be averaged: the p99 of two hosts is not the mean of their
p99s. A DDSketch (https://arxiv.org/abs/1908.10693) can be merged instead: a
value ``v`` falls in bin ``ceil(log_gamma(v))`` and a sketch is only counts per
bin, so merging sketches is adding counts key by key. That is exactly
ClickHouse's ``sumMap``, so sketches are stored as sparse bins
(``keys list<int32>``, ``counts list<float64>``) and merged by the engine across
hosts and time buckets; any quantile read back from merged bins is within 1%
relative error of the true value at that rank.

The bin mapping is the ``ddsketch`` package's ``LogarithmicMapping`` at 1%
relative accuracy (its ``gamma``, smallest and largest indexable values),
evaluated with numpy so a whole batch is keyed at once; the tests check that
the keys and bin values agree with the package's own scalar ``key``/``value``.

One int32 key space holds positive, zero and negative values, ordered like the
values themselves so that sorting keys sorts values:

- ``|v| <= MAPPING.min_possible`` (zero, and subnormals): key ``0``;
- ``v > 0``: ``KEY_BIAS + k`` where ``k`` is the package's key of ``v``;
- ``v < 0``: ``-(KEY_BIAS + k)`` where ``k`` is the package's key of ``-v``.

At 1% accuracy ``|k|`` stays below 35,500 for every finite float64, so with
``KEY_BIAS = 65536`` positive keys are in ``[30036, 101025]``, negative keys the
mirror image, and nothing collides with zero.

>>> keys, counts = bins_of(np.array([1.0, 2.0, 2.0, -3.0]), np.ones(4))
>>> keys.tolist(), counts.tolist()
([-65591, 65536, 65571], [1.0, 1.0, 2.0])
>>> quantiles_of(keys, counts, [0.0, 0.5, 1.0]).round(2).tolist()
[-2.97, 0.99, 1.99]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from ddsketch.mapping import LogarithmicMapping

KeyArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]
Bins = tuple[KeyArray, FloatArray]

RELATIVE_ACCURACY = 0.01
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
KEY_BIAS = 1 << 16

# Rows of per-series sketches: merged by the engine with sumMap(keys, counts).
SKETCH_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("ts", pa.uint32(), nullable=False),
        pa.field("keys", pa.list_(pa.field("item", pa.int32(), nullable=False)), nullable=False),
        pa.field(
            "counts", pa.list_(pa.field("item", pa.float64(), nullable=False)), nullable=False
        ),
    ]
)

# log(gamma) as the package computes it (from the accuracy, not the rounded gamma),
# so that keys and values agree with its scalar ones to the last few ulps.
_LOG_GAMMA = math.log1p(2 * MAPPING.relative_accuracy / (1 - MAPPING.relative_accuracy))
# The package's bin value is gamma^k * 2 / (1 + gamma): the point of a bin
# [gamma^(k-1), gamma^k] within relative_accuracy of both ends. Taken inside the
# exponential so the top bin's gamma^k cannot overflow on the way.
_LOG_VALUE_FACTOR = math.log(2.0 / (1.0 + MAPPING.gamma))
# Encoded keys shifted to be non-negative below 2**_KEY_BITS, to pack (group, key) in an int64.
_KEY_BITS = 18
_KEY_SHIFT = 1 << (_KEY_BITS - 1)


def keys_of(values: npt.ArrayLike) -> KeyArray:
    """The encoded bin key of each value, so a batch of samples is keyed in one numpy pass.

    Raises ``ValueError`` on NaN or infinity: parsers reject those, so one here
    is a bug upstream rather than input to survive.
    """
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).all():
        raise ValueError("sketch values must be finite")
    magnitude = np.minimum(np.abs(v), MAPPING.max_possible)
    nonzero = magnitude > MAPPING.min_possible
    safe = np.where(nonzero, magnitude, 1.0)
    biased = np.ceil(np.log(safe) / _LOG_GAMMA).astype(np.int32) + np.int32(KEY_BIAS)
    signed = np.where(v < 0, -biased, biased)
    return np.where(nonzero, signed, 0).astype(np.int32)


def values_of(keys: npt.ArrayLike) -> FloatArray:
    """The representative value of each encoded key: within 1% of every value in its bin."""
    k = np.asarray(keys, dtype=np.int64)
    magnitude = np.abs(k) - KEY_BIAS
    value = np.exp(magnitude * _LOG_GAMMA + _LOG_VALUE_FACTOR)
    return np.where(k == 0, 0.0, np.where(k < 0, -value, value))


def bins_of(values: npt.ArrayLike, weights: npt.ArrayLike) -> Bins:
    """The sparse bins of one sketch of ``values``: sorted unique keys and the summed weights.

    Weights are how many events a sample stands for (``1 / sample_rate`` for
    StatsD), so a merged sketch estimates the full population.
    """
    keys = keys_of(values)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != keys.shape:
        raise ValueError(f"values and weights differ in shape: {keys.shape} != {w.shape}")
    return _sum_by_key(keys, w)


def merge_bins(*bins: Bins) -> Bins:
    """Merge sketches by summing counts per key, as the engine's ``sumMap`` does.

    Associative and commutative: bins of ``A + B`` equal the merge of the bins
    of ``A`` and of ``B``, in any order or split (up to float rounding of the
    counts).
    """
    if not bins:
        return np.empty(0, np.int32), np.empty(0, np.float64)
    keys = np.concatenate([np.asarray(k, dtype=np.int32) for k, _ in bins])
    counts = np.concatenate([np.asarray(c, dtype=np.float64) for _, c in bins])
    return _sum_by_key(keys, counts)


def quantiles_of(keys: npt.ArrayLike, counts: npt.ArrayLike, qs: Sequence[float]) -> FloatArray:
    """The value at each rank ``q`` in ``[0, 1]`` of one sketch, NaN when it is empty.

    The rank rule is DDSketch's: the element at ``q * (count - 1)`` counted
    from the smallest, i.e. numpy's ``quantile(..., method="lower")`` on the raw
    values, to 1% relative error. Keys need not be sorted nor unique.
    """
    k, c = merge_bins((np.asarray(keys, dtype=np.int32), np.asarray(counts, dtype=np.float64)))
    offsets = np.array([0, len(k)], dtype=np.int64)
    result: FloatArray = grouped_quantiles(offsets, k, c, qs)[0]
    return result


def sum_grouped_bins(
    groups: npt.ArrayLike, keys: npt.ArrayLike, counts: npt.ArrayLike
) -> tuple[IndexArray, KeyArray, FloatArray]:
    """Bins of many sketches at once, summed per (group, key) and sorted by group then key.

    This is how an aggregator sketches every timer of a flush in one pass:
    ``groups`` numbers the sketch (``0 <= group < 2**40``) of each key.
    """
    g = np.asarray(groups, dtype=np.int64)
    k = np.asarray(keys, dtype=np.int64)
    code = (g << _KEY_BITS) | (k + _KEY_SHIFT)
    unique, inverse = np.unique(code, return_inverse=True)
    summed = np.bincount(inverse, weights=np.asarray(counts, dtype=np.float64))
    out_keys = ((unique & ((1 << _KEY_BITS) - 1)) - _KEY_SHIFT).astype(np.int32)
    return unique >> _KEY_BITS, out_keys, summed.astype(np.float64)


def grouped_quantiles(
    offsets: npt.ArrayLike, keys: npt.ArrayLike, counts: npt.ArrayLike, qs: Sequence[float]
) -> FloatArray:
    """Quantiles of many sketches at once: one row per sketch, one column per ``q``.

    Sketch ``i`` is ``keys[offsets[i]:offsets[i + 1]]`` (sorted ascending, as
    ``sum_grouped_bins`` leaves them) with their positive counts; an empty
    sketch gives a row of NaN. One cumulative sum over all sketches and one
    ``searchsorted`` find every rank, so the cost does not depend on a Python
    loop over sketches.
    """
    q = _levels(qs)
    off = np.asarray(offsets, dtype=np.int64)
    k = np.asarray(keys, dtype=np.int32)
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(counts, dtype=np.float64))])
    starts, ends = off[:-1], off[1:]
    before, total = cum[starts], cum[ends] - cum[starts]
    result = np.full((len(starts), len(q)), np.nan)
    filled = ends > starts
    if not filled.any():
        return result
    rank = np.maximum(total[:, None] - 1.0, 0.0) * q[None, :]
    # First bin whose cumulative count exceeds the rank, kept inside its sketch.
    idx = np.searchsorted(cum[1:], before[:, None] + rank, side="right")
    low, high = starts[:, None], np.maximum(ends - 1, 0)[:, None]
    idx = np.minimum(np.maximum(idx, low), high)
    # ``before + rank`` may round by an ulp; counts relative to the sketch's start
    # are exact, so one step either way puts each rank in its bin.
    within = before[:, None]
    idx = np.where((idx > low) & (cum[idx] - within > rank), idx - 1, idx)
    idx = np.where((idx < high) & (cum[idx + 1] - within <= rank), idx + 1, idx)
    result[filled] = values_of(k[idx[filled]])
    return result


def run_quantiles(
    offsets: npt.ArrayLike,
    keys: npt.ArrayLike,
    counts: npt.ArrayLike,
    rows: npt.ArrayLike,
    starts: npt.ArrayLike,
    qs: Sequence[float],
) -> FloatArray:
    """Quantiles of sketches that are each the sum of several rows of sorted bins.

    Row ``r`` is ``keys[offsets[r]:offsets[r + 1]]`` (sorted ascending) with
    integer ``counts``; sketch ``g`` sums the rows ``rows[starts[g]:starts[g + 1]]``
    (at least one; an empty sketch gives a row of NaN).
    The rank rule is ``grouped_quantiles``' and so are the answers, but the
    rows are not merged into one array: a sketch's longest row, when it holds
    at least half its keys, is searched where it lies, and only the other
    rows' keys are sorted and placed in its gaps. A cube day is typically one
    row of a group's successes and a few short rows of its error statuses,
    so almost nothing is sorted or copied.
    """
    q = _levels(qs)
    off = np.asarray(offsets, dtype=np.int64)
    k = np.asarray(keys, dtype=np.int32)
    c = np.asarray(counts)
    if c.dtype == np.uint64:  # the engine's counts: reinterpreted, as converting is a copy
        c = c.view(np.int64)
    c = c.astype(np.int64, copy=False)
    cum = np.zeros(len(c) + 1, dtype=np.int64)
    np.cumsum(c, out=cum[1:])
    row = np.asarray(rows, dtype=np.int64)
    start = np.asarray(starts, dtype=np.int64)
    n = len(start)
    result = np.full((n, len(q)), np.nan)
    if not len(row):
        return result
    sizes = np.diff(np.append(start, len(row)))
    length = off[row + 1] - off[row]
    most = np.maximum.reduceat(length, start)
    hits = np.flatnonzero(length == np.repeat(most, sizes))
    longest = hits[np.searchsorted(hits, start)]
    in_place = 2 * most >= np.add.reduceat(length, start)
    lo = off[row[longest]]
    hi = np.where(in_place, off[row[longest] + 1], lo)  # an empty range: nothing in place
    # The other rows' keys, sorted by (sketch, key).
    rest = np.ones(len(row), dtype=bool)
    rest[longest[in_place]] = False
    rest_length = length[rest]
    elem = _ranges(off[row[rest]], rest_length)
    group = np.repeat(np.repeat(np.arange(n), sizes)[rest], rest_length)
    group, summed_keys, summed = _sum_by_sketch(group, k[elem], c[elem], n)
    sorted_keys = np.append(summed_keys, 0)  # padded: indexed up to one past the end below
    sorted_cum = np.concatenate([[0], np.cumsum(summed)])
    first = np.searchsorted(group, np.arange(n + 1))  # sketch g's sorted keys: first[g]:first[g+1]
    # Where each sorted key goes in its sketch's in-place row: before the equal keys there.
    gap = np.append(_lower_bound(k, lo[group], hi[group], sorted_keys[:-1]), 0)
    total = cum[hi] - cum[lo] + sorted_cum[first[1:]] - sorted_cum[first[:-1]]
    filled = total > 0
    if not filled.any():
        return result
    # Counts up to and including each sorted key in its sketch, plus every count of the
    # sketches before: non-decreasing over all sketches, so one searchsorted finds ranks.
    before = np.concatenate([[0], np.cumsum(total)[:-1]])
    through = (
        before[group]
        + cum[gap[:-1]]
        - cum[lo[group]]
        + sorted_cum[1:]
        - sorted_cum[first[:-1][group]]
    )
    rank = np.floor(np.maximum(total - 1, 0)[:, None] * q[None, :]).astype(np.int64)
    # The first sorted key past the rank (t, or the sketch's end); in-place keys before
    # its gap, counted with the sorted keys before t, may pass the rank sooner (none of
    # those before the previous sorted key's gap can, as that key did not).
    t = np.searchsorted(through, before[:, None] + rank, side="right")
    g_first, g_end = first[:-1, None], first[1:, None]
    target = cum[lo][:, None] + rank - (sorted_cum[t] - sorted_cum[g_first])
    end = np.where(t < g_end, gap[t], hi[:, None])
    i = _lower_bound(cum[1:], lo[:, None], end, target + 1)
    key = np.where(i < end, k[np.minimum(i, len(k) - 1)], sorted_keys[t])
    result[filled] = values_of(key[filled])
    return result


def _sum_by_sketch(
    group: IndexArray, keys: KeyArray, counts: IndexArray, n: int
) -> tuple[IndexArray, KeyArray, IndexArray]:
    """Bins of sketches ``0 <= group < n``, sorted by (sketch, key), counts summed per key.

    Where there are fewer (sketch, key) cells than bins (few sketches of many
    rows, as in a group by name over a day) one histogram over the cells sums
    them; else a sort, which finds each row's sorted run.
    """
    shifted = keys.astype(np.int64) + _KEY_SHIFT
    present = np.zeros(1 << _KEY_BITS, dtype=bool)
    present[shifted] = True
    distinct = np.flatnonzero(present)
    if n * len(distinct) > len(keys):
        order = np.argsort((group << _KEY_BITS) | shifted, kind="stable")
        return group[order], keys[order], counts[order]
    dense = np.cumsum(present) - 1  # each key's number among those present
    cell = group * len(distinct) + dense[shifted]
    # Float sums of integer counts are exact below 2**53.
    histogram = np.bincount(cell, weights=counts, minlength=n * len(distinct))
    filled = np.flatnonzero(histogram)
    sketch, key = np.divmod(filled, len(distinct))
    return sketch, (distinct[key] - _KEY_SHIFT).astype(np.int32), histogram[filled].astype(np.int64)


def _ranges(begin: IndexArray, length: IndexArray) -> IndexArray:
    """The indices of ranges ``[begin[i], begin[i] + length[i])``, concatenated."""
    end = np.cumsum(length)
    total = int(end[-1]) if len(end) else 0
    ranges: IndexArray = np.repeat(begin - (end - length), length) + np.arange(total)
    return ranges


def _lower_bound(
    values: npt.NDArray[np.integer[Any]],
    lo: IndexArray,
    hi: IndexArray,
    targets: npt.NDArray[np.integer[Any]],
) -> IndexArray:
    """First index in each ``[lo, hi)`` of sorted ``values`` not below its target (else ``hi``).

    One branchless binary search per range, all of them at once: each step
    halves every range still longer than one (``base`` stays below its target).
    """
    base, size = np.broadcast_arrays(lo, hi - lo)
    longest = int(size.max()) if size.size else 0
    for _ in range(max(longest - 1, 0).bit_length()):
        half = size >> 1
        probe = base + half
        base = np.where(values.take(probe, mode="clip") < targets, probe, base)
        size = size - half
    last = (size > 0) & (values.take(base, mode="clip") < targets)
    found: IndexArray = base + last
    return found


def _levels(qs: Sequence[float]) -> FloatArray:
    """``qs`` as an array, refused unless each is a number in [0, 1]."""
    q = np.asarray(qs, dtype=np.float64)
    if q.ndim != 1 or ((q < 0) | (q > 1)).any() or np.isnan(q).any():
        raise ValueError(f"quantiles must be a list of numbers in [0, 1], got {qs!r}")
    return q


def _sum_by_key(keys: KeyArray, counts: FloatArray) -> Bins:
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=counts, minlength=len(unique))
    return unique.astype(np.int32), summed.astype(np.float64)
