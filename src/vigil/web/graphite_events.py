"""Graphite's events API: annotations such as deploys on the timeline.

``POST /events/`` takes ``{"what": ..., "tags": [...] or "a b", "when": epoch,
"data": ...}``; ``GET /events/get_data?from=&until=&tags=`` lists them, as
graphite-web does, so Grafana's Graphite annotations work unchanged.
"""

from __future__ import annotations

import json
import time
from typing import Any

from vigil.query.source import Event


class EventError(ValueError):
    """An event the API cannot store; the message says which field is wrong."""


def parse_tags(raw: Any) -> list[str]:
    """Tags given as a list or as one space- or comma-separated string."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [t for t in raw.replace(",", " ").split() if t]
    if isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        return [t for t in raw if t]
    raise EventError("tags must be a list of strings or a space-separated string")


def parse_event(body: bytes) -> tuple[float, str, list[str], str]:
    """``(when, what, tags, data)`` of a POSTed event body."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise EventError(f"body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise EventError('body must be a JSON object like {"what": "deploy", "tags": ["web"]}')
    what = doc.get("what")
    if not isinstance(what, str) or not what:
        raise EventError('"what" is required: a short text such as "deploy web 1.2"')
    when = doc.get("when", time.time())
    if isinstance(when, bool) or not isinstance(when, int | float):
        raise EventError('"when" must be epoch seconds')
    data = doc.get("data", "")
    if not isinstance(data, str):
        data = json.dumps(data)
    return float(when), what, parse_tags(doc.get("tags")), data


def event_json(event: Event) -> dict[str, Any]:
    """An event in graphite-web's ``get_data`` shape."""
    return {
        "id": event.id,
        "when": event.when,
        "what": event.what,
        "tags": list(event.tags),
        "data": event.data,
    }
