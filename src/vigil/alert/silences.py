"""Silences: label matchers with an end time and a reason, kept across restarts.

A silence mutes the notifications of every alert whose labels match all its
matchers (shell-style globs: ``host=web*``); the alerts are still evaluated
and their changes recorded. An alert's labels are its rule's labels plus
``rule`` and ``target``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Silence:
    """Mutes matching alerts until ``until`` (epoch seconds)."""

    id: str
    matchers: Mapping[str, str]
    until: float
    reason: str
    created: float

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher matches the label of its name."""
        return all(
            k in labels and fnmatch.fnmatchcase(labels[k], v) for k, v in self.matchers.items()
        )

    def as_json(self) -> dict[str, Any]:
        """The silence as the API shows it."""
        return dataclasses.asdict(self)


class Silences:
    """The silences of a node, saved to ``path`` on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._items: dict[str, Silence] = {}
        if path.exists():
            for raw in json.loads(path.read_text()):
                self._items[raw["id"]] = Silence(**raw)

    def active(self, now: float) -> list[Silence]:
        """Silences not yet ended, soonest end first."""
        return sorted((s for s in self._items.values() if s.until > now), key=lambda s: s.until)

    def add(self, matchers: Mapping[str, str], until: float, reason: str, now: float) -> Silence:
        """A new silence; ``ValueError`` if it matches everything or has already ended."""
        if not matchers:
            raise ValueError("a silence needs at least one matcher, e.g. rule=api-load")
        if until <= now:
            raise ValueError("a silence must end in the future")
        if not reason.strip():
            raise ValueError("say why: a silence needs a reason")
        silence = Silence(secrets.token_hex(6), dict(matchers), until, reason, now)
        self._items[silence.id] = silence
        self._save(now)
        return silence

    def remove(self, id: str, now: float) -> Silence:
        """End a silence now; ``KeyError`` if there is none with that id."""
        silence = self._items.pop(id)
        self._save(now)
        return silence

    def silencing(self, labels: Mapping[str, str], now: float) -> Silence | None:
        """The first active silence matching ``labels``, if any."""
        return next((s for s in self.active(now) if s.matches(labels)), None)

    def _save(self, now: float) -> None:
        self._items = {k: s for k, s in self._items.items() if s.until > now}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([s.as_json() for s in self._items.values()], indent=1))
        os.replace(tmp, self.path)
