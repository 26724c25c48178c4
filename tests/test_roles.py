"""The roles table: which stages a role list runs, and where they may run."""

from __future__ import annotations

import pytest

from vigil.roles import STAGES, RoleError, check_placement, stages_of


@pytest.mark.parametrize(
    ("roles", "stages"),
    [
        ("all", STAGES),
        ("query,store", ("store", "forward", "query")),
        ("store, ingest", ("store", "forward", "ingest")),
        ("web", ("query", "web")),
        ("ingest", ("ingest",)),
        (["cube", "alert,query"], ("cube", "alert", "query")),
        (["ingest", "store", "cube", "alert", "query", "web"], STAGES),
        (["all", "ingest"], STAGES),
    ],
)
def test_roles_compose_stages_in_start_order(
    roles: str | list[str], stages: tuple[str, ...]
) -> None:
    assert stages_of(roles) == stages


@pytest.mark.parametrize(
    ("roles", "message"),
    [("alerts", "unknown role 'alerts'"), ("", "no role"), ([" , "], "no role")],
)
def test_role_errors_say_what_to_do(roles: str | list[str], message: str) -> None:
    with pytest.raises(RoleError, match=message):
        stages_of(roles)


@pytest.mark.parametrize(
    ("roles", "networked_bus", "shared_storage"),
    [
        ("all", False, False),
        ("all", True, True),
        ("ingest", True, False),  # no storage needed
        ("store,cube,alert,query,web", True, False),  # owns the embedded engine
        ("query", True, True),
        ("cube,alert", True, True),
    ],
)
def test_placements_that_can_run(roles: str, networked_bus: bool, shared_storage: bool) -> None:
    check_placement(stages_of(roles), networked_bus, shared_storage)


@pytest.mark.parametrize(
    ("roles", "networked_bus", "shared_storage", "message"),
    [
        ("ingest", False, False, "stages store, forward, cube, alert, query, web would run in"),
        ("store,ingest", False, True, "set bus_nats"),
        ("query", True, False, "stages query read storage, but the embedded engine"),
        ("cube,alert,ingest", True, False, "ClickHouse server"),
        ("web", True, False, "or add --role store here"),
    ],
)
def test_placements_that_cannot_run_say_what_to_set(
    roles: str, networked_bus: bool, shared_storage: bool, message: str
) -> None:
    with pytest.raises(RoleError, match=message):
        check_placement(stages_of(roles), networked_bus, shared_storage)
