"""The deployment's destinations come from its settings, never from the stages a process runs."""

from __future__ import annotations

import dataclasses

import pytest

from vigil.bus.destination import Overflow
from vigil.bus.layout import destination_specs
from vigil.model import LOGS_SCHEMA
from vigil.settings import BusSettings, SettingsError


def test_the_default_deployment_has_store_tail_cube_and_alert() -> None:
    specs = destination_specs(BusSettings())
    assert [d.name for d in specs] == ["store", "tail", "cube", "alert"]
    by_name = {d.name: d for d in specs}
    assert by_name["store"].only == () and by_name["store"].overflow is Overflow.SPILL
    assert all(by_name[n].only == (LOGS_SCHEMA,) for n in ("tail", "cube", "alert"))
    assert [d.name for d in specs if not d.shared] == ["tail"]  # every query process reads it all


@pytest.mark.parametrize("setting", ["forward_graphite", "forward_eventlog"])
def test_a_relay_adds_the_forward_destination(setting: str) -> None:
    bus = dataclasses.replace(BusSettings(), **{setting: "127.0.0.1:2003"})
    assert [d.name for d in destination_specs(bus)] == ["store", "tail", "cube", "forward", "alert"]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("tail_overflow", "spill", "tail_overflow = 'spill': a live tail does not replay"),
        ("alert_overflow", "spill", "heartbeats are not replayed"),
        ("cube_overflow", "later", "cube_overflow = 'later': use one of block, "),
    ],
)
def test_impossible_policies_are_refused(setting: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        destination_specs(dataclasses.replace(BusSettings(), **{setting: value}))
