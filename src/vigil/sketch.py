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
    q = np.asarray(qs, dtype=np.float64)
    if q.ndim != 1 or ((q < 0) | (q > 1)).any() or np.isnan(q).any():
        raise ValueError(f"quantiles must be a list of numbers in [0, 1], got {qs!r}")
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


def _sum_by_key(keys: KeyArray, counts: FloatArray) -> Bins:
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=counts, minlength=len(unique))
    return unique.astype(np.int32), summed.astype(np.float64)
