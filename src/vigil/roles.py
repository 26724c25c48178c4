"""Roles are compositions of stages, declared in one table.

``all`` runs every stage in one process. Split over processes, the stages
meet only through the bus (NATS JetStream, ``bus_nats``) and the storage
engine (a ClickHouse server shared by every process that reads or writes it);
docs/cluster.md shows a production layout. What each stage runs:

========  ==================================================================
ingest    Graphite, StatsD, syslog and event-log listeners, ``POST /api/logs``
store     the store writer (points, logs, events into storage), retention
forward   the relay to ``forward_graphite`` / ``forward_eventlog``, if set
cube      error groups, extraction rules and their API (``/api/rules``)
alert     rules, heartbeats, checks, notifications and their API
query     the HTTP read APIs (render, find, events, log search, cube, errors)
          and the live tail, which reads every log batch itself
web       the web UI (``/ui/``) and the dashboards API
========  ==================================================================

Every process has an HTTP port with ``/metrics`` and ``/api/status`` and
writes its own self-metrics (``vigil.<node_name>.*``) through the bus.
"""

from __future__ import annotations

from collections.abc import Iterable

STAGES = ("store", "forward", "cube", "alert", "query", "web", "ingest")  # start order

ROLES: dict[str, tuple[str, ...]] = {
    "all": STAGES,
    "ingest": ("ingest",),
    "store": ("store", "forward"),
    "cube": ("cube",),
    "alert": ("alert",),
    "query": ("query",),
    "web": ("query", "web"),  # the UI reads only through the HTTP APIs of its own origin
}

# The bus destination each consuming stage reads. The query stage's live tail
# needs every log batch in every query process, so it has a consumer of its own.
CONSUMES = {
    "store": "store",
    "forward": "forward",
    "cube": "cube",
    "alert": "alert",
    "query": "tail",
}
READS_STORAGE = frozenset({"store", "cube", "alert", "query"})


class RoleError(ValueError):
    """A role list that cannot run; the message says what to change."""


def stages_of(roles: Iterable[str] | str) -> tuple[str, ...]:
    """The stages of roles given as a list and/or comma-separated, in start order.

    >>> stages_of("web,ingest")
    ('query', 'web', 'ingest')
    """
    names = [roles] if isinstance(roles, str) else list(roles)
    wanted: set[str] = set()
    for role in (r.strip() for name in names for r in name.split(",") if r.strip()):
        if role not in ROLES:
            raise RoleError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
        wanted.update(ROLES[role])
    if not wanted:
        raise RoleError("no role given; use --role all")
    return tuple(stage for stage in STAGES if stage in wanted)


def check_placement(stages: tuple[str, ...], networked_bus: bool, shared_storage: bool) -> None:
    """Refuse stages that cannot meet the others from this process.

    ``shared_storage``: every process can reach the storage (a ClickHouse
    server); the embedded engine's data belongs to one process.
    """
    elsewhere = [stage for stage in STAGES if stage not in stages]
    if elsewhere and not networked_bus:
        raise RoleError(
            f"stages {', '.join(elsewhere)} would run in other processes, which the"
            " in-process bus cannot reach: set bus_nats (docs/cluster.md) or run --role all"
        )
    readers = [stage for stage in stages if stage in READS_STORAGE]
    if readers and "store" not in stages and not shared_storage:
        raise RoleError(
            f"stages {', '.join(readers)} read storage, but the embedded engine's data belongs"
            " to the one process that runs the store role: point every process at a ClickHouse"
            " server (setting clickhouse, docs/cluster.md), or add --role store here"
        )
