"""Node wiring: settings that cannot run, and what SIGHUP reloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nodes import node_settings
from vigil.node import Node
from vigil.roles import RoleError
from vigil.settings import SettingsError, load


def test_a_bad_overflow_policy_is_a_settings_error() -> None:
    with pytest.raises(
        SettingsError,
        match="store_overflow = .spill-everything.: use one of block, drop_head, drop_tail, spill",
    ):
        Node(load(environ={"VIGIL_STORE_OVERFLOW": "spill-everything"}))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"roles": "ingest"}, "the in-process bus cannot reach: set bus_nats"),
        (
            {"roles": "query", "bus_nats": "nats://127.0.0.1:4222"},
            "point every process at a ClickHouse",
        ),
    ],
)
def test_roles_that_cannot_run_here_are_refused_before_anything_starts(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(RoleError, match=message):
        Node(load(environ={}, overrides=overrides))


async def test_reload_rules_reads_extraction_and_alert_rules_again(tmp_path: Path) -> None:
    extract = tmp_path / "extract.toml"
    extract.write_text('[[rule]]\nname = "a"\nmatch = "x"\nmetric = "logs.a"\n')
    alerts = tmp_path / "alerts"
    alerts.mkdir()
    node = Node(
        node_settings(tmp_path / "data", extract_rules_file=str(extract), rules_dir=str(alerts))
    )
    await node.start()
    try:
        extract.write_text(
            extract.read_text() + '[[rule]]\nname = "b"\nmatch = "y"\nmetric = "logs.b"\n'
        )
        (alerts / "a.toml").write_text('[[rule]]\nname = "alive"\nheartbeat = "web*"\n')
        node.reload_rules()  # what SIGHUP does
        assert node.rules is not None and [r["name"] for r in node.rules.list()] == ["a", "b"]
        assert node.alerts is not None and [r.name for r in node.alerts.ruleset.rules] == ["alive"]
        (alerts / "a.toml").write_text("[[rule]]\nname = ")
        node.reload_rules()  # a bad file: logged, the old rules stay
        assert [r.name for r in node.alerts.ruleset.rules] == ["alive"]
    finally:
        await node.stop()
