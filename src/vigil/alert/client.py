"""``vigil alerts``: the alert commands of the CLI, talking to a running node over HTTP."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx


def add_parser(sub: Any, client_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``alerts`` command and its subcommands."""
    al = sub.add_parser("alerts", help="alert states, rules, checks, history, report, silences")
    asub = al.add_subparsers(dest="alerts_command", required=True)
    parsers = {
        "list": asub.add_parser("list", help="current state of every alert, worst first"),
        "rules": asub.add_parser("rules", help="the loaded alert rules"),
        "reload": asub.add_parser("reload", help="read the rules directory again"),
    }
    check = parsers["check"] = asub.add_parser(
        "check", help="evaluate one rule now and print what it would do (nothing is sent)"
    )
    check.add_argument("rule")
    history = parsers["history"] = asub.add_parser("history", help="state changes, notices, heals")
    history.add_argument("--from", dest="from_", metavar="FROM", default="-24h")
    history.add_argument("--until", default="now")
    history.add_argument("--rule")
    rep = parsers["report"] = asub.add_parser(
        "report", help="interruption report: per rule and week, pages, heals, durations"
    )
    rep.add_argument("--since", default="30d", help="how far back (30d)")
    silence = parsers["silence"] = asub.add_parser("silence", help="mute matching alerts")
    silence.add_argument(
        "--match", action="append", required=True, metavar="LABEL=GLOB",
        help="label matcher, e.g. rule=api-load or target='servers.web*'; repeatable",
    )  # fmt: skip
    silence.add_argument("--for", dest="duration", default="1h", help="how long (1h)")
    silence.add_argument("--reason", required=True)
    unsilence = parsers["unsilence"] = asub.add_parser("unsilence", help="end a silence now")
    unsilence.add_argument("id")
    ack = parsers["ack"] = asub.add_parser("ack", help="acknowledge a problem (no repeats)")
    ack.add_argument("rule")
    ack.add_argument("target")
    ack.add_argument("--reason", required=True)
    for p in parsers.values():
        p.add_argument("--json", action="store_true", help="print the JSON answer")
        client_args(p)


def run(args: argparse.Namespace, url: str) -> int:
    """Run one ``vigil alerts`` subcommand against the node at ``url``."""
    command = args.alerts_command
    api = f"{url}/api/alerts"
    if command == "list":
        r = httpx.get(api, timeout=30)
    elif command == "rules":
        r = httpx.get(f"{api}/rules", timeout=30)
    elif command == "reload":
        r = httpx.post(f"{api}/reload", timeout=30)
    elif command == "check":
        r = httpx.get(f"{api}/check", params={"rule": args.rule}, timeout=120)
    elif command == "history":
        params = {
            "from": args.from_,
            "until": args.until,
            **({"rule": args.rule} if args.rule else {}),
        }
        r = httpx.get(f"{api}/history", params=params, timeout=60)
    elif command == "report":
        r = httpx.get(f"{api}/report", params={"since": args.since}, timeout=120)
    elif command == "silence":
        matchers = dict(m.partition("=")[::2] for m in args.match)
        body = {"matchers": matchers, "duration": args.duration, "reason": args.reason}
        r = httpx.post(f"{api}/silences", json=body, timeout=30)
    elif command == "unsilence":
        r = httpx.delete(f"{api}/silences/{args.id}", timeout=30)
    else:
        body = {"rule": args.rule, "target": args.target, "reason": args.reason}
        r = httpx.post(f"{api}/ack", json=body, timeout=30)
    doc = r.json()
    if r.status_code >= 400:
        print(f"vigil: {doc.get('error', r.text)}", file=sys.stderr)
        return 1
    printer = _PRINTERS.get(command)
    if args.json or printer is None:
        print(json.dumps(doc, indent=1))
    else:
        printer(doc)
    return 0


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _print_list(doc: dict[str, Any]) -> None:
    for a in doc["alerts"]:
        flags = "".join(
            f" [{name}]" for name in ("healing", "silenced", "acknowledged", "flapping") if a[name]
        ) + ("" if a["hard"] else " [soft]")
        print(f"{a['state']:<8} {a['rule']:<20} {a['target']:<40} since {_when(a['since'])}"
              f"{flags}  {a['message']}")  # fmt: skip


def _print_check(doc: dict[str, Any]) -> None:
    if doc.get("error"):
        print(f"UNKNOWN  {doc['rule']}: {doc['error']}")
        return
    for c in doc["checks"]:
        would = "; ".join(c["would"]) or "no change"
        print(f"{c['state']:<8} {c['target']:<40} {c['message']}  -> {would}")
    if not doc["checks"]:
        print(f"{doc['rule']}: the target returned nothing")


def _print_history(doc: dict[str, Any]) -> None:
    for r in doc["history"]:
        print(f"{_when(r['ts'])}  {r['kind']:<12} {r['rule']:<20} {r['target']:<30}"
              f" {r['state']:<8} {r['message']}")  # fmt: skip


def _print_report(doc: dict[str, Any]) -> None:
    print(f"{'rule':<24} {'woke':>5} {'notices':>7} {'healed':>6} {'heals':>5}"
          f" {'incidents':>9} {'hours':>7}")  # fmt: skip
    for r in doc["rules"]:
        print(f"{r['rule']:<24} {r['woke']:>5} {r['notifications']:>7} {r['healed']:>6}"
              f" {r['heals']:>5} {r['incidents']:>9} {r['total_seconds'] / 3600:>7.1f}")  # fmt: skip
        for w in r["by_week"]:
            print(f"  {w['week']:<22} {w['woke']:>5} {'':>7} {w['healed']:>6} {'':>5}"
                  f" {w['incidents']:>9} {w['seconds'] / 3600:>7.1f}")  # fmt: skip


_PRINTERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "list": _print_list,
    "check": _print_check,
    "history": _print_history,
    "report": _print_report,
}
