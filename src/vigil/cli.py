"""The ``vigil`` command line: serve, event, logs, status, compact, config-docs."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop

from vigil import __version__, settings
from vigil.alert import client as alert_client
from vigil.roles import ROLES, RoleError
from vigil.store.retention import RetentionError


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run a Vigil node (all roles by default) on the embedded engine",
        description="Run a Vigil node. Every option is also a VIGIL_* environment variable"
        " and a key of the TOML config files; later wins: files (in the order given) <"
        " environment < flags.",
    )
    p.add_argument(
        "--config", type=Path, action="append", default=[], metavar="FILE",
        help="TOML config file (repeatable, later files win: --config prod.toml --config"
        " node7.toml; see docs/config.md)",
    )  # fmt: skip
    p.add_argument(
        "--role", action="append", dest="roles_list", metavar="ROLE",
        help=f"role to run (repeatable, or comma-separated): {', '.join(ROLES)}; default all"
        " (docs/cluster.md)",
    )  # fmt: skip
    for option in settings.options():
        if option.name == "roles":
            continue
        p.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            metavar=option.type.__name__.upper(),
            help=f"{option.help} (default: {option.default or 'empty'}; {option.env})",
        )


def _server_url(args: argparse.Namespace) -> str:
    """The HTTP address of the running node: --url, else the data dir's ports.json."""
    if args.url:
        return str(args.url).rstrip("/")
    ports_file = Path(args.data_dir) / "ports.json"
    try:
        port = json.loads(ports_file.read_text())["http"]
    except (OSError, ValueError, KeyError):
        raise SystemExit(
            f"vigil: no running server found ({ports_file} missing); start `vigil serve`"
            " or pass --url http://HOST:PORT"
        ) from None
    return f"http://127.0.0.1:{port}"


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="HTTP address of the Vigil node, e.g. http://127.0.0.1:8080")
    p.add_argument(
        "--data-dir", default="vigil-data", help="data dir whose ports.json names the server"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="vigil", description="Vigil: metrics, events and alerts, Graphite-compatible."
    )
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    ev = sub.add_parser(
        "event", help="mark an event (a deploy, an incident) on the timeline",
        description="Send an event to a running node; graphs show it with events() and"
        " drawAsInfinite().",
    )  # fmt: skip
    ev.add_argument("kind", nargs="?", help="shorthand for the first tag, e.g. deploy")
    ev.add_argument("--what", required=True, help='what happened, e.g. "deploy web 1.4.2"')
    ev.add_argument("--tags", default="", help='space-separated tags, e.g. "deploy web"')
    ev.add_argument("--data", default="", help="free text details")
    ev.add_argument("--when", type=float, help="epoch seconds (default: now)")
    _client_args(ev)
    st = sub.add_parser("status", help="show a running node's ports, queues and drops")
    _client_args(st)
    co = sub.add_parser(
        "compact",
        help="merge a running node's stored parts now and print the disk use per table",
    )
    _client_args(co)
    _logs_parser(sub)
    cu = sub.add_parser(
        "cube", help="query the cube of transactions and events (counts, errors, quantiles)",
        description="Measures per group over a time range; see docs/cubes.md.",
    )  # fmt: skip
    cu.add_argument("--from", dest="from_", metavar="FROM", default="-1h", help="start (-1h)")
    cu.add_argument("--until", default="now", help="end (default: now)")
    cu.add_argument("--step", help="bucket per row, e.g. 1m (default: the whole range)")
    cu.add_argument("--measures", default="count,errors,p50,p99", help="comma-separated")
    cu.add_argument("--group-by", default="app,name", help="comma-separated dimensions")
    cu.add_argument("--rollup", action="store_true", help="add totals along dc > cluster > host")
    cu.add_argument(
        "--where", action="append", default=[], metavar="DIM=VALUE", help="filter (repeatable)"
    )
    cu.add_argument("--json", action="store_true", help="print the API's JSON")
    _client_args(cu)
    _rules_parser(sub)
    _errors_parser(sub)
    alert_client.add_parser(sub, _client_args)
    sub.add_parser("config-docs", help="print the configuration reference (docs/config.md)")
    return parser


def _rules_parser(sub: Any) -> None:
    ru = sub.add_parser("rules", help="list, add or backfill log extraction rules (docs/rules.md)")
    rsub = ru.add_subparsers(dest="rules_command", required=True)
    _client_args(rsub.add_parser("list", help="rules with their points and errors"))
    add = rsub.add_parser("add", help="add rules from a TOML ([[rule]]) or JSON file")
    add.add_argument("file", help="rules file")
    _client_args(add)
    bf = rsub.add_parser("backfill", help="apply a rule to stored log lines, with progress")
    bf.add_argument("name", help="rule name")
    bf.add_argument("--from", dest="from_", metavar="FROM", default="-1d", help="start (-1d)")
    bf.add_argument("--until", default="now", help="end (default: now)")
    bf.add_argument("--no-progress", action="store_true", help="no progress bar")
    _client_args(bf)


def _errors_parser(sub: Any) -> None:
    er = sub.add_parser("errors", help="error groups: list, show, merge, split")
    esub = er.add_subparsers(dest="errors_command", required=True)
    ls = esub.add_parser("list", help="groups with occurrences in a time range, most first")
    ls.add_argument("--from", dest="from_", metavar="FROM", default="-24h", help="start (-24h)")
    ls.add_argument("--until", default="now", help="end (default: now)")
    ls.add_argument("--app", help="only this application")
    ls.add_argument("--host", help="only this host")
    _client_args(ls)
    show = esub.add_parser("show", help="one group with its latest sample and stack")
    show.add_argument("id")
    show.add_argument("--from", dest="from_", metavar="FROM", default="-7d", help="start (-7d)")
    _client_args(show)
    merge = esub.add_parser("merge", help="merge groups into the first (sticks)")
    merge.add_argument("ids", nargs="+")
    _client_args(merge)
    split = esub.add_parser("split", help="take a fingerprint out of a group")
    split.add_argument("id")
    split.add_argument("fingerprint")
    _client_args(split)


def _logs_parser(sub: Any) -> None:
    from vigil.ship import importer

    logs = sub.add_parser("logs", help="search or import log entries")
    logs_sub = logs.add_subparsers(dest="logs_command", required=True)
    se = logs_sub.add_parser(
        "search", help="search a running node's logs, newest first",
        description="Search log entries. A search needs a time range, and one that would read"
        " too much fails, naming a filter to add.",
    )  # fmt: skip
    se.add_argument("q", nargs="?", default="", help='words and "quoted phrases" in the message')
    se.add_argument(
        "--from", dest="from_", metavar="FROM", default="-1h", help="start: -1h, epoch, 20261123"
    )
    se.add_argument("--until", default="now", help="end (default: now)")
    for field in ("host", "cluster", "dc", "app", "kind", "type", "name", "status"):
        se.add_argument(f"--{field}", action="append", help=f"only entries with this {field}")
    se.add_argument("--limit", type=int, default=100, help="entries per page (<= 1000)")
    se.add_argument("--context", type=int, default=0, help="entries of the same source around")
    se.add_argument("--cursor", help="continue after the page that printed this cursor")
    se.add_argument("--json", action="store_true", help="print the API's JSON")
    _client_args(se)
    im = logs_sub.add_parser(
        "import", help="load log files (plain or .gz) into a running node, with progress",
    )  # fmt: skip
    importer.add_arguments(im)


def _serve(args: argparse.Namespace) -> int:
    from vigil.node import Node

    overrides = {o.name: getattr(args, o.name, None) for o in settings.options()}
    if args.roles_list:
        overrides["roles"] = ",".join(args.roles_list)
    try:
        conf = settings.load(args.config, overrides=overrides)
        node = Node(conf)
    except (settings.SettingsError, RoleError) as e:
        print(f"vigil: {e}", file=sys.stderr)
        return 2
    # uvloop: the receive path costs about half of asyncio's default loop.
    return uvloop.run(_run_node(node))


async def _run_node(node: Any) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, node.reload_rules)
    try:
        await node.start()
    except (RetentionError, OSError) as e:
        print(f"vigil: cannot start: {e}", file=sys.stderr)
        return 2
    await stop.wait()
    logging.getLogger("vigil").info("stopping: storing what was received")
    await node.stop()
    return 0


def _event(args: argparse.Namespace) -> int:
    tags = args.tags.split()
    if args.kind and args.kind not in tags:
        tags.insert(0, args.kind)
    body = {"what": args.what, "tags": tags, "data": args.data, "when": args.when or time.time()}
    r = httpx.post(f"{_server_url(args)}/events/", json=body, timeout=10)
    if r.status_code >= 400:
        print(f"vigil: server refused the event: {r.text}", file=sys.stderr)
        return 1
    print(json.dumps(r.json()))
    return 0


def _status(args: argparse.Namespace) -> int:
    r = httpx.get(f"{_server_url(args)}/api/status", timeout=10)
    r.raise_for_status()
    print(json.dumps(r.json(), indent=2))
    return 0


def _compact(args: argparse.Namespace) -> int:
    r = httpx.post(f"{_server_url(args)}/api/compact", timeout=3600)
    r.raise_for_status()
    print(json.dumps(r.json(), indent=2))
    return 0


def _logs(args: argparse.Namespace) -> int:
    if args.logs_command == "import":
        from vigil.ship import importer

        return importer.run(args)
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("from", args.from_), ("until", args.until), ("q", args.q),
        ("limit", args.limit), ("context", args.context),
    ]  # fmt: skip
    for field in ("host", "cluster", "dc", "app", "kind", "type", "name", "status"):
        params += [(field, v) for v in getattr(args, field) or ()]
    if args.cursor:
        params.append(("cursor", args.cursor))
    doc = _get_json(args, "/api/logs/search", params)
    if doc is None:
        return 1
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    for entry in doc["entries"]:
        for before in entry.get("context", {}).get("before", []):
            print("  " + _entry_line(before))
        print(_entry_line(entry))
        for after in entry.get("context", {}).get("after", []):
            print("  " + _entry_line(after))
    if doc["next_cursor"]:
        print(f"-- more: --cursor {doc['next_cursor']}", file=sys.stderr)
    return 0


def _get_json(
    args: argparse.Namespace, path: str, params: list[tuple[str, str | int | float | bool | None]]
) -> Any:
    """The node's JSON answer to ``GET path``, or None after printing its error."""
    r = httpx.get(f"{_server_url(args)}{path}", params=params, timeout=120)
    doc = r.json()
    if r.status_code >= 400:
        print(f"vigil: {doc.get('error', r.text)}", file=sys.stderr)
        return None
    return doc


def _rules(args: argparse.Namespace) -> int:
    from vigil.cube import backfill

    url = _server_url(args)
    if args.rules_command == "list":
        return backfill.cli_list(url)
    if args.rules_command == "add":
        return backfill.cli_add(url, args.file)
    return backfill.cli_backfill(url, args.name, args.from_, args.until, not args.no_progress)


def _errors(args: argparse.Namespace) -> int:
    url = _server_url(args) + "/api/errors"
    if args.errors_command == "list":
        params = {"from": args.from_, "until": args.until}
        params.update({k: v for k in ("app", "host") if (v := getattr(args, k))})
        r = httpx.get(url, params=params, timeout=60)
    elif args.errors_command == "show":
        r = httpx.get(f"{url}/{args.id}", params={"from": args.from_}, timeout=60)
    elif args.errors_command == "merge":
        r = httpx.post(f"{url}/merge", json={"ids": args.ids}, timeout=60)
    else:
        r = httpx.post(f"{url}/{args.id}/split", json={"fingerprint": args.fingerprint}, timeout=60)
    doc = r.json()
    if r.status_code >= 400:
        print(f"vigil: {doc.get('error', r.text)}", file=sys.stderr)
        return 1
    if args.errors_command != "list":
        print(json.dumps(doc, indent=1))
        return 0
    for g in doc["groups"]:
        seen = time.strftime("%Y-%m-%d %H:%M", time.gmtime(g["last_seen"]))
        hosts = ",".join(g["hosts"][:3]) + ("..." if len(g["hosts"]) > 3 else "")
        print(f"{g['id']}  {g['count']:>7}  last {seen}  {hosts:<30}  {g['title']}")
    return 0


def _alerts(args: argparse.Namespace) -> int:
    return alert_client.run(args, _server_url(args))


def _cube(args: argparse.Namespace) -> int:
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("from", args.from_), ("until", args.until), ("measures", args.measures),
        ("group_by", args.group_by), ("rollup", "1" if args.rollup else "0"),
    ]  # fmt: skip
    if args.step:
        params.append(("step", args.step))
    for where in args.where:
        dim, sep, value = where.partition("=")
        if not sep:
            print(f"vigil: --where {where!r}: expected DIM=VALUE", file=sys.stderr)
            return 2
        params.append((dim, value))
    doc = _get_json(args, "/api/cube", params)
    if doc is None:
        return 1
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    cells = [doc["columns"]] + [[_cell(v) for v in row] for row in doc["rows"]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(doc["columns"]))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _entry_line(e: dict[str, Any]) -> str:
    """One entry as a log line: time, source, kind, what, message (continuations indented)."""
    when = (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e["ts"]))
        + f".{int(e['ts'] * 1000) % 1000:03d}Z"
    )
    what = " ".join(str(x) for x in (e["type"], e["name"]) if x)
    status = f" status={e['status']}" if e["status"] else ""
    duration = f" {e['duration_ms']:g}ms" if e["duration_ms"] else ""
    message = e["message"].replace("\n", "\n    ")
    head = " ".join(x for x in (when, e["host"], e["app"], e["kind"], what) if x)
    return f"{head}{status}{duration} {message}".rstrip()


def _time_values_attached(argv: list[str]) -> list[str]:
    """``--from -1h`` as ``--from=-1h``: argparse takes a value starting with ``-`` for an option.

    Graphite's relative times (``-1h``, ``-7d``) are what people type after
    ``--from`` and ``--until``.
    """
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in ("--from", "--until") and arg.startswith("-"):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vigil`` command."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    args = build_parser().parse_args(_time_values_attached(sys.argv[1:] if argv is None else argv))
    if args.command == "serve":
        return _serve(args)
    if args.command == "config-docs":
        sys.stdout.write(settings.reference_doc())
        return 0
    commands = {
        "event": _event,
        "status": _status,
        "compact": _compact,
        "logs": _logs,
        "cube": _cube,
        "rules": _rules,
        "errors": _errors,
        "alerts": _alerts,
    }
    try:
        return commands[args.command](args)
    except httpx.HTTPError as e:
        print(f"vigil: cannot reach the server: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
