"""The error every query-layer module raises for a user's mistake (the API answers 400)."""

from __future__ import annotations


class RenderError(ValueError):
    """A user error in a render request; the API answers 400 with this message."""
