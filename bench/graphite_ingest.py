"""Graphite ingest benchmark: Vigil against carbon-cache and VictoriaMetrics on one payload.

Run from the repository root (see bench/README.md for how to read the figures)::

    .venv/bin/python bench/graphite_ingest.py --quick          # smoke run, ~1 min
    .venv/bin/python bench/graphite_ingest.py --json out.json  # 3 runs of 1.44M points

For each server and run: start it on loopback free ports with a fresh data
directory, send the pre-generated payload over one TCP connection as fast as
the server takes it, poll until every point is queryable, time the render
queries, stop the server gracefully, and measure its data directory. Runs
are interleaved (run 1 of every server, then run 2, ...) so that a noisy
spell of the shared machine does not land on one server only.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import payload as payload_mod
import procstat
from payload import Payload
from peers import Carbon, VictoriaMetrics
from servers import QUERY_LABELS, Server, ServerError, Vigil

SERVERS: dict[str, type[Server]] = {s.key: s for s in (Vigil, Carbon, VictoriaMetrics)}

#: (figure, peer, direction, bound): Vigil / peer must be <= or >= bound.
GOALS: list[tuple[str, str, str, float]] = [
    ("cpu_s_per_mpoints", "vm", "<=", 1.0),
    ("e2e_points_per_s", "carbon", ">=", 20.0),
    ("bytes_per_point", "vm", "<=", 1.0),
    *[(f"p50_ms:{label}", "vm", "<=", 2.0) for label in QUERY_LABELS],
]
RATIO_FIGURES = [
    "cpu_s_per_mpoints",
    "e2e_points_per_s",
    "bytes_per_point",
    *[f"p50_ms:{label}" for label in QUERY_LABELS],
]


def percentile(values: list[float], q: float) -> float:
    """Return the nearest-rank ``q`` percentile (with 30 samples p99 is the maximum)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_once(cls: type[Server], payload: Payload, args: argparse.Namespace) -> dict[str, Any]:
    """Run the payload once against a fresh server and return its figures.

    The temporary directory (data, config, server log) is removed afterwards,
    also when the run fails, unless --keep is given.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"vigil-bench-{cls.key}-"))
    try:
        return measure(cls(workdir), payload, args)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def measure(server: Server, payload: Payload, args: argparse.Namespace) -> dict[str, Any]:
    """Start ``server``, feed it the payload, query it, stop it; return the figures."""
    fig: dict[str, Any] = {"workdir": str(server.workdir)}
    try:
        server.start(args.start_timeout)
        time.sleep(args.settle)
        cpu0 = server.cpu_seconds()
        t0 = time.perf_counter()
        server.send(payload.chunks)
        t_sent = time.perf_counter()
        deadline = time.monotonic() + args.timeout
        while not server.samples_visible(payload):
            if time.monotonic() > deadline:
                raise ServerError(
                    f"sampled series did not show their last point within "
                    f"{args.timeout:g} s (raise --timeout?)"
                )
            time.sleep(args.poll)
        t_visible = time.perf_counter()
        # The count query costs server CPU too: snapshot the CPU and the clock
        # before each count, and keep the snapshot of the count that passes.
        while True:
            cpu1, t_end = server.cpu_seconds(), time.perf_counter()
            counted = server.count_points(payload)
            if counted >= payload.points or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        fig.update(
            send_s=t_sent - t0,
            visible_s=t_visible - t0,
            e2e_s=t_end - t0,
            lag_s=t_end - t_sent,
            send_points_per_s=payload.points / (t_sent - t0),
            e2e_points_per_s=payload.points / (t_end - t0),
            cpu_s=cpu1 - cpu0,
            cpu_s_per_mpoints=(cpu1 - cpu0) / payload.points * 1e6,
            points_counted=counted,
            complete=counted == payload.points,
        )
        for q in server.queries(payload):
            returned = q.series(q.fetch())  # warm-up, and a check that the query matches
            times = []
            for _ in range(args.render_reps):
                t = time.perf_counter()
                q.fetch()
                times.append((time.perf_counter() - t) * 1000)
            fig[f"p50_ms:{q.label}"] = statistics.median(times)
            fig[f"p99_ms:{q.label}"] = percentile(times, 99)
            fig[f"series:{q.label}"] = returned
            if returned != q.expected_series:
                print(
                    f"    warning: {server.title} {q.text} returned {returned} series, "
                    f"expected {q.expected_series}",
                    file=sys.stderr,
                )
        fig["peak_rss_mb"] = server.peak_rss_bytes() / 2**20
        fig.update(server.breakdown(payload.points))
        live = server.settle()
        if live is not None:
            fig["live_bytes_per_point"] = live / payload.points
    finally:
        fig["graceful_stop"] = server.stop(args.stop_timeout)
    allocated, apparent = procstat.disk_usage(server.data_dir, exclude=server.cache_entries)
    total, _ = procstat.disk_usage(server.data_dir)
    fig.update(
        disk_bytes=allocated,
        disk_apparent_bytes=apparent,
        disk_bytes_with_caches=total,
        bytes_per_point=allocated / payload.points,
        bytes_per_point_with_caches=total / payload.points,
    )
    return fig


def summary_line(fig: dict[str, Any]) -> str:
    """Return one run's headline figures in a line."""
    return (
        f"e2e {fig['e2e_points_per_s'] / 1e6:.3f}M pts/s, "
        f"CPU {fig['cpu_s_per_mpoints']:.2f} s/M pts, "
        f"{fig['bytes_per_point']:.2f} B/pt, RSS {fig['peak_rss_mb']:.0f} MB, "
        f"{fig['points_counted']}/{fig['points_expected']} points"
    )


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the median of every numeric figure over the successful runs."""
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {"runs_ok": len(ok), "runs": len(runs)}
    if not ok:
        return out
    for key, value in ok[0].items():
        if isinstance(value, bool):
            out[key] = all(r.get(key) for r in ok)
        elif isinstance(value, int | float):
            out[key] = statistics.median(r[key] for r in ok if key in r)
    return out


ROWS: list[tuple[str, str, str]] = [
    ("e2e_points_per_s", "end-to-end points/s", "{:,.0f}"),
    ("send_points_per_s", "send points/s (last byte accepted)", "{:,.0f}"),
    ("e2e_s", "end-to-end seconds", "{:.2f}"),
    ("lag_s", "seconds from last byte sent to all visible", "{:.2f}"),
    ("cpu_s_per_mpoints", "server CPU-s per M points", "{:.3f}"),
    ("peak_rss_mb", "peak RSS MB (VmHWM)", "{:.0f}"),
    ("bytes_per_point", "bytes on disk per point", "{:.2f}"),
    ("bytes_per_point_with_caches", "  the same with saved caches", "{:.2f}"),
    ("live_bytes_per_point", "  live parts only (engine's count)", "{:.2f}"),
    *[
        (f"p{p}_ms:{label}", f"render p{p} ms: {label}", "{:.1f}")
        for label in QUERY_LABELS
        for p in (50, 99)
    ],
    ("complete", "all points queryable", "{}"),
    ("graceful_stop", "graceful stop", "{}"),
]


def table(results: dict[str, dict[str, Any]], titles: dict[str, str]) -> str:
    """Return the table of medians, one column per server (``titles`` by key)."""
    keys = list(results)
    head = ["median of runs"] + [
        f"{titles[k]} ({results[k]['runs_ok']}/{results[k]['runs']})" for k in keys
    ]
    rows = [head]
    for key, label, fmt in ROWS:
        row = [label]
        for k in keys:
            value = results[k].get(key)
            row.append("n/a" if value is None else fmt.format(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def ratios(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Return Vigil's ratio to each peer for each compared figure, with the goal if any."""
    out: list[dict[str, Any]] = []
    vigil = results.get("vigil", {})
    for peer in ("vm", "carbon"):
        other = results.get(peer, {})
        for figure in RATIO_FIGURES:
            a, b = vigil.get(figure), other.get(figure)
            if peer not in results or "vigil" not in results:
                continue
            goal = next(((d, bound) for f, p, d, bound in GOALS if f == figure and p == peer), None)
            ratio = a / b if a is not None and b else None
            if ratio is None and goal is None:
                continue  # e.g. render latency against carbon, which has no render API
            met = None
            if goal is not None and ratio is not None:
                met = ratio <= goal[1] if goal[0] == "<=" else ratio >= goal[1]
            out.append(
                {
                    "figure": figure,
                    "peer": peer,
                    "ratio": ratio,
                    "goal": f"{goal[0]} {goal[1]:g}" if goal else None,
                    "met": met,
                }
            )
    return out


def ratio_lines(rows: list[dict[str, Any]]) -> str:
    """Return the ratio rows as aligned text."""
    names = {
        "cpu_s_per_mpoints": "CPU-s per M points",
        "e2e_points_per_s": "end-to-end points/s",
        "bytes_per_point": "bytes per point",
    }
    lines = []
    for r in rows:
        name = names.get(r["figure"], r["figure"].replace("p50_ms:", "render p50: "))
        peer = SERVERS[r["peer"]].title
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
        goal = f"goal {r['goal']}" if r["goal"] else "(no goal)"
        met = {True: "met", False: "NOT MET", None: ""}[r["met"]]
        lines.append(f"  {name:<34} Vigil / {peer:<15} {ratio:>7}   {goal:<12} {met}")
    return "\n".join(lines)


def common_parser(servers: dict[str, type[Server]], doc: str | None) -> argparse.ArgumentParser:
    """The flags of every Graphite ingest benchmark: servers, payload, runs, timeouts."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0] if doc else None)
    p.add_argument(
        "--only",
        default=",".join(servers),
        help=f"servers to run, comma-separated from: {', '.join(servers)}",
    )
    p.add_argument("--series", type=int, help="number of series (default 5,000; quick 1,000)")
    p.add_argument(
        "--points",
        type=int,
        help="total points, rounded down to whole points per series "
        "(default 1,440,000; quick 100,000)",
    )
    p.add_argument("--step", type=int, default=10, help="seconds between points (default 10)")
    p.add_argument("--runs", type=int, help="runs per server (default 3; quick 1)")
    p.add_argument(
        "--render-reps",
        type=int,
        help="timed repetitions of each render query (default 30; quick 5)",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run: small payload, one run")
    p.add_argument("--json", type=Path, help="write all figures to this file")
    p.add_argument("--chunk-kb", type=int, default=1024, help="sendall chunk size (default 1024)")
    p.add_argument("--seed", type=int, default=42, help="payload random seed")
    p.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds to wait for all points to be queryable (default 900)",
    )
    p.add_argument("--start-timeout", type=float, default=120, help="seconds for a server to start")
    p.add_argument(
        "--stop-timeout", type=float, default=300, help="seconds for a graceful stop before SIGKILL"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="idle seconds between start and the CPU baseline (default 1)",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=0.1,
        help="visibility poll interval in seconds (default 0.1; each poll costs the server CPU)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    return p


def finish_args(
    p: argparse.ArgumentParser, argv: list[str] | None, servers: dict[str, type[Server]]
) -> argparse.Namespace:
    """Parse ``argv``; --quick fills in small sizes for flags left unset; check --only."""
    args = p.parse_args(argv)
    quick = {"series": 1000, "points": 100_000, "runs": 1, "render_reps": 5}
    full = {"series": 5000, "points": 1_440_000, "runs": 3, "render_reps": 30}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in servers]
    if unknown:
        p.error(f"--only: unknown server {unknown[0]!r}; choose from {', '.join(servers)}")
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line: the common flags and those of the peers."""
    p = common_parser(SERVERS, __doc__)
    p.add_argument(
        "--carbon-retention",
        default=Carbon.retention,
        help="whisper retention; whisper preallocates it, so it sets carbon's "
        f"bytes on disk (default {Carbon.retention})",
    )
    p.add_argument(
        "--vm-cache",
        action="store_true",
        help="let VictoriaMetrics answer repeated queries from its response cache",
    )
    p.add_argument("--vigil-bin", type=Path, default=Vigil.binary, help="the vigil command")
    return finish_args(p, argv, SERVERS)


def run_interleaved(
    selected: list[type[Server]], payload: Payload, args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    """``args.runs`` runs of each server, interleaved (run 1 of each, then run 2, ...)."""
    runs: dict[str, list[dict[str, Any]]] = {cls.key: [] for cls in selected}
    for n in range(1, args.runs + 1):
        for cls in selected:
            print(f"run {n}/{args.runs} {cls.title} ...", file=sys.stderr, flush=True)
            try:
                fig = run_once(cls, payload, args)
                fig["points_expected"] = payload.points
                print(f"    {summary_line(fig)}", file=sys.stderr)
            except (ServerError, OSError) as exc:
                fig = {"error": str(exc)}
                print(f"    failed: {exc}", file=sys.stderr)
            runs[cls.key].append(fig)
    return runs


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; return 0 if at least one server ran."""
    args = parse_args(argv)
    Carbon.retention = args.carbon_retention
    VictoriaMetrics.nocache = not args.vm_cache
    Vigil.binary = args.vigil_bin
    selected: list[type[Server]] = []
    skipped: dict[str, str] = {}
    for key in args.only:
        why = SERVERS[key].missing()
        if why:
            skipped[key] = why
            print(f"skipping {SERVERS[key].title}: {why}", file=sys.stderr)
        else:
            selected.append(SERVERS[key])
    if not selected:
        print("no server to run", file=sys.stderr)
        return 1

    t = time.perf_counter()
    payload = payload_mod.generate(
        args.series, args.points, args.step, chunk_bytes=args.chunk_kb * 1024, seed=args.seed
    )
    print(
        f"payload: {payload.series:,} series x {payload.points_per_series} points = "
        f"{payload.points:,} points, {payload.size / 2**20:.1f} MiB in {len(payload.chunks)} "
        f"chunks, ts {payload.start}..{payload.end} step {payload.step}s "
        f"(generated in {time.perf_counter() - t:.1f} s)"
    )

    runs = run_interleaved(selected, payload, args)

    results = {key: medians(r) for key, r in runs.items()}
    print()
    print(table(results, {key: SERVERS[key].title for key in results}))
    print()
    print(
        "render queries: one series over a day; sumSeries over 100 series and a wildcard over "
        "1,000 series, over the payload's span"
    )
    for cls in selected:
        print(f"  {cls.title}: {cls.query_note}")
    if not args.vm_cache and VictoriaMetrics in selected:
        print("  VictoriaMetrics queries use nocache=1 (no response cache; --vm-cache to allow)")
    for key, r in runs.items():
        for i, fig in enumerate(r, 1):
            if "error" in fig:
                print(f"  {SERVERS[key].title} run {i} failed: {fig['error'].splitlines()[0]}")
    for key, why in skipped.items():
        print(f"  {SERVERS[key].title} skipped: {why}")
    rows = ratios(results) if all(results[k]["runs_ok"] for k in results) else []
    if rows:
        print("\nVigil's ratios to its peers (medians):")
        print(ratio_lines(rows))
    if args.json:
        doc = {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "payload": {
                "series": payload.series,
                "points": payload.points,
                "points_per_series": payload.points_per_series,
                "step": payload.step,
                "start": payload.start,
                "end": payload.end,
                "bytes": payload.size,
            },
            "servers": {
                k: {"title": SERVERS[k].title, "queries": SERVERS[k].query_note} for k in runs
            },
            "skipped": skipped,
            "runs": runs,
            "medians": results,
            "ratios": rows,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
