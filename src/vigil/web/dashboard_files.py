"""Dashboards as files: one JSON file per dashboard in a directory, so they can be versioned.

A dashboard file (``DIR/<name>.json``) holds::

    {"title": "Web servers", "from": "-6h", "until": "now", "refresh": "1m",
     "events": "deploy",
     "panels": [{"title": "CPU", "targets": ["servers.*.cpu.user"]}]}

``name`` is the file's stem (lower-case letters, digits, ``-`` and ``_``);
``events`` is the tag filter of the deploy markers (empty: every event).
Files are validated when read and before they are written; a save replaces
the file atomically and writes it the same way every time (sorted keys,
two-space indent), so a diff shows only what changed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_PANELS = 100
MAX_TARGETS = 20
MAX_TEXT = 2000
_KEYS = {"title", "from", "until", "refresh", "events", "panels"}
_PANEL_KEYS = {"title", "targets"}


class DashboardError(ValueError):
    """A dashboard that cannot be read or saved; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class Panel:
    """One graph: its title and the Graphite targets it draws."""

    title: str
    targets: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Dashboard:
    """A dashboard as its file holds it; ``start``/``until`` are the default time range."""

    title: str
    panels: tuple[Panel, ...] = ()
    start: str = "-6h"
    until: str = "now"
    refresh: str = ""
    events: str = ""

    def to_json(self) -> dict[str, Any]:
        """The file's JSON value."""
        return {
            "title": self.title,
            "from": self.start,
            "until": self.until,
            "refresh": self.refresh,
            "events": self.events,
            "panels": [{"title": p.title, "targets": list(p.targets)} for p in self.panels],
        }


def _text(doc: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise DashboardError(f"{where}{key} must be a string")
    if len(value) > MAX_TEXT:
        raise DashboardError(f"{where}{key} is longer than {MAX_TEXT} characters")
    return value


def _unknown(doc: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(doc) - known)
    if extra:
        raise DashboardError(
            f"{where}unknown key {extra[0]!r}; a {'panel' if where else 'dashboard'}"
            f" has {', '.join(sorted(known))}"
        )


def _panel(doc: Any, i: int) -> Panel:
    where = f"panels[{i}]."
    if not isinstance(doc, dict):
        raise DashboardError(f"panels[{i}] must be an object with title and targets")
    _unknown(doc, _PANEL_KEYS, where)
    targets = doc.get("targets")
    if not isinstance(targets, list) or not targets:
        raise DashboardError(f"{where}targets must be a list of one or more Graphite targets")
    if len(targets) > MAX_TARGETS:
        raise DashboardError(f"{where}targets: at most {MAX_TARGETS} per panel")
    for t in targets:
        if not isinstance(t, str) or not t.strip() or len(t) > MAX_TEXT:
            raise DashboardError(f"{where}targets must be non-empty strings")
    return Panel(_text(doc, "title", where, ""), tuple(t.strip() for t in targets))


def parse(doc: Any) -> Dashboard:
    """A ``Dashboard`` from the JSON value of a file or a request; ``DashboardError`` if invalid."""
    if not isinstance(doc, dict):
        raise DashboardError("a dashboard must be a JSON object")
    _unknown(doc, _KEYS, "")
    panels = doc.get("panels", [])
    if not isinstance(panels, list):
        raise DashboardError("panels must be a list")
    if len(panels) > MAX_PANELS:
        raise DashboardError(f"panels: at most {MAX_PANELS}")
    title = _text(doc, "title", "")
    if not title.strip():
        raise DashboardError("title must not be empty")
    return Dashboard(
        title=title,
        panels=tuple(_panel(p, i) for i, p in enumerate(panels)),
        start=_text(doc, "from", "", "-6h") or "-6h",
        until=_text(doc, "until", "", "now") or "now",
        refresh=_text(doc, "refresh", "", ""),
        events=_text(doc, "events", "", ""),
    )


def dumps(dashboard: Dashboard) -> str:
    """The file text of ``dashboard``: the same text for the same dashboard."""
    return json.dumps(dashboard.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def check_name(name: str) -> str:
    """``name`` if it can name a dashboard file, else ``DashboardError``."""
    if not NAME.fullmatch(name):
        raise DashboardError(
            f"dashboard name {name[:80]!r}: use 1-64 lower-case letters, digits, '-' or '_',"
            " starting with a letter or digit"
        )
    return name


class DashboardFiles:
    """The dashboards of one directory; the directory is created on the first save."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        """Names of the dashboard files, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.stem for p in self.directory.glob("*.json") if NAME.fullmatch(p.stem) and p.is_file()
        )

    def load(self, name: str) -> Dashboard | None:
        """The dashboard ``name``, ``None`` if there is no such file; ``DashboardError`` if invalid."""
        path = self._path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return parse(json.loads(text))
        except ValueError as e:  # DashboardError and JSONDecodeError
            raise DashboardError(f"{path}: {e}") from None

    def save(self, name: str, dashboard: Dashboard) -> None:
        """Write ``dashboard`` to its file, replacing it atomically."""
        path = self._path(name)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(dumps(dashboard), encoding="utf-8")
        os.replace(tmp, path)

    def delete(self, name: str) -> bool:
        """Remove the dashboard ``name``; ``False`` if there was none."""
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            return False
        return True
