"""Node wiring checks that need no running server."""

from __future__ import annotations

import pytest

from vigil.node import Node
from vigil.settings import SettingsError, load


def test_a_bad_overflow_policy_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="use one of block, drop_head, drop_tail"):
        Node(load(environ={"VIGIL_OVERFLOW": "spill-everything"}))
