"""Settings as data: one frozen dataclass per stage, one table for every source.

Each field carries its default and help text; the same table drives the TOML
config file (section = stage), the ``VIGIL_*`` environment variables, the
``vigil serve`` flags and ``docs/config.md``. Layers, later wins: defaults <
config files (an environment's, then a node's: ``--config prod.toml --config
node7.toml``) < environment < command line, so a laptop and production differ
in values only.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_type_hints


def setting(default: Any, help: str) -> Any:
    """A settings field with its help text (shown by --help and docs/config.md)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class NodeSettings:
    """Where this node keeps its data and listens."""

    data_dir: Path = setting(
        Path("vigil-data"), "Directory for stored data, ports.json and spools."
    )
    bind: str = setting("127.0.0.1", "Address every listener binds to.")
    http_port: int = setting(8080, "HTTP port (render API, events, /metrics); 0 picks a free port.")
    node_name: str = setting(
        "", "Name of this node in self-metrics (vigil.<node>.*); default: host name."
    )
    roles: str = setting(
        "all",
        "Comma-separated roles to run: all, ingest, store, cube, alert, query, web"
        " (docs/cluster.md).",
    )
    selfmetrics_interval: float = setting(
        10.0, "Seconds between self-metric points written to storage."
    )
    dashboards_dir: str = setting(
        "",
        "Directory of dashboard files (one JSON file each; docs/ui.md); empty: DATA_DIR/dashboards.",
    )

    @property
    def node(self) -> str:
        """The node name, defaulting to the host's short name."""
        return self.node_name or socket.gethostname().split(".")[0]


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    """The protocol listeners."""

    graphite_port: int = setting(2003, "Graphite plaintext port, TCP and UDP; 0 picks a free port.")
    statsd_port: int = setting(8125, "StatsD UDP port; 0 picks a free port.")
    max_line_bytes: int = setting(8192, "Longest accepted input line; longer lines are rejected.")
    chunk_bytes: int = setting(4 << 20, "Bytes of plaintext parsed as one columnar batch.")
    chunk_seconds: float = setting(0.2, "Longest a partial chunk waits before it is parsed.")
    future_seconds: int = setting(86400, "Points further in the future than this are rejected.")
    statsd_flush_interval: float = setting(10.0, "Seconds between StatsD flushes.")
    statsd_percentiles: str = setting("50,90,99", "Timer percentiles written at each StatsD flush.")
    statsd_max_keys: int = setting(
        100_000, "Distinct StatsD keys kept per flush; more are dropped."
    )
    reject_log_per_minute: int = setting(
        10, "Rejected lines logged per minute per reason (all are counted)."
    )
    eventlog_port: int = setting(
        2514, "Event-log protocol TCP port (JSON lines with acks); 0 picks a free port."
    )
    syslog_port: int = setting(
        5514, "Syslog port, UDP and TCP (RFC 5424/3164); 0 picks a free port."
    )
    log_max_entry_bytes: int = setting(
        256 << 10, "Longest log entry; longer ones are rejected (syslog: cut to fit)."
    )
    log_future_seconds: int = setting(
        600, "Log entries further in the future are rejected (syslog: receive time used)."
    )
    log_past_seconds: int = setting(
        7 * 86400, "Log entries further in the past are rejected (syslog: receive time used)."
    )
    log_max_body_bytes: int = setting(64 << 20, "Largest POST /api/logs body.")


@dataclasses.dataclass(frozen=True)
class BusSettings:
    """The per-destination queues between ingest and the destinations."""

    store_queue_bytes: int = setting(256 << 20, "Memory buffer of the store destination, in bytes.")
    store_overflow: str = setting(
        "spill", "When the store buffer is full: block, drop_head, drop_tail or spill (to disk)."
    )
    store_spool_bytes: int = setting(
        4 << 30, "Disk spool cap of the store destination; beyond it batches are dropped."
    )
    tail_queue_bytes: int = setting(64 << 20, "Memory buffer of the live-tail destination.")
    tail_overflow: str = setting("drop_head", "When the tail buffer is full (see store_overflow).")
    forward_graphite: str = setting(
        "", "Relay points to this Graphite plaintext HOST:PORT (carbon or another Vigil)."
    )
    forward_eventlog: str = setting(
        "", "Relay log entries to this Vigil event-log HOST:PORT, released once acknowledged."
    )
    forward_queue_bytes: int = setting(64 << 20, "Memory buffer of the forward destination.")
    forward_overflow: str = setting(
        "spill", "When the forward buffer is full (see store_overflow)."
    )
    forward_spool_bytes: int = setting(1 << 30, "Disk spool cap of the forward destination.")
    cube_queue_bytes: int = setting(64 << 20, "Memory buffer of the cube destination.")
    cube_overflow: str = setting("spill", "When the cube buffer is full (see store_overflow).")
    cube_spool_bytes: int = setting(1 << 30, "Disk spool cap of the cube destination.")
    alert_queue_bytes: int = setting(
        64 << 20, "Memory buffer of the alert destination (heartbeats for alert rules)."
    )
    alert_overflow: str = setting(
        "drop_head", "When the alert buffer is full (see store_overflow)."
    )
    tail_subscriber_entries: int = setting(
        10_000, "Entries buffered per live-tail subscriber; beyond it they are skipped."
    )
    bus_nats: str = setting(
        "",
        "NATS JetStream URL(s), comma-separated (nats://127.0.0.1:4222): every destination's"
        " queue becomes a JetStream stream there (docs/bus.md); empty: in-process.",
    )
    bus_nats_replicas: int = setting(
        1, "Replicas of each JetStream stream of the bus (3 on a 3-node NATS cluster)."
    )
    bus_nats_user: str = setting(
        "", "NATS user, for servers with an authorization block; empty: none (or the URL's)."
    )
    bus_nats_password: str = setting("", "Password of bus_nats_user.")
    bus_nats_ca_file: str = setting(
        "", "CA certificates (PEM) to verify NATS servers that require TLS; empty: the system's."
    )
    bus_nats_cert_file: str = setting(
        "", "Client certificate (PEM) for NATS servers that verify clients (tls { verify: true })."
    )
    bus_nats_key_file: str = setting("", "Private key (PEM) of bus_nats_cert_file.")


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    """The storage engine and the resolutions it keeps."""

    storage_schemas: str = setting(
        "", "Carbon storage-schemas.conf file (pattern -> retentions); empty: built-in default."
    )
    storage_aggregation: str = setting(
        "", "Carbon storage-aggregation.conf file (pattern -> method); empty: built-in default."
    )
    batch_rows: int = setting(250_000, "Rows per insert into the engine.")
    batch_seconds: float = setting(1.0, "Longest a partial insert batch waits.")
    retention_interval: float = setting(600.0, "Seconds between retention sweeps.")
    log_retention_days: int = setting(30, "Days of log entries kept.")
    cube: bool = setting(
        True, "Keep the cube of transactions and events as entries are stored (docs/cubes.md)."
    )
    extract_rules_file: str = setting(
        "", "TOML file of extraction rules turning log lines into metrics (docs/rules.md)."
    )
    clickhouse: str = setting(
        "", "ClickHouse server HOST[:PORT] (native protocol) to store in; empty: embedded chDB."
    )
    clickhouse_user: str = setting("default", "ClickHouse user.")
    clickhouse_password: str = setting("", "ClickHouse password.")
    clickhouse_secure: bool = setting(
        False, "Talk TLS to ClickHouse (port 9440 by default), verifying its certificate."
    )
    clickhouse_ca_file: str = setting(
        "", "CA certificates (PEM) to verify ClickHouse with; empty: the system's."
    )
    clickhouse_cluster: str = setting(
        "", "Cluster of the server's remote_servers to spread tables over (docs/clickhouse.md)."
    )


@dataclasses.dataclass(frozen=True)
class QuerySettings:
    """Limits that keep one query from taking the node down."""

    max_series: int = setting(10_000, "Most series one render target may return.")
    max_points: int = setting(20_000_000, "Most datapoints one render response may hold.")
    log_max_scan_rows: int = setting(
        50_000_000, "Most log entries one search may read; more fails, naming a filter to add."
    )


@dataclasses.dataclass(frozen=True)
class AlertSettings:
    """Alert rules, checks, heals and notifications (docs/alerts.md)."""

    rules_dir: str = setting(
        "", "Directory of alert rule files (*.toml, *.yaml); default DATA_DIR/rules."
    )
    plugin_dirs: str = setting(
        "/usr/lib/nagios/plugins:/usr/lib/monitoring-plugins",
        "Where check commands named without a path are looked up (before PATH).",
    )
    max_running_checks: int = setting(8, "Check commands (Nagios plugins) run at once.")
    smtp: str = setting("127.0.0.1:25", "SMTP server HOST:PORT of e-mail notifiers.")
    email_from: str = setting("", "From address of alert e-mail; default vigil@<host name>.")
    notify_attempts: int = setting(5, "Tries per notification before it is recorded as failed.")
    notify_backoff: float = setting(1.0, "Seconds before the first retry; doubled each time.")
    notify_timeout: float = setting(10.0, "Seconds one notification attempt may take.")
    notify_queue: int = setting(
        1000, "Notifications waiting to be sent; beyond it the oldest is dropped and counted."
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """All settings of a node, one section per stage."""

    node: NodeSettings = dataclasses.field(default_factory=NodeSettings)
    ingest: IngestSettings = dataclasses.field(default_factory=IngestSettings)
    bus: BusSettings = dataclasses.field(default_factory=BusSettings)
    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    query: QuerySettings = dataclasses.field(default_factory=QuerySettings)
    alert: AlertSettings = dataclasses.field(default_factory=AlertSettings)


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting as every source names it."""

    section: str
    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        """Its environment variable, e.g. ``VIGIL_GRAPHITE_PORT``."""
        return "VIGIL_" + self.name.upper()

    @property
    def flag(self) -> str:
        """Its command-line flag, e.g. ``--graphite-port``."""
        return "--" + self.name.replace("_", "-")


def options() -> list[Option]:
    """Every setting, in declaration order; names are unique across sections."""
    out = []
    for section, cls in _sections().items():
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out.append(Option(section, f.name, hints[f.name], f.default, f.metadata["help"]))
    return out


def _sections() -> dict[str, Any]:
    """Each section of ``Settings`` with its dataclass."""
    hints = get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names source and key."""


def convert(option: Option, raw: Any, source: str) -> Any:
    """``raw`` as the option's type, or a SettingsError naming where it came from."""
    try:
        if option.type is bool and isinstance(raw, str):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        return option.type(raw)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{source}: {option.name} = {raw!r} is not a valid {option.type.__name__}"
        ) from None


def load(
    config_files: Sequence[Path] = (),
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from defaults, TOML config files, ``VIGIL_*`` variables and overrides.

    Later layers win, and among ``config_files`` later files: an environment's
    file first, then the node's own (``prod.toml``, ``node7.toml``) names only
    what differs on that node. ``overrides`` maps option names to values (the
    command line's flags); ``None`` values are ignored so that unset flags do
    not mask lower layers.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {f.name: {} for f in dataclasses.fields(Settings)}
    by_name = {o.name: o for o in options()}
    for config_file in config_files:
        _read_config(config_file, by_name, values)
    for option in by_name.values():
        if option.env in environ:
            values[option.section][option.name] = convert(
                option, environ[option.env], f"environment {option.env}"
            )
    for key, raw in (overrides or {}).items():
        if raw is not None:
            option = by_name[key]
            values[option.section][key] = convert(option, raw, f"option {option.flag}")
    return Settings(**{name: cls(**values[name]) for name, cls in _sections().items()})


def _read_config(
    config_file: Path, by_name: Mapping[str, Option], values: dict[str, dict[str, Any]]
) -> None:
    """Put the settings of one TOML file into ``values``, over what earlier layers put there."""
    try:
        parsed = tomllib.loads(config_file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"config file {config_file}: {e}") from None
    for section, table in parsed.items():
        if section not in values or not isinstance(table, dict):
            raise SettingsError(f"config file {config_file}: unknown section [{section}]")
        for key, raw in table.items():
            option = by_name.get(key)
            if option is None or option.section != section:
                raise SettingsError(f"config file {config_file}: unknown key {section}.{key}")
            values[section][key] = convert(option, raw, f"config file {config_file}")


def reference_doc() -> str:
    """The settings reference in Markdown, as ``docs/config.md`` holds it."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `src/vigil/settings.py` (`vigil config-docs`); a test fails when",
        "this file falls behind. Each setting can be given, later wins: in TOML config",
        "files under its `[section]` (`vigil serve --config prod.toml --config node7.toml`:",
        "later files win, so a node's file names only what differs there), as a `VIGIL_*`",
        "environment variable, or as a `vigil serve` flag. docs/cluster.md shows the layers",
        "of a production layout.",
        "",
    ]
    section = ""
    for o in options():
        if o.section != section:
            section = o.section
            lines += ["", f"## [{section}]", "", "| key | flag / variable | default | meaning |"]
            lines += ["|---|---|---|---|"]
        default = str(o.default) if o.default != "" else "(empty)"
        lines.append(f"| `{o.name}` | `{o.flag}` / `{o.env}` | `{default}` | {o.help} |")
    return "\n".join(lines) + "\n"
