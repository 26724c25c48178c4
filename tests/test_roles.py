"""The roles table."""

from __future__ import annotations

import pytest

from vigil.roles import RoleError, stages_of


@pytest.mark.parametrize(
    ("roles", "stages"),
    [
        ("all", ("store", "ingest", "alert", "query")),
        ("query,store", ("store", "query")),
        ("store, ingest", ("store", "ingest")),
        ("store", ("store",)),
    ],
)
def test_roles_compose_stages_in_start_order(roles: str, stages: tuple[str, ...]) -> None:
    assert stages_of(roles) == stages


@pytest.mark.parametrize(
    ("roles", "message"),
    [("alerts", "unknown role 'alerts'"), ("", "no role"), ("ingest", "add --role store")],
)
def test_role_errors_say_what_to_do(roles: str, message: str) -> None:
    with pytest.raises(RoleError, match=message):
        stages_of(roles)
