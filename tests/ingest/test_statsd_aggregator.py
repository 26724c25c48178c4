"""The StatsD aggregator: hand-computed flushes, gauges across flushes, sample rates, sketches, key caps."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ingest.statsd import parse_statsd
from vigil.ingest.statsd_aggregator import StatsdAggregator, percentile_name
from vigil.model import POINTS_SCHEMA
from vigil.sketch import SKETCH_SCHEMA, bins_of, merge_bins, quantiles_of

NOW = 1_700_000_000


def flushed(aggregator: StatsdAggregator, *datagrams: bytes, now: int = NOW) -> dict[str, float]:
    """Add each datagram as its own batch, flush, and return the points by path."""
    for datagram in datagrams:
        aggregator.add(parse_statsd([datagram]))
    points, _ = aggregator.flush(now)
    assert points.schema == POINTS_SCHEMA
    assert set(points.column("ts").to_pylist()) <= {now}
    paths = points.column("path").to_pylist()
    assert len(paths) == len(set(paths))
    return dict(zip(paths, points.column("value").to_pylist(), strict=True))


def test_counters_sum_with_sample_rates_applied_and_rate_per_second() -> None:
    out = flushed(StatsdAggregator(flush_interval=10), b"hits:1|c\nhits:2|c|@0.5", b"hits:3|c|@0.1")
    assert out == {"stats.counters.hits.count": 35.0, "stats.counters.hits.rate": 3.5}


def test_negative_and_fractional_counts() -> None:
    out = flushed(StatsdAggregator(flush_interval=5), b"x:-4|c\nx:1.5|c")
    assert out == {"stats.counters.x.count": -2.5, "stats.counters.x.rate": -0.5}


def test_timers_hand_computed() -> None:
    aggregator = StatsdAggregator(flush_interval=10, percentiles=(50, 90, 99.9))
    out = flushed(aggregator, b"req:1|ms\nreq:2|ms\nreq:3|h", b"req:4|d\nreq:10|ms|@0.5")
    exact = {
        "stats.timers.req.count": 6.0,  # 4 samples at rate 1, one standing for 2
        "stats.timers.req.count_ps": 0.6,
        "stats.timers.req.sum": 20.0,
        "stats.timers.req.mean": 4.0,
        "stats.timers.req.lower": 1.0,
        "stats.timers.req.upper": 10.0,
        "stats.timers.req.std": math.sqrt(10.0),  # deviations 9, 4, 1, 0, 36 over 5
    }
    assert {path: out[path] for path in exact} == pytest.approx(exact, rel=1e-12)
    # Weighted ranks over 1, 2, 3, 4, 10, 10: median at rank 2.5 is 3; p90 and p99.9 are 10.
    for path, value in [("median", 3.0), ("p50", 3.0), ("p90", 10.0), ("p999", 10.0)]:
        assert out[f"stats.timers.req.{path}"] == pytest.approx(value, rel=0.01)
    assert len(out) == len(exact) + 4


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_subnormal=False), min_size=1, max_size=300
    ),
    st.lists(st.integers(min_value=0, max_value=300), max_size=4),
)
def test_timer_stats_over_batches_equal_numpy_and_percentiles_are_within_one_percent(
    values: list[float], cuts: list[int]
) -> None:
    aggregator = StatsdAggregator(percentiles=(50, 75, 90, 99, 99.9))
    edges = [0, *sorted(min(c, len(values)) for c in cuts), len(values)]
    for start, end in itertools.pairwise(edges):
        lines = b"\n".join(f"t:{v!r}|ms".encode() for v in values[start:end])
        aggregator.add(parse_statsd([lines]))
    points, _ = aggregator.flush(NOW)
    out = dict(
        zip(points.column("path").to_pylist(), points.column("value").to_pylist(), strict=True)
    )
    data = np.array(values)
    assert out["stats.timers.t.count"] == len(values)
    assert out["stats.timers.t.sum"] == pytest.approx(data.sum(), rel=1e-9, abs=1e-6)
    assert out["stats.timers.t.mean"] == pytest.approx(data.mean(), rel=1e-9, abs=1e-6)
    assert out["stats.timers.t.lower"] == data.min()
    assert out["stats.timers.t.upper"] == data.max()
    assert out["stats.timers.t.std"] == pytest.approx(data.std(), rel=1e-6, abs=1e-6)
    for name, q in [
        ("median", 0.5),
        ("p50", 0.5),
        ("p75", 0.75),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p999", 0.999),
    ]:
        exact = np.quantile(data, q, method="lower")
        estimate = out[f"stats.timers.t.{name}"]
        assert abs(estimate - exact) <= 0.01 * abs(exact) * (1 + 1e-9) + 1e-300, (
            name,
            estimate,
            exact,
        )


def test_each_timer_gets_one_sketch_row_with_its_weighted_bins() -> None:
    aggregator = StatsdAggregator()
    aggregator.add(
        parse_statsd([b"req:1|ms\nreq:-3|ms|@0.25\nreq:0|ms\nreq;host=a:7|ms\nhits:1|c"])
    )
    _, sketches = aggregator.flush(NOW)
    assert sketches.schema == SKETCH_SCHEMA
    rows = {row["path"]: row for row in sketches.to_pylist()}
    assert set(rows) == {"stats.timers.req", "stats.timers.req;host=a"}
    keys, counts = bins_of(np.array([1.0, -3.0, 0.0]), np.array([1.0, 4.0, 1.0]))
    assert rows["stats.timers.req"]["keys"] == keys.tolist()
    assert rows["stats.timers.req"]["counts"] == counts.tolist()
    assert rows["stats.timers.req"]["ts"] == NOW


def test_sketches_of_two_hosts_merge_to_the_percentiles_of_all_samples() -> None:
    rng = np.random.default_rng(7)
    samples = [rng.lognormal(4, 1, 500), rng.lognormal(2, 0.5, 300)]
    merged = []
    for host_samples in samples:
        aggregator = StatsdAggregator()
        aggregator.add(
            parse_statsd([b"\n".join(f"lat:{float(v)!r}|ms".encode() for v in host_samples)])
        )
        _, sketches = aggregator.flush(NOW)
        row = sketches.to_pylist()[0]
        merged.append((np.array(row["keys"], np.int32), np.array(row["counts"])))
    everything = np.concatenate(samples)
    qs = [0.5, 0.9, 0.99]
    estimates = quantiles_of(*merge_bins(*merged), qs)
    exact = np.quantile(everything, qs, method="lower")
    assert np.all(np.abs(estimates - exact) <= 0.01 * exact)


def test_gauges_set_and_change_in_arrival_order() -> None:
    out = flushed(StatsdAggregator(), b"g:5|g\ng:+1|g\ng:3|g\ng:-1|g\nh:-2|g\nh:+7|g")
    assert out == {"stats.gauges.g": 2.0, "stats.gauges.h": 5.0}


def test_gauges_keep_their_value_between_flushes() -> None:
    aggregator = StatsdAggregator(deletes_idle=False)
    assert flushed(aggregator, b"temp:20|g") == {"stats.gauges.temp": 20.0}
    assert flushed(aggregator, b"temp:+2.5|g", b"temp:-0.5|g") == {"stats.gauges.temp": 22.0}
    assert flushed(aggregator) == {"stats.gauges.temp": 22.0}
    assert flushed(aggregator, b"temp:7|g") == {"stats.gauges.temp": 7.0}


def test_with_deletes_idle_an_idle_gauge_is_left_out_then_forgotten() -> None:
    aggregator = StatsdAggregator(deletes_idle=True)
    assert flushed(aggregator, b"temp:20|g") == {"stats.gauges.temp": 20.0}
    assert flushed(aggregator, b"temp:+1|g") == {"stats.gauges.temp": 21.0}
    assert flushed(aggregator) == {}
    assert flushed(aggregator, b"temp:+1|g") == {"stats.gauges.temp": 1.0}


def test_without_deletes_idle_idle_names_are_written_as_zero() -> None:
    aggregator = StatsdAggregator(deletes_idle=False)
    flushed(aggregator, b"hits:4|c\nreq:5|ms\nusers:a|s\nup:1|g")
    assert flushed(aggregator) == {
        "stats.counters.hits.count": 0.0,
        "stats.counters.hits.rate": 0.0,
        "stats.timers.req.count": 0.0,
        "stats.timers.req.count_ps": 0.0,
        "stats.sets.users.count": 0.0,
        "stats.gauges.up": 1.0,
    }
    assert aggregator.flush(NOW)[1].num_rows == 0


def test_with_deletes_idle_an_idle_interval_writes_nothing() -> None:
    aggregator = StatsdAggregator()
    flushed(aggregator, b"hits:4|c\nreq:5|ms\nusers:a|s")
    points, sketches = aggregator.flush(NOW + 10)
    assert points.num_rows == 0 and points.schema == POINTS_SCHEMA
    assert sketches.num_rows == 0 and sketches.schema == SKETCH_SCHEMA


def test_sets_count_distinct_members_per_flush() -> None:
    aggregator = StatsdAggregator()
    out = flushed(aggregator, b"u:alice|s\nu:bob|s\nu:alice|s", b"u:bob|s\nu:carol|s\nv:1|s")
    assert out == {"stats.sets.u.count": 3.0, "stats.sets.v.count": 1.0}
    assert flushed(aggregator, b"u:alice|s") == {"stats.sets.u.count": 1.0}


def test_tags_come_after_the_suffix() -> None:
    out = flushed(
        StatsdAggregator(percentiles=(99,)),
        b"req:5|ms|#host:a\nhits:1|c|#host:a,env:prod\ntemp:3|g|#host:a\nu:x|s|#host:a",
    )
    assert out["stats.timers.req.p99;host=a"] == pytest.approx(5.0, rel=0.01)
    assert out["stats.timers.req.count;host=a"] == 1.0
    assert out["stats.counters.hits.count;env=prod;host=a"] == 1.0
    assert out["stats.counters.hits.rate;env=prod;host=a"] == 0.1
    assert out["stats.gauges.temp;host=a"] == 3.0
    assert out["stats.sets.u.count;host=a"] == 1.0


@pytest.mark.parametrize(
    ("prefix", "path"),
    [
        ("stats", "stats.counters.a.count"),
        ("", "counters.a.count"),
        ("dc1.statsd", "dc1.statsd.counters.a.count"),
    ],
)
def test_prefix(prefix: str, path: str) -> None:
    assert path in flushed(StatsdAggregator(prefix=prefix), b"a:1|c")


def test_key_cap_drops_new_names_and_counts_them_by_reason() -> None:
    aggregator = StatsdAggregator(max_keys=3)
    out = flushed(aggregator, b"a:1|c\ng:1|g", b"b:1|c\nt:1|ms\nc:1|c\nc:2|c\na:1|c\nu:x|s")
    assert out == {
        "stats.counters.a.count": 2.0,
        "stats.counters.a.rate": 0.2,
        "stats.counters.b.count": 1.0,
        "stats.counters.b.rate": 0.1,
        "stats.gauges.g": 1.0,
    }
    assert aggregator.dropped == {
        "key cap (counters)": 2,
        "key cap (timers)": 1,
        "key cap (sets)": 1,
    }
    # The kept gauge still holds a key; the counters' keys are free again.
    assert flushed(aggregator, b"c:1|c\nd:1|c\ne:1|c") == {
        "stats.counters.c.count": 1.0,
        "stats.counters.c.rate": 0.1,
        "stats.counters.d.count": 1.0,
        "stats.counters.d.rate": 0.1,
    }
    assert aggregator.dropped["key cap (counters)"] == 3


def test_set_member_cap() -> None:
    aggregator = StatsdAggregator(max_set_members=2)
    out = flushed(aggregator, b"u:a|s\nu:b|s\nu:a|s\nv:c|s\nu:d|s")
    assert out == {"stats.sets.u.count": 2.0, "stats.sets.v.count": 0.0}
    assert aggregator.dropped == {"set member cap": 2}
    assert flushed(aggregator, b"v:c|s") == {"stats.sets.v.count": 1.0}


def test_aggregates_that_overflow_are_dropped_and_counted() -> None:
    aggregator = StatsdAggregator()
    out = flushed(aggregator, b"big:1e308|c\nbig:1e308|c")
    assert out == {}
    assert aggregator.dropped == {"non-finite aggregate": 2}


def test_timer_stats_that_overflow_are_dropped_without_warnings() -> None:
    aggregator = StatsdAggregator(percentiles=(99,))
    out = flushed(aggregator, b"t:1.7e308|ms\nt:1.7e308|ms\nt:-1e200|ms", b"t:1e300|ms")
    assert out["stats.timers.t.upper"] == 1.7e308
    assert out["stats.timers.t.p99"] == pytest.approx(1.7e308, rel=0.01)
    assert "stats.timers.t.sum" not in out and "stats.timers.t.std" not in out
    assert aggregator.dropped["non-finite aggregate"] >= 3


def test_an_empty_flush_gives_empty_tables() -> None:
    points, sketches = StatsdAggregator().flush(NOW)
    assert points.num_rows == 0 and points.schema == POINTS_SCHEMA
    assert sketches.num_rows == 0 and sketches.schema == SKETCH_SCHEMA


@pytest.mark.parametrize(
    ("percentile", "name"),
    [(50, "50"), (99, "99"), (99.9, "999"), (99.99, "9999"), (0.5, "05"), (100, "100")],
)
def test_percentile_names(percentile: float, name: str) -> None:
    assert percentile_name(percentile) == name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"percentiles": (101,)}, "between 0 and 100"),
        ({"percentiles": (-1,)}, "between 0 and 100"),
        ({"percentiles": (99.9, 9.99)}, "same name twice"),
        ({"flush_interval": 0}, "positive number of seconds"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StatsdAggregator(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("now", [-1, 2**32])
def test_flush_time_must_be_a_unix_time(now: int) -> None:
    with pytest.raises(ValueError, match="unix time"):
        StatsdAggregator().flush(now)


def test_many_batches_of_many_timers_compact_their_bins() -> None:
    aggregator = StatsdAggregator(percentiles=(99,))
    rng = np.random.default_rng(3)
    values = rng.lognormal(3, 1, (40, 2000))
    for row in values:
        aggregator.add(
            parse_statsd(
                [b"\n".join(f"t{i % 50}:{float(v)!r}|ms".encode() for i, v in enumerate(row))]
            )
        )
    points, sketches = aggregator.flush(NOW)
    assert sketches.num_rows == 50
    out = dict(
        zip(points.column("path").to_pylist(), points.column("value").to_pylist(), strict=True)
    )
    mine = values[:, 7::50].ravel()
    assert out["stats.timers.t7.count"] == len(mine)
    exact = np.quantile(mine, 0.99, method="lower")
    assert abs(out["stats.timers.t7.p99"] - exact) <= 0.01 * exact
