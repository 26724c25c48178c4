"""Cube benchmark: what the cube costs at ingest, how fast it answers, how fast errors fingerprint.

Run from the repository root (see bench/README.md for how to read the figures)::

    .venv/bin/python bench/cube.py --quick                          # ~2 minutes
    .venv/bin/python bench/cube.py --json bench/results/cube.json   # full, ~8 minutes

Phases, each against a fresh ``vigil serve`` on loopback free ports:

1. maintenance overhead (``--runs`` pairs of runs): the event-log payload of
   ``bench/logs_ingest.py`` (the same generator, the same pipelined senders,
   the same "acknowledged and stored" clock and server CPU-seconds) sent to
   a server with ``--cube true`` and to one with ``--cube false``, the two in
   alternating order; medians of each, and cubes-on ÷ cubes-off;
2. query latency: a day of ``end`` transactions covering every one of 1,000
   hosts x 50 transaction names in every hour (``--per-hour`` entries per
   host, name and hour), ingested over the event-log protocol; once stored
   (and the day's total count checked), ``GET /api/cube`` shapes are timed
   before and after ``POST /api/compact``: host x name over the whole day
   (yesterday, a calendar day in UTC: 50,000 rows, the goal's query), the
   same over ``-24h..now``, roll-ups,
   an hourly time series for one app, and one host at 10 s;
3. fingerprinting rate: ``bench/fingerprint_rate.py`` as a subprocess, if it
   exists.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import procstat
import pyarrow as pa
import pyarrow.compute as pc
from graphite_ingest import medians, percentile
from logpayload import Block, Fleet, _array_bytes, _join, _text
from logs_ingest import Payload, add_run_args, build, eventlog_payload, ingest, with_server
from servers import BENCH_DIR, ServerError, Vigil

GOAL_CPU_RATIO = 1.25  # server CPU per entry, cubes on / off
GOAL_RATE_RATIO = 0.8  # end-to-end entries/s, cubes on / off ("under 25% slower")
GOAL_QUERY_MS = 100  # p50 of host x name over a day
GOAL_FINGERPRINTS = 100_000  # error entries/s

#: 5 methods x 10 resources = the 50 transaction names every host serves.
NAMES = [
    f"{method} /{resource}"
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH")
    for resource in (
        "cart", "checkout", "products", "search", "orders",
        "account", "login", "reviews", "inventory", "payments",
    )
]  # fmt: skip
ERROR_SHARE = 0.02
ERROR_CODES = np.array([500, 503, 404, 1205])


def day_blocks(day_start: int, per_hour: int, slices_per_hour: int, seed: int) -> Iterator[Block]:
    """``end`` entries, oldest first: every host x name ``per_hour`` times in each of 24 hours.

    Each hour's entries get random timestamps within the hour and are cut,
    in time order, into ``slices_per_hour`` blocks. Durations are lognormal
    with a median that depends on the name (5 to 200 ms), ~2% of statuses
    are errors. Example line::

        {"ts":1763900012.345,"kind":"end","type":"URL","name":"GET /cart","host":"cart-ams1-c0-001",
         "cluster":"ams1-c0","dc":"ams1","app":"cart","id":"t42","status":0,"duration_ms":17.3}
    """
    rng = np.random.default_rng(seed)
    fleet = Fleet.build()
    hosts = fleet.fragments()
    heads = pa.array([f',"kind":"end","type":"URL","name":"{n}"' for n in NAMES])
    medians_ms = np.geomspace(5, 200, len(NAMES))
    combos = len(fleet.hosts) * len(NAMES)
    next_id = 0
    for hour in range(24):
        n = combos * per_hour
        combo = np.tile(np.arange(combos), per_hour)
        ts_ms = (day_start + hour * 3600) * 1000 + rng.integers(0, 3_600_000, n)
        order = np.argsort(ts_ms, kind="stable")
        combo, ts_ms = combo[order], ts_ms[order]
        host, name = combo // len(NAMES), combo % len(NAMES)
        duration = np.round(medians_ms[name] * rng.lognormal(0.0, 0.8, n), 1)
        status = np.where(rng.random(n) < ERROR_SHARE, rng.choice(ERROR_CODES, n), 0)
        line = _join(
            '{"ts":',
            _text(ts_ms // 1000),
            ".",
            pc.utf8_lpad(_text(ts_ms % 1000), 3, "0"),
            heads.take(pa.array(name)),
            hosts.take(pa.array(host)),
            ',"id":"t',
            _text(np.arange(next_id, next_id + n)),
            '","status":',
            _text(status),
            ',"duration_ms":',
            _text(duration),
            "}\n",
        )
        next_id += n
        for piece in np.array_split(np.arange(n), slices_per_hour):
            part = line.slice(int(piece[0]), len(piece))
            yield Block(_array_bytes(part), len(piece), float(ts_ms[piece[-1]]) / 1000)


# ---------------------------------------------------------------------------
# 1. maintenance overhead


CUBE_KINDS = (b'"kind":"end"', b'"kind":"atomic"', b'"kind":"event"')


def cube_entries(payload: Payload) -> int:
    """How many entries of ``payload`` the cube counts (``end``, ``atomic``, ``event``)."""
    return sum(c.count(k) for st in payload.streams for c in st.chunks for k in CUBE_KINDS)


def cube_count(server: Vigil, start: int, end: int) -> int:
    """The cube's ``count`` over ``[start, end)``."""
    status, body = server.client().get(
        "/api/cube", [("from", start), ("until", end), ("measures", "count")]
    )
    if status != 200:
        raise ServerError(f"/api/cube -> HTTP {status}: {body[:300]!r}")
    rows = json.loads(body)["rows"]
    return int(rows[0][0]) if rows else 0


def ingest_counted(
    server: Vigil, payload: Payload, args: argparse.Namespace, counted: int | None
) -> dict[str, Any]:
    """``ingest``; with ``counted``, the clock and CPU run on until the cube counts that many.

    So with cubes on, "end to end" is until the entries are stored *and*
    counted in the cube, which the store does one batch behind the log table.
    """
    fig = ingest(server, payload, args)
    fig["logs_e2e_entries_per_s"] = fig["e2e_entries_per_s"]
    if counted is not None:
        _wait_counted(server, payload, args, counted, fig)
    # Then the work the payload left behind (merges of every table), for both.
    answered = procstat.cpu_seconds(server.pid)
    idle, fig["idle_after_s"] = procstat.wait_idle(server.pid)
    fig["cpu_s_all_per_mentries"] = (fig["cpu_s"] + idle - answered) / fig["entries"] * 1e6
    return fig


def _wait_counted(
    server: Vigil, payload: Payload, args: argparse.Namespace, counted: int, fig: dict[str, Any]
) -> None:
    """Run the clock and CPU of ``fig`` on until the cube counts ``counted`` entries."""
    cpu0, t0 = procstat.cpu_seconds(server.pid), time.perf_counter()
    span = (int(payload.start - args.span - 3600), int(time.time() + 3600))
    deadline = time.monotonic() + args.timeout
    while (n := cube_count(server, *span)) < counted and time.monotonic() < deadline:
        server.check_alive()
        time.sleep(args.poll)
    fig["cube_counted"] = n
    fig["cube_lag_s"] = time.perf_counter() - t0
    fig["e2e_s"] += fig["cube_lag_s"]
    fig["cpu_s"] += procstat.cpu_seconds(server.pid) - cpu0
    fig["e2e_entries_per_s"] = fig["entries"] / fig["e2e_s"]
    fig["cpu_s_per_mentries"] = fig["cpu_s"] / fig["entries"] * 1e6


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Pairs of fresh-server runs of the logs benchmark's payload, cubes on and off."""
    payload = eventlog_payload(args.entries, args.span, args)
    counted = cube_entries(payload)
    out: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for i in range(args.runs):
        order = ("on", "off") if i % 2 == 0 else ("off", "on")
        for label in order:
            Vigil.extra_args = [
                *args.base_server_args,
                "--cube",
                "true" if label == "on" else "false",
            ]
            print(
                f"overhead run {i + 1}/{args.runs}, cubes {label} ...", file=sys.stderr, flush=True
            )
            try:
                fig = with_server(
                    args,
                    lambda s, n=counted if label == "on" else None: ingest_counted(
                        s, payload, args, n
                    ),
                )
                print(
                    f"    e2e {fig['e2e_entries_per_s']:,.0f} entries/s, acked "
                    f"{fig['ack_entries_per_s']:,.0f}/s, CPU {fig['cpu_s_per_mentries']:.2f} s/M "
                    f"({fig['cpu_s_all_per_mentries']:.2f} merges done), "
                    f"{fig['rows_stored']:,}/{fig['entries']:,} stored"
                    + (
                        f", cube counted all {fig['cube_lag_s']:.2f} s later"
                        if label == "on"
                        else ""
                    ),
                    file=sys.stderr,
                )
            except (ServerError, OSError) as exc:
                fig = {"error": str(exc)}
                print(f"    failed: {exc}", file=sys.stderr)
            out[label].append(fig)
    Vigil.extra_args = list(args.base_server_args)
    med = {label: medians(figs) for label, figs in out.items()}
    pairs = [
        (on, off)
        for on, off in zip(out["on"], out["off"], strict=True)
        if "error" not in on and "error" not in off
    ]
    ratios: dict[str, Any] = {}
    if "cpu_s_per_mentries" in med["on"] and "cpu_s_per_mentries" in med["off"]:
        for name, key in [
            ("cpu", "cpu_s_all_per_mentries"),
            ("cpu_answered", "cpu_s_per_mentries"),
            ("rate", "e2e_entries_per_s"),
        ]:
            ratios[f"{name}_ratio"] = med["on"][key] / med["off"][key]
            ratios[f"paired_{name}_ratios"] = [on[key] / off[key] for on, off in pairs]
    return {
        "entries": payload.entries,
        "payload_mib": payload.size / 2**20,
        "runs": out,
        "median": med,
        "ratios": ratios,
    }


# ---------------------------------------------------------------------------
# 2. query latency


def shapes(day_start: int, fleet: Fleet, per_hour: int) -> list[tuple[str, dict[str, str], int]]:
    """(label, /api/cube parameters, rows expected or -1 if not exact) of the timed queries."""
    day = {"from": str(day_start), "until": str(day_start + 86_400)}
    measures = {"measures": "count,errors,p50,p99"}
    app = fleet.apps[0]
    last_hour = {"from": str(day_start + 23 * 3600), "until": str(day_start + 86_400)}
    n_names = len(NAMES)
    n_clusters = len(set(fleet.clusters))
    n_dcs = len(set(fleet.dcs))
    return [
        (
            "host x name, whole day (1 d table)",
            {**measures, **day, "group_by": "host,name"},
            len(fleet.hosts) * n_names,
        ),
        (
            "host x name, from=-24h until=now",
            {**measures, "from": "-24h", "until": "now", "group_by": "host,name"},
            -1,
        ),
        ("name, whole day", {**measures, **day, "group_by": "name"}, n_names),
        (
            "dc > cluster x name, rollup=1, whole day",
            {**measures, **day, "group_by": "dc,cluster,name", "rollup": "1"},
            (n_clusters + n_dcs + 1) * n_names,
        ),
        (
            f"app={app} x name, step=1h, whole day",
            {**measures, **day, "group_by": "name", "app": app, "step": "1h"},
            24 * n_names,
        ),
        (
            "one host x name, step=10s, last hour",
            {**measures, **last_hour, "group_by": "name", "host": fleet.hosts[0], "step": "10s"},
            -1,
        ),
    ]


def time_shape(server: Vigil, params: dict[str, str], reps: int, budget: float) -> dict[str, Any]:
    """One untimed request (rows, bytes), then ``reps`` timed ones or as many as ``budget`` s allow.

    At least three timed requests are made whatever the budget.
    """
    http = server.client()
    items = sorted(params.items())
    t = time.perf_counter()
    status, body = http.get("/api/cube", items)
    first_ms = (time.perf_counter() - t) * 1000
    if status != 200:
        raise ServerError(f"/api/cube {params} -> HTTP {status}: {body[:300]!r}")
    rows = len(json.loads(body)["rows"])
    times: list[float] = []
    deadline = time.monotonic() + budget
    while len(times) < reps and (len(times) < 3 or time.monotonic() < deadline):
        t = time.perf_counter()
        http.get("/api/cube", items)
        times.append((time.perf_counter() - t) * 1000)
    return {
        "rows": rows,
        "response_kib": len(body) / 1024,
        "first_ms": first_ms,
        "samples": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": percentile(times, 99),
        "times_ms": times,
    }


def time_shapes(
    server: Vigil, specs: list[tuple[str, dict[str, str], int]], reps: int, budget: float
) -> dict[str, Any]:
    """Time every shape; warn when one returns other than the rows it must."""
    out = {}
    for label, params, expected in specs:
        fig = time_shape(server, params, reps, budget)
        if expected >= 0 and fig["rows"] != expected:
            print(f"    warning: {label}: {fig['rows']} rows, expected {expected}", file=sys.stderr)
        print(
            f"    {label}: {fig['rows']:,} rows, p50 {fig['p50_ms']:.1f} ms, "
            f"p99 {fig['p99_ms']:.1f} ms ({fig['samples']} samples)",
            file=sys.stderr,
            flush=True,
        )
        out[label] = fig
    return out


def cube_usage(server: Vigil) -> dict[str, Any]:
    """Rows, parts and bytes of the cube tables (from ``/api/status``)."""
    status, body = server.client().request("GET", "/api/status")
    if status != 200:
        raise ServerError(f"/api/status -> HTTP {status}: {body[:300]!r}")
    storage = json.loads(body).get("storage", {})
    return {k: v for k, v in storage.items() if k.startswith("cube_")}


def query_phase(server: Vigil, args: argparse.Namespace) -> dict[str, Any]:
    """Ingest a day of transactions, check the day's count, time the shapes before/after compaction."""
    fleet = Fleet.build()
    day_end = int(time.time()) // 86_400 * 86_400  # yesterday, a whole UTC day
    day_start = day_end - 86_400
    t = time.perf_counter()
    blocks = day_blocks(day_start, args.per_hour, args.slices_per_hour, args.seed)
    payload = build(blocks, args.connections, args.chunk_kb << 10)
    print(
        f"query payload: {payload.entries:,} end entries, {payload.size / 2**20:.0f} MiB, "
        f"{len(fleet.hosts):,} hosts x {len(NAMES)} names x 24 h x {args.per_hour} "
        f"(built in {time.perf_counter() - t:.1f} s); ingest ...",
        file=sys.stderr,
        flush=True,
    )
    fig: dict[str, Any] = {"day_start": day_start, "day_end": day_end}
    fig["ingest"] = ingest(server, payload, args)
    del payload
    print(
        f"    stored: {fig['ingest']['e2e_entries_per_s']:,.0f} entries/s end to end, "
        f"CPU {fig['ingest']['cpu_s_per_mentries']:.2f} s/M",
        file=sys.stderr,
        flush=True,
    )
    # The log rows are counted once stored; poll until the cube counts them all too.
    sent = fig["ingest"]["entries"]
    t = time.perf_counter()
    counts = []
    while True:
        status, body = server.client().get(
            "/api/cube", [("from", day_start), ("until", day_end), ("measures", "count")]
        )
        total = json.loads(body)["rows"][0][0] if status == 200 else None
        counts.append(total)
        if total == sent or time.perf_counter() - t > 30:
            break
        time.sleep(0.2)
    fig["cube_counts"] = counts[:5] + counts[-1:]
    fig["cube_complete_after_s"] = time.perf_counter() - t if total == sent else None
    if total != sent:
        print(f"    warning: the cube counts {total} entries, {sent:,} were sent", file=sys.stderr)
    elif len(counts) > 1:
        print(
            f"    the cube counted {counts[0]:,} of {sent:,} when the logs table held all;"
            f" all after {fig['cube_complete_after_s']:.2f} s",
            file=sys.stderr,
        )
    fig["usage_before_compact"] = cube_usage(server)
    specs = shapes(day_start, fleet, args.per_hour)
    print("    before compaction:", file=sys.stderr)
    fig["before_compact"] = time_shapes(server, specs[:1], args.query_reps, args.query_budget)
    t = time.perf_counter()
    status, body = server.client().request("POST", "/api/compact")
    if status != 200:
        raise ServerError(f"/api/compact -> HTTP {status}: {body[:300]!r}")
    fig["compact_s"] = time.perf_counter() - t
    fig["usage"] = cube_usage(server)
    print(f"    after compaction ({fig['compact_s']:.1f} s):", file=sys.stderr)
    fig["shapes"] = time_shapes(server, specs, args.query_reps, args.query_budget)
    return fig


# ---------------------------------------------------------------------------
# 3. fingerprinting


def fingerprinting(args: argparse.Namespace) -> dict[str, Any]:
    """Run bench/fingerprint_rate.py and read its table, or say it is missing."""
    script = BENCH_DIR / "fingerprint_rate.py"
    if not script.exists():
        return {"missing": f"{script.relative_to(BENCH_DIR.parent)} does not exist"}
    argv = [sys.executable, str(script)]
    if args.quick:
        argv += ["--entries", "50000", "--runs", "3"]
    print(f"fingerprinting: {' '.join(argv[1:])} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}", "argv": argv}
    cases = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(.+?)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s*$", line)
        if m:
            entries, errors, med, best = (int(g.replace(",", "")) for g in m.groups()[1:])
            cases[m.group(1).strip()] = {
                "entries": entries,
                "errors": errors,
                "median_per_s": med,
                "best_per_s": best,
            }
    return {"argv": argv[2:], "output": proc.stdout, "cases": cases}


# ---------------------------------------------------------------------------
# report


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _range(values: list[float], fmt: str) -> str:
    return f"({fmt.format(min(values))}–{fmt.format(max(values))})" if len(values) > 1 else ""


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The figures next to the goals."""
    lines = []
    if "overhead" in results:
        o = results["overhead"]
        lines.append(
            f"1. cube maintenance overhead: {o['entries']:,} event-log entries "
            f"({o['payload_mib']:.0f} MiB), medians of {args.runs} run(s) each, "
            f"{args.connections} connections"
        )
        lines.append(f"  {'':44} {'cubes on':>12} {'cubes off':>12} {'on ÷ off':>9}")
        labels = {
            "e2e_entries_per_s": ("entries/s end to end (stored + counted)", "{:,.0f}"),
            "logs_e2e_entries_per_s": ("entries/s until stored in the log table", "{:,.0f}"),
            "ack_entries_per_s": ("entries/s acknowledged", "{:,.0f}"),
            "cpu_s_all_per_mentries": ("server CPU-s per M entries, merges done", "{:.2f}"),
            "cpu_s_per_mentries": ("server CPU-s per M entries, at the answer", "{:.2f}"),
            "peak_rss_mb": ("peak RSS MB", "{:.0f}"),
        }
        for key, (label, fmt) in labels.items():
            on = o["median"].get("on", {}).get(key)
            off = o["median"].get("off", {}).get(key)
            if on is None or off is None:
                continue
            lines.append(
                f"  {label:<44} {fmt.format(on):>12} {fmt.format(off):>12} {on / off:>9.3f}"
            )
        r = o["ratios"]
        if r:
            lines.append(
                f"  CPU per entry (merges done) on ÷ off {r['cpu_ratio']:.3f} "
                f"(paired runs {_range(r['paired_cpu_ratios'], '{:.2f}')}): "
                f"goal <= {GOAL_CPU_RATIO}: {_met(r['cpu_ratio'] <= GOAL_CPU_RATIO)}"
            )
            lines.append(
                f"  entries/s on ÷ off {r['rate_ratio']:.3f} "
                f"(paired runs {_range(r['paired_rate_ratios'], '{:.2f}')}): "
                f"goal >= {GOAL_RATE_RATIO}: {_met(r['rate_ratio'] >= GOAL_RATE_RATIO)}"
            )
    if "query" in results:
        q = results["query"]
        if "error" in q:
            lines.append(f"2. cube query latency: failed: {q['error']}")
        else:
            ing = q["ingest"]
            lines.append(
                f"2. cube query latency: {ing['entries']:,} end entries over a day, "
                f"1,000 hosts x {len(NAMES)} names (ingested at {ing['e2e_entries_per_s']:,.0f}/s, "
                f"{ing['cpu_s_per_mentries']:.2f} CPU-s/M; compaction {q['compact_s']:.1f} s)"
            )
            rows = {t: u["rows"] for t, u in q["usage"].items()}
            lines.append(
                "  cube rows after compaction: "
                + ", ".join(
                    f"{t} {n:,}" for t, n in sorted(rows.items(), key=lambda x: int(x[0][5:]))
                )
            )
            lines.append(
                f"  {'query (measures count,errors,p50,p99)':<48} {'rows':>7} {'p50 ms':>8} {'p99 ms':>8}"
            )
            for label, f in q["before_compact"].items():
                lines.append(
                    f"  {label + ', before compaction':<48} {f['rows']:>7,} "
                    f"{f['p50_ms']:>8.1f} {f['p99_ms']:>8.1f}"
                )
            for i, (label, f) in enumerate(q["shapes"].items()):
                text = f"  {label:<48} {f['rows']:>7,} {f['p50_ms']:>8.1f} {f['p99_ms']:>8.1f}"
                if i == 0:
                    text += f"   goal p50 < {GOAL_QUERY_MS}: {_met(f['p50_ms'] < GOAL_QUERY_MS)}"
                lines.append(text)
    if "fingerprint" in results:
        fp = results["fingerprint"]
        if "missing" in fp:
            lines.append(f"3. fingerprinting rate: missing ({fp['missing']})")
        elif "error" in fp:
            lines.append(f"3. fingerprinting rate: bench/fingerprint_rate.py failed: {fp['error']}")
        else:
            lines.append(
                f"3. fingerprinting rate ({' '.join(['bench/fingerprint_rate.py', *fp['argv']])}):"
            )
            for label, c in fp["cases"].items():
                text = (
                    f"  {label:<44} {c['median_per_s']:>12,} entries/s median"
                    f" ({c['errors']:,} of {c['entries']:,} entries are errors)"
                )
                if label.startswith("all errors, realistic"):
                    ok = c["median_per_s"] >= GOAL_FINGERPRINTS
                    text += f"   goal >= {GOAL_FINGERPRINTS:,}: {_met(ok)}"
                lines.append(text)
            if not fp["cases"]:
                lines.append("  (could not read its table:)\n" + fp["output"])
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; --quick fills in small sizes for flags left unset."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes, fewer runs (~2 minutes)")
    p.add_argument(
        "--only",
        default="overhead,query,fingerprint",
        help="phases to run, comma-separated from: overhead, query, fingerprint",
    )
    p.add_argument(
        "--entries", type=int, help="event-log entries per overhead run (2M; quick 500k)"
    )
    p.add_argument(
        "--runs", type=int, help="overhead runs with cubes on, and as many off (5; quick 2)"
    )
    p.add_argument("--per-hour", type=int, help="entries per host, name and hour (2; quick 1)")
    p.add_argument("--slices-per-hour", type=int, default=6, help="blocks per hour of the day")
    p.add_argument("--query-reps", type=int, help="timed requests per query shape (30; quick 10)")
    p.add_argument(
        "--query-budget", type=float, help="seconds per shape at most, >= 3 requests (30; quick 10)"
    )
    p.add_argument("--connections", type=int, default=4, help="event-log connections (4)")
    add_run_args(p, span_help="overhead")
    args = p.parse_args(argv)
    quick = {"entries": 500_000, "runs": 2, "per_hour": 1, "query_reps": 10, "query_budget": 10.0}
    full = {"entries": 2_000_000, "runs": 5, "per_hour": 2, "query_reps": 30, "query_budget": 30.0}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    args.base_server_args = list(itertools.chain.from_iterable(a.split() for a in args.server_arg))
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the phases and print the figures next to the goals."""
    args = parse_args(argv)
    Vigil.binary = args.vigil_bin
    Vigil.extra_args = list(args.base_server_args)
    if why := Vigil.missing():
        print(why, file=sys.stderr)
        return 1
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH_DIR
    ).stdout.strip()
    results: dict[str, Any] = {}
    started = time.perf_counter()
    if "overhead" in args.only:
        results["overhead"] = overhead(args)
    if "query" in args.only:
        try:
            results["query"] = with_server(args, lambda s: query_phase(s, args))
        except (ServerError, OSError) as exc:
            results["query"] = {"error": str(exc)}
            print(f"    failed: {exc}", file=sys.stderr)
    if "fingerprint" in args.only:
        results["fingerprint"] = fingerprinting(args)
    print()
    print(report(results, args))
    print(
        f"\n(2-core shared machine: wall-clock figures are noisy, CPU-s per entry less so; "
        f"{time.strftime('%Y-%m-%d')}, commit {commit}, {time.perf_counter() - started:.0f} s)"
    )
    if args.json:
        doc = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "commit": commit,
            "config": {
                k: (str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, set) else v)
                for k, v in vars(args).items()
            },
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
