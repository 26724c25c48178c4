"""The state of one alert (a rule applied to one target), as Nagios keeps it.

Each check result goes through ``AlertState.observe``, which decides, with no
I/O, what changed and what should happen: a SOFT state while a problem is
not yet confirmed (fewer than ``attempts`` failing checks, or younger than
``for``), a HARD state once it is; notifications only for HARD changes, not
while flapping; a heal instead of a page when the rule has one and none ran
within its cooldown. Silences and acknowledgements are applied by the
caller, which records a suppressed notice instead of sending it.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from typing import Any

from vigil.alert.rules import Rule

# Checks kept for flap detection (Nagios keeps 21 states: 20 possible changes).
FLAP_WINDOW = 21


class Status(enum.IntEnum):
    """Nagios states, in their plugin exit-code order."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclasses.dataclass(frozen=True)
class Check:
    """One evaluation of one target: its status, the value seen and why."""

    target: str
    status: Status
    value: float | None
    message: str


@dataclasses.dataclass(frozen=True)
class Change:
    """Something that happened to an alert, for history and notifications.

    ``kind`` is ``state`` (a SOFT or HARD change), ``notify`` (a notice to
    send: ``reason`` is problem, recovery, repeat, flapping or flap-end),
    ``heal`` (start a heal now), ``healed`` (it worked) or ``escalate`` (it did not).
    """

    kind: str
    state: Status
    hard: bool
    message: str
    reason: str = ""


@dataclasses.dataclass
class AlertState:
    """Everything remembered about one alert between checks."""

    rule: str
    target: str
    state: Status = Status.OK
    hard: bool = True
    since: float = 0.0
    message: str = ""
    value: float | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    attempt: int = 0
    failing_since: float | None = None
    flapping: bool = False
    recent: collections.deque[Status] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=FLAP_WINDOW)
    )
    notified: Status | None = None  # the problem last notified, until its recovery
    notified_at: float = 0.0
    acknowledged: bool = False
    healing: bool = False
    heal_started: float | None = None
    heal_failed: str | None = None
    last_heal: float | None = None
    last_check: float = 0.0
    seen: float = 0.0  # when the target was last returned by the rule's source

    @property
    def shown(self) -> Status:
        """The state users see: WARNING while a heal has its chance."""
        return Status.WARNING if self.healing else self.state

    def as_json(self) -> dict[str, Any]:
        """The alert as ``GET /api/alerts`` lists it (silencing is added by the caller)."""
        return {
            "rule": self.rule,
            "target": self.target,
            "state": self.shown.name,
            "since": self.since,
            "message": self.message,
            "value": self.value,
            "healing": self.healing,
            "hard": self.hard,
            "flapping": self.flapping,
            "acknowledged": self.acknowledged,
            "labels": self.labels,
            "last_check": self.last_check,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON types."""
        out = dataclasses.asdict(self)
        out["state"] = self.state.name
        out["recent"] = [s.value for s in self.recent]
        out["notified"] = self.notified.name if self.notified is not None else None
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AlertState:
        """An alert saved by ``to_dict``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in raw.items() if k in fields})
        state.state = Status[raw["state"]]
        state.notified = Status[raw["notified"]] if raw.get("notified") else None
        state.recent = collections.deque(
            (Status(v) for v in raw.get("recent", [])), maxlen=FLAP_WINDOW
        )
        return state

    def observe(self, check: Check, rule: Rule, now: float) -> list[Change]:
        """Take one check result; the changes it makes, in order."""
        self.last_check = now
        self.value = check.value
        self.message = check.message
        changes: list[Change] = []
        changes += self._flap(check.status, rule)
        if self.healing:
            changes += self._while_healing(check, rule, now)
            return changes
        if check.status is Status.OK:
            self.attempt = 0
            self.failing_since = None
            if self.state is not Status.OK:
                changes += self._move(Status.OK, True, now, check.message)
                if self.notified is not None:
                    changes += self._notice("recovery", now, check.message)
                self.notified = None
            return changes
        self.attempt += 1
        if self.failing_since is None:
            self.failing_since = now
        confirmed = self.attempt >= rule.attempts and now - self.failing_since >= rule.for_
        if not confirmed:
            if (self.state, self.hard) != (check.status, False):
                changes += self._move(check.status, False, now, check.message)
            return changes
        if (self.state, self.hard) != (check.status, True):
            changes += self._move(check.status, True, now, check.message)
            self.acknowledged = False
            if check.status is Status.CRITICAL and rule.heals and self._may_heal(rule, now):
                self.healing = True
                self.heal_started = self.last_heal = now
                self.heal_failed = None
                changes.append(Change("heal", Status.WARNING, True, check.message))
            else:
                message = check.message
                if check.status is Status.CRITICAL and rule.heals and self.last_heal is not None:
                    ago = now - self.last_heal
                    message += f" (no heal: one ran {ago:.0f}s ago, cooldown {rule.heal_cooldown}s)"
                changes += self._problem(now, message)
        elif (
            rule.repeat
            and self.notified is not None
            and not self.acknowledged
            and now - self.notified_at >= rule.repeat
        ):
            changes += self._notice("repeat", now, check.message)
        return changes

    def heal_done(self, ok: bool, detail: str) -> None:
        """A heal ended; a failed one escalates at the next check."""
        if not ok:
            self.heal_failed = detail

    def _while_healing(self, check: Check, rule: Rule, now: float) -> list[Change]:
        if check.status is Status.OK:
            self.healing = False
            self.attempt = 0
            self.failing_since = None
            message = f"healed: {check.message}"
            return [
                Change("healed", Status.OK, True, message),
                *self._move(Status.OK, True, now, message),
            ]
        started = now if self.heal_started is None else self.heal_started
        if self.heal_failed is not None or now - started >= rule.heal_grace:
            why = (
                f"heal failed ({self.heal_failed})"
                if self.heal_failed is not None
                else f"still {check.status.name} {now - started:.0f}s after the heal"
            )
            self.healing = False
            message = f"{check.message} ({why})"
            changes = [Change("escalate", check.status, True, message)]
            if check.status is not self.state:
                changes += self._move(check.status, True, now, message)
            return changes + self._problem(now, message)
        return []

    def _may_heal(self, rule: Rule, now: float) -> bool:
        return self.last_heal is None or now - self.last_heal >= rule.heal_cooldown

    def _problem(self, now: float, message: str) -> list[Change]:
        self.notified = self.state
        return self._notice("problem", now, message)

    def _move(self, state: Status, hard: bool, now: float, message: str) -> list[Change]:
        if state is not self.state:
            self.since = now
        self.state, self.hard = state, hard
        return [Change("state", state, hard, message)]

    def _notice(self, reason: str, now: float, message: str) -> list[Change]:
        if self.flapping and reason in ("problem", "recovery", "repeat"):
            return []
        self.notified_at = now
        return [Change("notify", self.state, self.hard, message, reason)]

    def _flap(self, status: Status, rule: Rule) -> list[Change]:
        """Flap detection: the share of state changes over the last checks."""
        self.recent.append(status)
        if len(self.recent) < FLAP_WINDOW // 2:
            return []
        states = list(self.recent)
        changed = sum(a is not b for a, b in zip(states, states[1:], strict=False))
        percent = 100.0 * changed / (len(states) - 1)
        if not self.flapping and percent > rule.flap_high:
            self.flapping = True
            message = f"flapping: {percent:.0f}% of the last {len(states)} checks changed state"
            return [Change("notify", status, self.hard, message, "flapping")]
        if self.flapping and percent < rule.flap_low:
            self.flapping = False
            return [Change("notify", status, self.hard, "stopped flapping", "flap-end")]
        return []
