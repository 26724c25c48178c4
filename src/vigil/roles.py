"""Roles are compositions of stages, declared in one table.

``all`` runs every stage in one process on the embedded engine. Split roles
share the bus and storage of the process they run in; until a networked bus
backend exists, ingest and query need a store in the same process.
"""

from __future__ import annotations

ROLES: dict[str, tuple[str, ...]] = {
    "all": ("store", "ingest", "alert", "query"),
    "store": ("store",),
    "ingest": ("ingest",),
    "alert": ("alert",),
    "query": ("query",),
}


class RoleError(ValueError):
    """A role list that cannot run; the message says what to change."""


def stages_of(roles: str) -> tuple[str, ...]:
    """The stages of a comma-separated role list, in start order (store first)."""
    wanted: set[str] = set()
    for role in (r.strip() for r in roles.split(",") if r.strip()):
        if role not in ROLES:
            raise RoleError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
        wanted.update(ROLES[role])
    if not wanted:
        raise RoleError("no role given; use --role all")
    if "store" not in wanted:
        raise RoleError(
            "roles without 'store' need a networked bus and storage server, which this"
            " version does not have; add --role store or use --role all"
        )
    return tuple(stage for stage in ROLES["all"] if stage in wanted)
