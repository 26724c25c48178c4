"""Node wiring checks that need no running server."""

from __future__ import annotations

import pytest

from vigil.node import Node
from vigil.settings import SettingsError, load


def test_a_bad_overflow_policy_is_a_settings_error() -> None:
    with pytest.raises(
        SettingsError,
        match="store_overflow = .spill-everything.: use one of block, drop_head, drop_tail, spill",
    ):
        Node(load(environ={"VIGIL_STORE_OVERFLOW": "spill-everything"}))
