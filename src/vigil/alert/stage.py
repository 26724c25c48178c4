"""The alert stage: evaluates rules on schedule and acts on what changed.

Each second it takes the rules that are due, evaluates them (render targets
of one window together, checks concurrently up to a limit), feeds every
result to its alert's ``AlertState`` and acts on the changes: history
records, heals started in the background, and one notice per rule, reason and
route for all of a rule's alerts that changed in the round (grouping), minus
the silenced ones. Heartbeats come from the bus's ``alert`` destination.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
from prometheus_client import Counter, Gauge, Histogram

from vigil.alert import commands, targets
from vigil.alert.history import History, report
from vigil.alert.nagios import parse_output
from vigil.alert.notify import Delivery, Dispatcher, Notice, SendPolicy
from vigil.alert.rules import Rule, RuleFileError, RuleSet, load_dir
from vigil.alert.silences import Silences
from vigil.alert.state import AlertState, Change, Check, Status
from vigil.bus.fanout import Bus
from vigil.bus.queue import Queue
from vigil.model import LOGS_SCHEMA, POINTS_SCHEMA
from vigil.settings import AlertSettings, QuerySettings
from vigil.store.interface import Storage
from vigil.telemetry import Telemetry, path_part

log = logging.getLogger("vigil.alert")
# Targets a rule stopped returning are forgotten after this long (if OK or not).
FORGET_AFTER = 3600.0


class AlertStage:
    """The rules, alerts, silences and history of one node."""

    def __init__(
        self,
        settings: AlertSettings,
        limits: QuerySettings,
        storage: Storage,
        bus: Bus,
        telemetry: Telemetry,
        data_dir: Path,
        destination: Queue | None = None,
        clock: Callable[[], float] = time.time,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.active = active  # False: another process evaluates (``bus.lease``), stand by
        self.limits = limits
        self.storage = storage
        self.bus = bus
        self.destination = destination
        self.clock = clock
        self.rules_dir = Path(settings.rules_dir) if settings.rules_dir else data_dir / "rules"
        self.plugin_dirs = [d for d in settings.plugin_dirs.split(":") if d]
        self.state_path = data_dir / "alerts" / "state.json"
        self.ruleset = RuleSet()
        self.alerts: dict[str, dict[str, AlertState]] = {}  # rule -> target -> alert
        self.silences = Silences(data_dir / "alerts" / "silences.json")
        self.history = History(storage, telemetry)
        policy = SendPolicy(
            attempts=settings.notify_attempts,
            backoff=settings.notify_backoff,
            timeout=settings.notify_timeout,
            smtp=settings.smtp,
            **({"email_from": settings.email_from} if settings.email_from else {}),
        )
        self.dispatcher = Dispatcher(telemetry, self._delivered, policy, settings.notify_queue)
        self.heartbeats = targets.Heartbeats()
        self._due: dict[str, float] = {}
        self._heals: set[tuple[str, str]] = set()
        self._checks = asyncio.Semaphore(settings.max_running_checks)
        self._wake = asyncio.Event()
        self._dirty = False
        self._client: httpx.AsyncClient | None = None  # made by the first heal webhook
        self._tasks: set[asyncio.Task[None]] = set()
        reg = telemetry.registry
        self.round_seconds = Histogram(
            "vigil_alert_round_seconds", "Time to evaluate the rules due in one round",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30), registry=reg,
        )  # fmt: skip
        self.last_round = Gauge(
            "vigil_alert_last_round_seconds", "Time the last round of evaluations took",
            registry=reg,
        )  # fmt: skip
        self.evaluations = Counter(
            "vigil_alert_evaluations", "Rule evaluations by source", ["source"], registry=reg
        )
        self.failures = Counter(
            "vigil_alert_target_errors", "Rule evaluations that failed (alert UNKNOWN)",
            registry=reg,
        )  # fmt: skip
        self.heals_run = Counter(
            "vigil_alert_heals", "Heals run, by result", ["result"], registry=reg
        )
        Gauge("vigil_alert_rules", "Alert rules loaded", registry=reg).set_function(
            lambda: len(self.ruleset.rules)
        )
        self._restore()

    # -- rules --------------------------------------------------------------

    def reload(self) -> RuleSet:
        """Read the rules directory again; on an error the previous rules stay.

        Raises ``RuleFileError``. Alerts of rules that are gone are forgotten.
        """
        try:
            ruleset = load_dir(self.rules_dir)
        except RuleFileError as e:
            log.error("alert rules not reloaded, previous rules stay: %s", e)
            raise
        names = {r.name for r in ruleset.rules}
        self.alerts = {name: alerts for name, alerts in self.alerts.items() if name in names}
        now = self.clock()
        self._due = {r.name: self._due.get(r.name, now) for r in ruleset.rules}
        self.ruleset = ruleset
        self._wake.set()
        log.info(
            "alert rules: %d from %d files in %s", len(names), len(ruleset.files), self.rules_dir
        )
        return ruleset

    # -- running --------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate, consume heartbeats, send and record until cancelled."""
        with contextlib.suppress(RuleFileError):
            self.reload()
        loops = [self.dispatcher.run(), self._schedule(), self._flush()]
        if self.destination is not None:
            loops.append(self._consume(self.destination))
        try:
            await asyncio.gather(*loops)
        finally:
            await self.aclose()
            self._save()

    async def aclose(self) -> None:
        """Close the HTTP connections of heal webhooks."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _consume(self, destination: Queue) -> None:
        while True:
            delivery = await destination.get()
            if delivery is None:
                continue
            if delivery.batch.schema.equals(LOGS_SCHEMA):
                self.heartbeats.observe(delivery.batch)
            await destination.done([delivery])

    async def _schedule(self) -> None:
        while True:
            now = self.clock()
            due = [r for r in self.ruleset.rules if self._due.get(r.name, now) <= now]
            for rule in due:
                self._due[rule.name] = now + rule.interval
            if due and self.active():
                await self.evaluate(due, now)
            wait = min(self._due.values(), default=now + 1.0) - self.clock()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, min(wait, 1.0)))

    async def _flush(self) -> None:
        last_save = 0.0
        while True:
            await asyncio.sleep(1.0)
            await self.history.flush()
            if self._dirty and self.clock() - last_save >= 5:
                await asyncio.to_thread(self._save)
                last_save = self.clock()

    async def evaluate(self, rules: list[Rule], now: float) -> None:
        """Evaluate ``rules`` once and act on every change."""
        started = time.perf_counter()
        results = await self.results(rules, now)
        for rule in rules:
            self._apply(rule, results[rule.name], now)
        took = time.perf_counter() - started
        self.round_seconds.observe(took)
        self.last_round.set(took)

    async def results(self, rules: list[Rule], now: float) -> dict[str, list[Check] | str]:
        """Each rule's checks, or the error that made it fail."""
        out: dict[str, list[Check] | str] = {}
        windows: dict[int, list[Rule]] = {}
        queries: list[Rule] = []
        checks: list[Rule] = []
        for source, count in collections.Counter(r.source for r in rules).items():
            self.evaluations.labels(source).inc(count)
        for rule in rules:
            if rule.source == "target":
                windows.setdefault(rule.window, []).append(rule)
            elif rule.source in ("cube", "search"):
                queries.append(rule)
            elif rule.source == "check":
                checks.append(rule)
            else:
                out[rule.name] = self.heartbeats.check(rule, now)
        for group in windows.values():
            out.update(
                await asyncio.to_thread(
                    targets.evaluate_renders,
                    self.storage,
                    group,
                    int(now),
                    self.limits.max_series,
                    self.limits.max_points,
                )  # fmt: skip
            )
        if queries:
            out.update(await asyncio.to_thread(self._queries, queries, int(now)))
        found = await asyncio.gather(*(self._run_check(r) for r in checks))
        out.update((r.name, result) for r, result in zip(checks, found, strict=True))
        return out

    def _queries(self, rules: list[Rule], now: int) -> dict[str, list[Check] | str]:
        out: dict[str, list[Check] | str] = {}
        for rule in rules:
            try:
                if rule.source == "cube":
                    out[rule.name] = targets.evaluate_cube(self.storage, rule, now)
                else:
                    out[rule.name] = [targets.evaluate_search(self.storage, rule, now)]
            except Exception as e:  # any failure of a target makes its alert UNKNOWN
                out[rule.name] = f"{rule.source}: {e}"
        return out

    async def _run_check(self, rule: Rule) -> list[Check]:
        """Run a Nagios plugin; its performance data become ``nagios.<rule>.<label>`` points."""
        async with self._checks:
            result = await commands.run(rule.spec, rule.timeout, self.plugin_dirs)
        if result.exit is None:
            return [Check(rule.spec, Status.UNKNOWN, None, result.error)]
        message, perf = parse_output(result.output)
        status = Status(result.exit) if 0 <= result.exit <= 3 else Status.UNKNOWN
        if not 0 <= result.exit <= 3:
            message = f"plugin exited {result.exit}: {message}"
        if perf:
            now = int(self.clock())
            points = pa.table(
                [
                    pa.array([f"nagios.{path_part(rule.name)}.{path_part(p.label)}" for p in perf]),
                    pa.array([now] * len(perf), pa.uint32()),
                    pa.array([p.value for p in perf], pa.float64()),
                ],
                schema=POINTS_SCHEMA,
            )
            await self.bus.publish(points)
        value = perf[0].value if perf else float(status.value)
        return [Check(rule.spec, status, value, message or f"exit {result.exit}")]

    # -- acting on results ------------------------------------------------------

    def _apply(self, rule: Rule, result: list[Check] | str, now: float) -> None:
        alerts = self.alerts.setdefault(rule.name, {})
        if isinstance(result, str):
            self.failures.inc()
            result = [Check(t, Status.UNKNOWN, None, result) for t in alerts or [rule.name]]
        returned = {c.target for c in result}
        if rule.source in ("target", "cube") and len(alerts) > len(returned):
            result = result + self._missing(rule, alerts, returned, now)
        notices: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for check in result:
            alert = alerts.get(check.target)
            if alert is None:
                alert = alerts[check.target] = AlertState(rule.name, check.target, since=now)
            alert.labels = {**rule.labels, "rule": rule.name, "target": check.target}
            if check.target in returned:
                alert.seen = now
            for change in alert.observe(check, rule, now):
                self._act(rule, alert, change, now, notices)
        for (reason, state), group in notices.items():
            self.notify(rule, Notice(rule.name, state, reason, tuple(group), now))

    def _missing(
        self, rule: Rule, alerts: dict[str, AlertState], returned: set[str], now: float
    ) -> list[Check]:
        """No-data checks for targets the rule stopped returning; long-gone ones are forgotten.

        A series that disappears is "no data" (the rule's ``nodata`` state),
        not silently OK; after ``FORGET_AFTER`` it is dropped, with a record.
        """
        checks = []
        forget = now - max(FORGET_AFTER, 10 * rule.interval)
        for target, alert in list(alerts.items()):
            if target in returned:
                continue
            if alert.seen < forget:
                del alerts[target]
                self.history.record(
                    now, "state", rule.name, target, alert.shown.name,
                    f"forgotten: not returned by the target since {alert.seen:.0f}",
                    hard=False, forgotten=True,
                )  # fmt: skip
            else:
                checks.append(targets.threshold_check(target, None, rule))
        return checks

    def _act(
        self,
        rule: Rule,
        alert: AlertState,
        change: Change,
        now: float,
        notices: dict[tuple[str, str], list[dict[str, Any]]],
    ) -> None:
        self._dirty = True
        name, target, state = rule.name, alert.target, change.state.name
        if change.kind == "state":
            self.history.record(now, "state", name, target, state, change.message, hard=change.hard)
        elif change.kind == "notify":
            entry = {**alert.as_json(), "state": state, "message": change.message}
            silence = self.silences.silencing(alert.labels, now)
            if silence is not None:
                self.history.record(
                    now, "notification", name, target, state, change.message,
                    reason=change.reason, suppressed=f"silence {silence.id}: {silence.reason}",
                )  # fmt: skip
            else:
                notices.setdefault((change.reason, state), []).append(entry)
        elif change.kind == "heal":
            self._start_heal(rule, alert, now)
        else:  # healed, escalate
            phase = "healed" if change.kind == "healed" else "escalated"
            self.history.record(now, "heal", name, target, state, change.message, phase=phase)

    def notify(self, rule: Rule, notice: Notice) -> None:
        """Record one grouped notice and queue it to every route of the rule."""
        for alert in notice.alerts:
            self.history.record(
                notice.ts, "notification", rule.name, alert["target"], notice.state,
                alert["message"], reason=notice.reason, routes=list(rule.notify),
                group=len(notice.alerts),
            )  # fmt: skip
        for route in rule.notify:
            self.dispatcher.submit(notice, self.ruleset.notifiers[route])

    async def _delivered(self, delivery: Delivery) -> None:
        notice = delivery.notice
        message = (
            "sent" if delivery.ok else f"failed after {delivery.attempts} tries: {delivery.error}"
        )
        self.history.record(
            self.clock(), "delivery", notice.rule, ",".join(a["target"] for a in notice.alerts),
            notice.state, f"{delivery.notifier}: {message}", notifier=delivery.notifier,
            ok=delivery.ok, attempts=delivery.attempts, reason=notice.reason,
        )  # fmt: skip

    def _start_heal(self, rule: Rule, alert: AlertState, now: float) -> None:
        key = (rule.name, alert.target)
        if key in self._heals:  # never two heals of one target at once
            alert.heal_done(False, "the previous heal is still running")
            return
        self._heals.add(key)
        self.history.record(
            now, "heal", rule.name, alert.target, "WARNING",
            f"healing: {rule.heal or rule.heal_webhook}", phase="start",
        )  # fmt: skip
        task = asyncio.create_task(self._heal(rule, alert))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heal(self, rule: Rule, alert: AlertState) -> None:
        key = (rule.name, alert.target)
        try:
            if rule.heal:
                env = {"VIGIL_RULE": rule.name, "VIGIL_TARGET": alert.target,
                       "VIGIL_MESSAGE": alert.message}  # fmt: skip
                result = await commands.run(rule.heal, rule.heal_timeout, env=env)
                ok, detail, output = result.ok, result.describe(), result.output
            else:
                body = {"rule": rule.name, "target": alert.target, "message": alert.message}
                self._client = self._client or httpx.AsyncClient()
                try:
                    response = await self._client.post(
                        str(rule.heal_webhook), content=orjson.dumps(body),
                        headers={"content-type": "application/json"}, timeout=rule.heal_timeout,
                    )  # fmt: skip
                    ok, detail = response.is_success, f"HTTP {response.status_code}"
                    output = response.text[:2000]
                except httpx.HTTPError as e:
                    ok, detail, output = False, f"{type(e).__name__}: {e}", ""
        finally:
            self._heals.discard(key)
        self.heals_run.labels("ok" if ok else "failed").inc()
        alert.heal_done(ok, detail)
        self.history.record(
            self.clock(), "heal", rule.name, alert.target, alert.shown.name,
            f"heal {'finished' if ok else 'failed'}: {detail}", phase="done", ok=ok,
            output=output[-2000:],
        )  # fmt: skip
        if not ok:
            self._due[rule.name] = self.clock()  # escalate at once
            self._wake.set()

    # -- user actions -----------------------------------------------------------

    def acknowledge(self, rule: str, target: str, reason: str) -> AlertState:
        """Acknowledge a problem: no repeats until it changes; ``KeyError`` if unknown."""
        alert = self.alerts[rule][target]
        alert.acknowledged = True
        self._dirty = True
        self.history.record(self.clock(), "ack", rule, target, alert.shown.name, reason)
        return alert

    def add_silence(self, matchers: dict[str, str], until: float, reason: str) -> dict[str, Any]:
        """A new silence, recorded in history; ``ValueError`` when it makes no sense."""
        silence = self.silences.add(matchers, until, reason, self.clock())
        target = ",".join(f"{k}={v}" for k, v in matchers.items())
        self.history.record(
            self.clock(), "silence", matchers.get("rule", "*"), target, "", reason,
            id=silence.id, until=until,
        )  # fmt: skip
        return silence.as_json()

    def remove_silence(self, id: str) -> None:
        """End a silence now; ``KeyError`` if unknown."""
        silence = self.silences.remove(id, self.clock())
        self.history.record(
            self.clock(), "silence", silence.matchers.get("rule", "*"), id, "", "ended", id=id
        )

    def current(self) -> list[dict[str, Any]]:
        """Every alert, worst first, with whether a silence covers it."""
        now = self.clock()
        out = []
        for alert in (a for alerts in self.alerts.values() for a in alerts.values()):
            doc = alert.as_json()
            silence = self.silences.silencing(alert.labels, now)
            doc["silenced"] = silence is not None
            doc["silence"] = silence.id if silence else None
            out.append(doc)
        order = {"CRITICAL": 0, "UNKNOWN": 1, "WARNING": 2, "OK": 3}
        return sorted(out, key=lambda d: (order[d["state"]], d["rule"], d["target"]))

    async def check(self, name: str) -> dict[str, Any]:
        """Evaluate one rule now without acting: its checks and the changes they would make."""
        rule = self.ruleset.rule(name)
        if rule is None:
            raise KeyError(name)
        now = self.clock()
        result = (await self.results([rule], now))[name]
        if isinstance(result, str):
            return {"rule": name, "error": result, "checks": []}
        out = []
        for c in result:
            known = self.alerts.get(name, {}).get(c.target)
            alert = copy.deepcopy(known) if known else AlertState(name, c.target)
            changes = alert.observe(c, rule, now)
            out.append(
                {"target": c.target, "state": c.status.name, "value": c.value,
                 "message": c.message,
                 "would": [f"{ch.kind} {ch.reason or ch.state.name}" for ch in changes]}
            )  # fmt: skip
        return {"rule": name, "checks": out, "notify": list(rule.notify)}

    def report(self, since: float) -> dict[str, Any]:
        """The interruption report since ``since`` (epoch seconds)."""
        now = self.clock()
        doc = report(self.history.query(int(since), int(now) + 1), now)
        doc["since"] = since
        return doc

    # -- persistence -------------------------------------------------------------

    def _save(self) -> None:
        self._dirty = False
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        doc = {"alerts": [a.to_dict() for alerts in self.alerts.values() for a in alerts.values()],
               "heartbeats": self.heartbeats.last}  # fmt: skip
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.state_path)

    def _restore(self) -> None:
        if not self.state_path.exists():
            return
        try:
            doc = json.loads(self.state_path.read_text())
            for raw in doc["alerts"]:
                alert = AlertState.from_dict(raw)
                self.alerts.setdefault(alert.rule, {})[alert.target] = alert
            # a source that died while the node was down is still missed after the restart
            self.heartbeats.last.update(doc["heartbeats"])
        except (ValueError, KeyError, TypeError) as e:
            log.warning("alert states not restored from %s: %s", self.state_path, e)
