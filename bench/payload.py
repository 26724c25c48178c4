"""A realistic Graphite plaintext payload, generated once and sent to every server.

The payload looks like a fleet reporting every 10 s: ``bench.c<C>.h<HH>.<metric>``
for clusters of 100 hosts with 10 metrics each (1,000 series per cluster).
Seven metrics are random walks with two decimals (``cpu_user 57.23``), three
are monotonic counters (``net_rx_bytes 734019372``). Lines are in time-major
order, every series for one timestamp and then the next, as a relay
forwarding a fleet's reports would send them. Example line::

    bench.c0.h07.load1 3.41 1700000010

The shape fixes the three render queries: one series, ``sumSeries`` over the
100 hosts of one metric in cluster 0, and a wildcard over cluster 0's 1,000
series.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

GAUGES = (
    "cpu_user",
    "cpu_system",
    "load1",
    "mem_used_pct",
    "disk_used_pct",
    "latency_ms",
    "temp_c",
)
COUNTERS = ("net_rx_bytes", "net_tx_bytes", "requests_total")
METRICS = GAUGES + COUNTERS
HOSTS_PER_CLUSTER = 100
SERIES_PER_CLUSTER = HOSTS_PER_CLUSTER * len(METRICS)


def series_name(index: int) -> str:
    """Return the dotted path of series number ``index`` (``0 -> bench.c0.h00.cpu_user``)."""
    cluster, rest = divmod(index, SERIES_PER_CLUSTER)
    host, metric = divmod(rest, len(METRICS))
    return f"bench.c{cluster}.h{host:02d}.{METRICS[metric]}"


@dataclass(frozen=True)
class Payload:
    """A pre-generated payload: the bytes to send and what a server must then show."""

    names: list[str]
    step: int
    points_per_series: int
    start: int
    end: int
    chunks: list[bytes] = field(repr=False)
    samples: list[str]

    @property
    def series(self) -> int:
        """Number of distinct series in the payload."""
        return len(self.names)

    @property
    def points(self) -> int:
        """Number of points (lines) in the payload."""
        return self.series * self.points_per_series

    @property
    def size(self) -> int:
        """Payload size in bytes."""
        return sum(len(c) for c in self.chunks)

    @property
    def clusters(self) -> int:
        """Number of ``bench.c<N>`` clusters, each holding up to 1,000 series."""
        return -(-self.series // SERIES_PER_CLUSTER)

    def cluster_series(self, cluster: int) -> int:
        """Number of series under ``bench.c<cluster>.*.*``."""
        return min(SERIES_PER_CLUSTER, self.series - cluster * SERIES_PER_CLUSTER)

    @property
    def single_target(self) -> str:
        """The series of the single-series render query."""
        return self.names[0]

    @property
    def sum_hosts(self) -> int:
        """Number of series that the ``sumSeries`` query adds up."""
        return len([n for n in self.names[:SERIES_PER_CLUSTER] if n.endswith(".cpu_user")])

    @property
    def wildcard_series(self) -> int:
        """Number of series that the wildcard query matches."""
        return self.cluster_series(0)


def generate(
    series: int,
    total_points: int,
    step: int = 10,
    chunk_bytes: int = 1 << 20,
    samples: int = 20,
    seed: int = 42,
    end: int | None = None,
) -> Payload:
    """Generate a payload of ``series`` series and about ``total_points`` points.

    ``total_points`` is rounded down to a whole number of points per series
    (at least one). The last timestamp is aligned to ``step`` and lies a
    minute in the past, so that no engine hides it as "too recent" (a
    VictoriaMetrics query near now is shifted back by -search.latencyOffset).
    ``chunks`` are cut at line ends, each about ``chunk_bytes`` long, ready for
    ``socket.sendall``. ``samples`` series, spread over the payload and
    always including the last one sent, are polled for visibility.
    """
    if series < 1:
        raise ValueError("--series must be at least 1")
    per_series = max(1, total_points // series)
    if end is None:
        end = (int(time.time()) - 60) // step * step
    start = end - (per_series - 1) * step
    rng = np.random.default_rng(seed)
    names = [series_name(i) for i in range(series)]
    is_counter = np.array([i % len(METRICS) >= len(GAUGES) for i in range(series)])

    # Gauges: random walks in cents, reflected at zero. Counters: integer
    # counts with Poisson increments of per-series rates.
    cents = rng.integers(100, 10_000, size=series) + np.cumsum(
        np.rint(rng.normal(0.0, 40.0, size=(per_series, series))), axis=0, dtype=np.int64
    )
    cents = np.abs(cents)
    rates = rng.uniform(1.0, 50_000.0, size=series)
    counts = rng.integers(0, 1 << 32, size=series) + np.cumsum(
        rng.poisson(rates, size=(per_series, series)), axis=0, dtype=np.int64
    )

    text_rows: list[str] = []
    gauge_cols = np.flatnonzero(~is_counter)
    counter_cols = np.flatnonzero(is_counter)
    for row in range(per_series):
        ts = start + row * step
        values: list[str] = [""] * series
        for col, c in zip(gauge_cols.tolist(), cents[row, gauge_cols].tolist(), strict=True):
            values[col] = f"{c // 100}.{c % 100:02d}"
        for col, n in zip(counter_cols.tolist(), counts[row, counter_cols].tolist(), strict=True):
            values[col] = str(n)
        suffix = f" {ts}\n"
        text_rows.append(
            "".join([f"{nm} {v}{suffix}" for nm, v in zip(names, values, strict=True)])
        )
    blob = "".join(text_rows).encode("ascii")
    del text_rows
    chunks = _cut(blob, chunk_bytes)

    picks = np.linspace(0, series - 1, num=min(samples, series)).round().astype(int).tolist()
    sample_names = sorted({names[i] for i in picks} | {names[-1]})
    return Payload(names, step, per_series, start, end, chunks, sample_names)


def _cut(blob: bytes, chunk_bytes: int) -> list[bytes]:
    """Split ``blob`` into pieces of about ``chunk_bytes``, each ending at a newline."""
    chunks: list[bytes] = []
    pos = 0
    while pos < len(blob):
        limit = pos + chunk_bytes
        if limit >= len(blob):
            cut = len(blob)
        else:
            newline = blob.rfind(b"\n", pos, limit)
            if newline < 0:  # one line longer than a chunk: end the chunk after it
                newline = blob.find(b"\n", limit)
            cut = newline + 1 if newline >= 0 else len(blob)
        chunks.append(blob[pos:cut])
        pos = cut
    return chunks
