"""Alert evaluation benchmark: thousands of rules every 10 s on the embedded engine.

Starts ``vigil serve`` with a rules directory of ``--rules`` rules (nine in
ten on one series each, one in ten on ``averageSeries`` of a ten-host
group), feeds every series every 10 s (a tenth of them each second) over Graphite
plaintext, and
measures:

- the time of each evaluation round (the node's ``vigil_alert_last_round_seconds``),
- the node's CPU with the rules against the same feed without rules
  (a second run), as CPU-seconds per round,
- alert latency: a host's value jumps over the critical threshold at a
  random moment; the time from sending that point to the webhook receiving
  the notice, for ``--spikes`` hosts.

Goals (issue 5): a round well under its interval; latency p99 under two
intervals. The machine is shared: figures are medians over rounds and spikes.
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procstat import cpu_seconds
from bench.servers import Vigil

GROUP = 10
# Seconds between a series' points: the storage's finest resolution.
STEP = 10


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver noting when each alert target's first notice arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Hook)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Hook(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        now = time.time()
        with self.server.lock:
            for alert in body["alerts"]:
                if body["reason"] == "problem":
                    self.server.arrivals.setdefault(alert["target"], now)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def write_rules(directory: Path, count: int, interval: int, url: str) -> None:
    lines = []
    for i in range(count):
        if i % GROUP == 0:
            target = f"averageSeries(bench.g{i // GROUP}.*.load)"
        else:
            target = f"bench.g{i // GROUP}.h{i}.load"
        lines.append(
            f'[[rule]]\nname = "r{i}"\ntarget = "{target}"\nwarning = 80\ncritical = 90\n'
            f'interval = "{interval}s"\nwindow = "2m"\nnotify = ["hook"]\n'
        )
    lines.append(f'[notifier.hook]\ntype = "webhook"\nurl = "{url}"\n')
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.toml").write_text("\n".join(lines))


def series_paths(count: int) -> list[str]:
    return [f"bench.g{i // GROUP}.h{i}.load" for i in range(count)]


def metric(server: Vigil, name: str) -> float:
    status, body = server.client().request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def feed_and_measure(
    server: Vigil, paths: list[str], seconds: float, spikes: list[int], warmup: float
) -> dict[str, Any]:
    """Send every series each second; spike the chosen hosts at random moments."""
    rng = random.Random(7)
    start = time.time() + warmup
    spike_at = {i: start + rng.uniform(0, seconds * 0.7) for i in spikes}
    sent_at: dict[int, float] = {}
    rounds: dict[int, float] = {}
    cpu0 = None
    sock = socket.create_connection(("127.0.0.1", server.graphite_port))
    try:
        while time.time() < start + seconds:
            tick = time.time()
            if cpu0 is None and tick >= start:
                cpu0 = (
                    cpu_seconds(server.pid),
                    tick,
                    metric(server, "vigil_alert_round_seconds_count"),
                )
            now = int(tick)
            body = []
            for i, path in enumerate(paths):
                if i % STEP != now % STEP:
                    continue  # each series every STEP seconds, like a collector
                value = rng.uniform(0, 50)
                if i in spike_at and tick >= spike_at[i]:
                    value = 99.0
                    sent_at.setdefault(i, tick)
                body.append(f"{path} {value:.2f} {now}\n")
            sock.sendall("".join(body).encode())
            count = int(metric(server, "vigil_alert_round_seconds_count"))
            if tick >= start and count not in rounds:
                rounds[count] = metric(server, "vigil_alert_last_round_seconds")
            time.sleep(max(0.0, 1.0 - (time.time() - tick)))
    finally:
        sock.close()
    assert cpu0 is not None
    cpu = cpu_seconds(server.pid) - cpu0[0]
    elapsed = time.time() - cpu0[1]
    done_rounds = metric(server, "vigil_alert_round_seconds_count") - cpu0[2]
    return {"cpu_seconds": cpu, "elapsed": elapsed, "rounds": done_rounds,
            "round_seconds": list(rounds.values())[1:], "sent_at": sent_at}  # fmt: skip


def run(args: argparse.Namespace, with_rules: bool) -> dict[str, Any]:
    paths = series_paths(args.rules)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="vigil-alert-bench-") as tmp:
        rules_dir = Path(tmp) / "rules"
        if with_rules:
            write_rules(rules_dir, args.rules, args.interval, receiver.url)
        Vigil.extra_args = ["--rules-dir", str(rules_dir)]
        server = Vigil(Path(tmp) / "node")
        server.start(120)
        try:
            rng = random.Random(3)
            spikes = (
                rng.sample([i for i in range(args.rules) if i % GROUP], args.spikes)
                if with_rules
                else []
            )
            result = feed_and_measure(server, paths, args.seconds, spikes, args.warmup)
            if with_rules:
                deadline = time.time() + 3 * args.interval
                while time.time() < deadline and len(receiver.arrivals) < len(spikes):
                    time.sleep(0.2)
        finally:
            server.stop(60)
            receiver.shutdown()
    latencies = [
        receiver.arrivals[paths[i]] - sent for i, sent in result.pop("sent_at").items()
        if paths[i] in receiver.arrivals
    ]  # fmt: skip
    result["latencies"] = sorted(latencies)
    result["missed"] = len(spikes) - len(latencies) if with_rules else 0
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    """The figures of one pair of runs: feed only, then feed with rules."""
    base = run(args, with_rules=False)
    ruled = run(args, with_rules=True)
    rounds = ruled["round_seconds"]
    share, base_share = (r["cpu_seconds"] / r["elapsed"] for r in (ruled, base))
    lat = ruled["latencies"]
    return {
        "rounds": len(rounds),
        "round_p50": statistics.median(rounds) if rounds else float("nan"),
        "round_max": max(rounds) if rounds else float("nan"),
        "cpu_share_with_rules": share, "cpu_share_feed_only": base_share,
        "cpu_seconds_per_round": (share - base_share) * args.interval,
        "latency_p50": percentile(lat, 0.5), "latency_p99": percentile(lat, 0.99),
        "latency_max": max(lat) if lat else float("nan"), "notified": len(lat),
    }  # fmt: skip


def show(label: str, f: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"{label}: round p50 {f['round_p50']:.2f} s, max {f['round_max']:.2f} s"
          f" | CPU {f['cpu_share_with_rules']:.0%} of a core ({f['cpu_share_feed_only']:.0%} feed"
          f" only), {f['cpu_seconds_per_round']:.2f} CPU-s per round"
          f" | latency p50 {f['latency_p50']:.1f} s, p99 {f['latency_p99']:.1f} s,"
          f" max {f['latency_max']:.1f} s ({f['notified']}/{args.spikes} notified)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", type=int, default=10_000)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--seconds", type=float, default=120, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=30)
    p.add_argument("--spikes", type=int, default=30)
    p.add_argument("--runs", type=int, default=3, help="pairs of runs; medians are reported")
    p.add_argument("--quick", action="store_true", help="1,000 rules, 40 s, one run")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.rules, args.seconds, args.warmup, args.spikes, args.runs = 1000, 40, 15, 8, 1
    print(f"alert rules: {args.rules:,} every {args.interval} s; goals: a round well under"
          f" {args.interval} s, latency p99 under {2 * args.interval} s")  # fmt: skip
    runs = []
    for i in range(args.runs):
        runs.append(one_run(args))
        show(f"run {i + 1}", runs[-1], args)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    show(f"median of {len(runs)}", median, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "median": median}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
