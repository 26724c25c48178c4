"""Graphite interval strings (``"5min"``, ``"-1d"``, ``"1h30min"``) in seconds.

TODO(timeparse): replace with ``vigil.query.timeparse``'s interval parser once
it lands, and delete this module.
"""

from __future__ import annotations

import re

from vigil.query.functions.registry import RenderError

_PART = re.compile(r"(\d+)([a-zA-Z]+)")

# graphite-web's getUnitString: units are matched by prefix, "m" alone is minutes;
# months and years count as 30 and 365 days.
_UNITS = (
    ("s", 1),
    ("min", 60),
    ("h", 3600),
    ("d", 86400),
    ("w", 7 * 86400),
    ("mon", 30 * 86400),
    ("m", 60),
    ("y", 365 * 86400),
)


def _unit_seconds(unit: str, text: str) -> int:
    for prefix, seconds in _UNITS:
        if unit.startswith(prefix):
            return seconds
    raise RenderError(
        f"invalid interval {text!r}: unknown unit {unit!r} (use s, min, h, d, w, mon, y)"
    )


def interval_seconds(text: str) -> int:
    """Signed length of a Graphite interval string, e.g. ``"-1h"`` is ``-3600``."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    parts = _PART.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise RenderError(f"invalid interval {text!r}: expected a number and unit such as '5min'")
    return sign * sum(int(n) * _unit_seconds(u.lower(), text) for n, u in parts)
