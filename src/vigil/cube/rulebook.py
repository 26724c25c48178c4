"""A node's extraction rules: the rules file's plus those added at runtime, persisted."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from vigil.cube.rules import Rule, RuleError, RuleSet, load_rules, regex_mode


class RuleBook:
    """A node's rules: those of its rules file plus those added at runtime.

    Runtime rules are kept in ``state_dir/rules.json`` (rewritten atomically
    on every change) so they survive a restart; file rules change only by
    editing the file and calling ``reload``. Counters of points and errors
    per rule live as long as the book. Safe to call from several threads.
    """

    STATE_FILE = "rules.json"

    def __init__(self, rules_file: Path | None, state_dir: Path) -> None:
        self.rules_file = rules_file
        self.state_path = Path(state_dir) / self.STATE_FILE
        self._lock = threading.Lock()
        self._runtime: list[Rule] = []
        self._points: dict[str, int] = {}
        self._errors: dict[str, dict[str, int]] = {}
        self._file = RuleSet()
        self._state_errors: list[dict[str, str]] = []
        self._set = RuleSet()
        self._load_state()
        self.reload()

    def _load_state(self) -> None:
        if not self.state_path.exists():
            return
        try:
            docs = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as e:
            self._state_errors = [{"rule": "", "error": f"{self.state_path}: {e}"}]
            return
        loaded = RuleSet.from_dicts(docs if isinstance(docs, list) else [], f"{self.state_path}: ")
        self._runtime = loaded.rules
        self._state_errors = loaded.errors

    def reload(self) -> None:
        """Read the rules file again (a runtime rule named like a file rule yields to it)."""
        file_set = load_rules(self.rules_file) if self.rules_file else RuleSet()
        with self._lock:
            self._file = file_set
            self._rebuild()

    def _rebuild(self) -> None:
        names = {r.name for r in self._file.rules}
        shadowed = [
            {"rule": r.name, "error": f"runtime rule {r.name!r} is also in the rules file; ignored"}
            for r in self._runtime
            if r.name in names
        ]
        rules = self._file.rules + [r for r in self._runtime if r.name not in names]
        self._set = RuleSet(rules, self._file.errors + self._state_errors + shadowed)

    @property
    def ruleset(self) -> RuleSet:
        """The rules in force now."""
        return self._set

    @property
    def errors(self) -> list[dict[str, str]]:
        """Rules that did not load: ``{"rule": name, "error": why}``."""
        return list(self._set.errors)

    def add(self, doc: Mapping[str, Any]) -> Rule:
        """Check, add and persist a runtime rule; ``ValueError`` says what is wrong."""
        rule = Rule.from_dict(doc)
        with self._lock:
            if any(r.name == rule.name for r in self._set.rules):
                raise RuleError(f"rule {rule.name!r} exists; remove it first or pick another name")
            self._runtime = [*self._runtime, rule]
            self._save()
            self._rebuild()
        return rule

    def remove(self, name: str) -> None:
        """Remove a runtime rule; ``KeyError`` if none has that name, ``ValueError`` for a file rule."""
        with self._lock:
            if any(r.name == name for r in self._file.rules):
                raise RuleError(
                    f"rule {name!r} is in the rules file {self.rules_file}; edit it there"
                )
            if not any(r.name == name for r in self._runtime):
                raise KeyError(name)
            self._runtime = [r for r in self._runtime if r.name != name]
            self._save()
            self._rebuild()
            self._points.pop(name, None)
            self._errors.pop(name, None)

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([r.to_dict() for r in self._runtime], indent=1))
        os.replace(tmp, self.state_path)

    def list(self) -> list[dict[str, Any]]:
        """Every rule in force with where it comes from, how it runs, and its counters."""
        with self._lock:
            file_names = {r.name for r in self._file.rules}
            out = []
            for rule in self._set.rules:
                doc = rule.to_dict()
                doc["source"] = "file" if rule.name in file_names else "api"
                doc["mode"] = regex_mode(rule)
                doc["points"] = self._points.get(rule.name, 0)
                doc["errors"] = dict(self._errors.get(rule.name, {}))
                out.append(doc)
            return out

    def apply(self, batch: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        """The points of ``batch`` under the rules in force; counts points and errors per rule."""
        outcome = self._set.apply_detailed(batch)
        if outcome.produced or outcome.errors:
            with self._lock:
                for name, n in outcome.produced.items():
                    self._points[name] = self._points.get(name, 0) + n
                for name, reasons in outcome.errors.items():
                    mine = self._errors.setdefault(name, {})
                    for reason, n in reasons.items():
                        mine[reason] = mine.get(reason, 0) + n
        return outcome.points, outcome.error_counts()
