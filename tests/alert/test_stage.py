"""The alert stage against a real embedded store, real commands and a real webhook receiver."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.alert.receivers import Webhook, webhook
from vigil.alert.rules import RuleFileError
from vigil.alert.stage import AlertStage
from vigil.bus.destination import Destination, Overflow
from vigil.bus.fanout import Bus
from vigil.model import POINTS_SCHEMA, logs_from_rows
from vigil.settings import AlertSettings, QuerySettings
from vigil.store.chdb_engine import open_embedded
from vigil.store.retention import StoragePolicy
from vigil.store.sqlstore import SqlStore
from vigil.telemetry import Telemetry

NOW = int(time.time()) // 60 * 60


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlStore]:
    s = open_embedded(tmp_path_factory.mktemp("alert_store"), StoragePolicy.from_files("", ""))
    yield s
    s.close()


def points(values: dict[str, float], ts: int) -> pa.Table:
    return pa.table(
        [pa.array(list(values)), pa.array([ts] * len(values), pa.uint32()),
         pa.array(list(values.values()), pa.float64())],
        schema=POINTS_SCHEMA,
    )  # fmt: skip


@pytest.fixture
async def hook() -> AsyncIterator[Webhook]:
    async with webhook() as h:
        yield h


def make_stage(
    tmp_path: Path,
    storage: SqlStore,
    rules: str,
    hook: Webhook | None = None,
    bus: Bus | None = None,
) -> AlertStage:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    url = hook.url if hook else "http://127.0.0.1:9/"
    notifier = (
        f'[notifier.hook]\ntype = "webhook"\nurl = "{url}"\nattempts = 2\nretry_backoff = "0s"\n'
    )
    (rules_dir / "rules.toml").write_text(rules + "\n" + notifier)
    stage = AlertStage(
        AlertSettings(), QuerySettings(), storage, bus or Bus(), Telemetry("t"), tmp_path,
        clock=lambda: NOW,
    )  # fmt: skip
    stage.reload()
    return stage


async def round_(stage: AlertStage, now: float) -> None:
    await stage.evaluate(list(stage.ruleset.rules), now)


async def sent(stage: AlertStage) -> None:
    """Wait until queued notices went out and history is stored."""
    task = asyncio.create_task(stage.dispatcher.run())
    await asyncio.wait_for(stage.dispatcher.drain(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await stage.history.flush()


LOAD_RULE = """
[[rule]]
name = "api-load"
target = "servers.*.load"
warning = 3
critical = 5
interval = "10s"
notify = ["hook"]
labels = {team = "api"}
"""


async def test_threshold_crossings_become_one_grouped_notice(
    tmp_path: Path, storage: SqlStore, hook: Webhook
) -> None:
    storage.write_points(
        points({"servers.web1.load": 7, "servers.web2.load": 9, "servers.web3.load": 1}, NOW - 5)
    )
    stage = make_stage(tmp_path, storage, LOAD_RULE, hook)
    await round_(stage, NOW)
    await sent(stage)
    states = {a["target"]: a["state"] for a in stage.current()}
    assert states == {"servers.web1.load": "CRITICAL", "servers.web2.load": "CRITICAL",
                      "servers.web3.load": "OK"}  # fmt: skip
    (notice,) = await hook.wait(1)
    assert notice["reason"] == "problem" and len(notice["alerts"]) == 2
    assert notice["alerts"][0]["labels"]["team"] == "api"
    history = stage.history.query(NOW - 60, NOW + 60, "api-load")
    kinds = [r["kind"] for r in history]
    assert kinds.count("state") == 2 and kinds.count("notification") == 2
    assert kinds.count("delivery") == 1
    # graphs see the history as events
    assert any("api-load" in e.what for e in storage.events(NOW - 60, NOW + 60, ["alert"]))


async def test_a_target_that_errors_is_unknown_with_the_error(
    tmp_path: Path, storage: SqlStore
) -> None:
    stage = make_stage(
        tmp_path, storage, '[[rule]]\nname = "bad"\ntarget = "noSuchFunction(a.b)"\ncritical = 1\n'
    )
    await round_(stage, NOW)
    (alert,) = stage.current()
    assert alert["state"] == "UNKNOWN" and "unknown function noSuchFunction" in alert["message"]


async def test_no_data_follows_the_rules_nodata(tmp_path: Path, storage: SqlStore) -> None:
    stage = make_stage(
        tmp_path, storage, '[[rule]]\nname = "gone"\ntarget = "constantLine(1)"\ncritical = 5\n'
        '[[rule]]\nname = "quiet"\ntarget = "transformNull(servers.none.load)"\ncritical = 5\nnodata = "critical"\n',
    )  # fmt: skip
    await round_(stage, NOW)
    assert {a["rule"]: a["state"] for a in stage.current()} == {"gone": "OK"}


async def test_heartbeat_loss_and_return(tmp_path: Path, storage: SqlStore) -> None:
    stage = make_stage(
        tmp_path, storage, '[[rule]]\nname = "alive"\nheartbeat = "web*"\ntimeout = "60s"\n'
    )
    beat = logs_from_rows([{"ts": (NOW - 10) * 1000, "host": "web1", "app": "shop", "kind": "heartbeat"},
                           {"ts": (NOW - 10) * 1000, "host": "db1", "app": "pg", "kind": "heartbeat"}])  # fmt: skip
    stage.heartbeats.observe(beat)
    await round_(stage, NOW)
    assert [(a["target"], a["state"]) for a in stage.current()] == [("web1/shop", "OK")]
    await round_(stage, NOW + 120)
    (alert,) = stage.current()
    assert (
        alert["state"] == "CRITICAL" and "no heartbeat from web1/shop for 130s" in alert["message"]
    )
    stage.heartbeats.observe(
        logs_from_rows(
            [{"ts": (NOW + 125) * 1000, "host": "web1", "app": "shop", "kind": "heartbeat"}]
        )
    )
    await round_(stage, NOW + 130)
    assert stage.current()[0]["state"] == "OK"
    stage._save()
    restarted = make_stage(
        tmp_path, storage, '[[rule]]\nname = "alive"\nheartbeat = "web*"\ntimeout = "60s"\n'
    )
    await round_(restarted, NOW + 300)  # web1 went silent while the node was down
    assert restarted.current()[0]["state"] == "CRITICAL"


@pytest.mark.skipif(
    not Path("/usr/lib/nagios/plugins/check_dummy").exists(), reason="no monitoring-plugins"
)
async def test_nagios_plugins_set_the_state_and_store_perfdata(
    tmp_path: Path, storage: SqlStore
) -> None:
    bus = Bus()
    seen = bus.add(Destination("seen", 1 << 20, Overflow.DROP_HEAD))
    stage = make_stage(
        tmp_path, storage,
        '[[rule]]\nname = "load"\ncheck = "check_load -w 1000,1000,1000 -c 2000,2000,2000"\n'
        '[[rule]]\nname = "fire"\ncheck = "check_dummy 2 \'disk on fire\'"\n'
        '[[rule]]\nname = "slow"\ncheck = "sleep 10"\ntimeout = "1s"\n',
        bus=bus,
    )  # fmt: skip
    await round_(stage, NOW)
    by_rule = {a["rule"]: a for a in stage.current()}
    assert by_rule["load"]["state"] == "OK" and by_rule["load"]["message"].startswith("LOAD OK")
    assert (
        by_rule["fire"]["state"] == "CRITICAL"
        and by_rule["fire"]["message"] == "CRITICAL: disk on fire"
    )
    assert by_rule["slow"]["state"] == "UNKNOWN" and "timed out" in by_rule["slow"]["message"]
    delivery = await seen.get(timeout=1)
    assert delivery is not None
    assert "nagios.load.load1" in delivery.batch.column("path").to_pylist()


def heal_rule(name: str, command: str) -> str:
    return f"""
[[rule]]
name = "{name}"
target = "servers.{name}.errors"
critical = 5
heal = "{command}"
heal_cooldown = "10m"
heal_grace = "30s"
notify = ["hook"]
"""


async def heal_finished(stage: AlertStage) -> None:
    async with asyncio.timeout(10):
        while stage._tasks:
            await asyncio.sleep(0.02)


async def test_a_heal_that_works_wakes_nobody(
    tmp_path: Path, storage: SqlStore, hook: Webhook
) -> None:
    marker = tmp_path / "healed"
    storage.write_points(points({"servers.heals.errors": 9}, NOW - 5))
    stage = make_stage(tmp_path, storage, heal_rule("heals", f"touch {marker}"), hook)
    await round_(stage, NOW)
    (alert,) = stage.current()
    assert alert["state"] == "WARNING" and alert["healing"]
    await heal_finished(stage)
    assert marker.exists()
    storage.write_points(points({"servers.heals.errors": 0}, NOW + 15))
    await round_(stage, NOW + 20)
    assert stage.current()[0]["state"] == "OK" and not stage.current()[0]["healing"]
    await sent(stage)
    assert hook.bodies == []
    phases = [
        r["data"].get("phase")
        for r in stage.history.query(NOW - 60, NOW + 60, "heals")
        if r["kind"] == "heal"
    ]
    assert phases == ["start", "done", "healed"]
    stage.clock = lambda: NOW + 60
    (heals,) = [r for r in stage.report(NOW - 3600)["rules"] if r["rule"] == "heals"]
    assert (heals["healed"], heals["woke"], heals["total_seconds"]) == (1, 0, 20)


async def test_a_failing_heal_escalates_and_does_not_loop(
    tmp_path: Path, storage: SqlStore, hook: Webhook
) -> None:
    storage.write_points(points({"servers.fails.errors": 9}, NOW - 5))
    stage = make_stage(tmp_path, storage, heal_rule("fails", "sh -c 'echo no luck; exit 3'"), hook)
    await round_(stage, NOW)
    await heal_finished(stage)
    await round_(stage, NOW + 10)
    await round_(stage, NOW + 20)
    await sent(stage)
    (notice,) = await hook.wait(1)
    assert (
        notice["state"] == "CRITICAL" and "heal failed (exit 3)" in notice["alerts"][0]["message"]
    )
    heals = [r for r in stage.history.query(NOW - 60, NOW + 60, "fails") if r["kind"] == "heal"]
    assert [r["data"]["phase"] for r in heals] == ["start", "done", "escalated"]
    assert "no luck" in heals[1]["data"]["output"]


async def test_within_the_cooldown_a_problem_escalates_at_once(
    tmp_path: Path, storage: SqlStore, hook: Webhook
) -> None:
    storage.write_points(points({"servers.cools.errors": 9}, NOW - 5))
    stage = make_stage(tmp_path, storage, heal_rule("cools", "true"), hook)
    await round_(stage, NOW)
    await heal_finished(stage)
    storage.write_points(points({"servers.cools.errors": 0}, NOW + 5))
    await round_(stage, NOW + 10)  # healed
    storage.write_points(points({"servers.cools.errors": 9}, NOW + 25))
    await round_(stage, NOW + 30)
    assert not stage._tasks and stage.current()[0]["state"] == "CRITICAL"
    await sent(stage)
    (notice,) = await hook.wait(1)
    assert "no heal: one ran 30s ago" in notice["alerts"][0]["message"]


async def test_silences_mute_notices_but_keep_them_in_history(
    tmp_path: Path, storage: SqlStore, hook: Webhook
) -> None:
    storage.write_points(points({"servers.web1.load": 7, "servers.web2.load": 9}, NOW - 5))
    stage = make_stage(tmp_path, storage, LOAD_RULE, hook)
    stage.add_silence({"target": "servers.web1.*"}, NOW + 3600, "maintenance")
    await round_(stage, NOW)
    await sent(stage)
    (notice,) = await hook.wait(1)
    assert [a["target"] for a in notice["alerts"]] == ["servers.web2.load"]
    silenced = {a["target"]: a["silenced"] for a in stage.current()}
    assert (silenced["servers.web1.load"], silenced["servers.web2.load"]) == (True, False)
    suppressed = [
        r
        for r in stage.history.query(NOW - 60, NOW + 60, "api-load")
        if r["data"].get("suppressed")
    ]
    assert [r["target"] for r in suppressed] == ["servers.web1.load"]
    # silences survive a restart
    again = make_stage(tmp_path, storage, LOAD_RULE, hook)
    assert [s.reason for s in again.silences.active(NOW)] == ["maintenance"]


async def test_a_bad_rule_file_is_rejected_whole_and_the_old_rules_stay(
    tmp_path: Path, storage: SqlStore
) -> None:
    stage = make_stage(tmp_path, storage, LOAD_RULE)
    (tmp_path / "rules" / "more.toml").write_text(
        '[[rule]]\nname = "x"\nheartbeat = "a"\n\n[[rule]]\nname = "y"\ntarget = "a"\n'
    )
    with pytest.raises(RuleFileError, match=r"more.toml:7: rule 'y' needs a warning or a critical"):
        stage.reload()
    assert [r.name for r in stage.ruleset.rules] == ["api-load"]


async def test_alert_states_survive_a_restart(
    tmp_path: Path, storage: SqlStore, hook: Webhook
) -> None:
    storage.write_points(points({"servers.web1.load": 7}, NOW - 5))
    stage = make_stage(tmp_path, storage, LOAD_RULE, hook)
    await round_(stage, NOW)
    stage._save()
    again = make_stage(tmp_path, storage, LOAD_RULE, hook)
    await round_(again, NOW + 10)  # still critical: no second page after the restart
    await sent(again)
    assert again.current()[0]["state"] == "CRITICAL" and hook.bodies == []


async def test_cube_and_log_search_targets(tmp_path: Path, storage: SqlStore) -> None:
    rows: list[dict[str, Any]] = [
        {"ts": (NOW - 30) * 1000 + i, "host": f"web{i % 2}", "app": "shop", "kind": "atomic",
         "name": "checkout", "duration_ms": 900.0 if i % 2 else 10.0, "status": 0, "uid": 900 + i}
        for i in range(20)
    ] + [
        {"ts": (NOW - 20) * 1000 + i, "host": "web0", "app": "shop", "kind": "line",
         "message": f"payment timeout {i}", "uid": 990 + i}
        for i in range(7)
    ]  # fmt: skip
    storage.logs.write(logs_from_rows(rows))
    stage = make_stage(
        tmp_path, storage,
        '[[rule]]\nname = "p99"\ncube = {measure = "p99", app = "shop", name = "checkout", group_by = ["host"]}\n'
        'warning = 100\ncritical = 500\n'
        '[[rule]]\nname = "timeouts"\nsearch = {q = "timeout", app = "shop"}\nwarning = 5\ncritical = 50\n',
    )  # fmt: skip
    await round_(stage, NOW)
    states = {(a["rule"], a["target"]): (a["state"], a["value"]) for a in stage.current()}
    assert states[("p99", "host=web1")][0] == "CRITICAL"
    assert states[("p99", "host=web0")][0] == "OK"
    assert states[("timeouts", "timeout app=shop")] == ("WARNING", 7.0)


async def test_check_evaluates_without_acting(
    tmp_path: Path, storage: SqlStore, hook: Webhook
) -> None:
    storage.write_points(points({"servers.web1.load": 7}, NOW - 5))
    stage = make_stage(tmp_path, storage, LOAD_RULE, hook)
    doc = await stage.check("api-load")
    web1 = next(c for c in doc["checks"] if c["target"] == "servers.web1.load")
    assert web1["state"] == "CRITICAL" and web1["would"] == ["state CRITICAL", "notify problem"]
    assert stage.current() == [] and stage.history._pending == type(stage.history._pending)()


async def test_a_heal_webhook_is_posted_the_alert(
    tmp_path: Path, storage: SqlStore, hook: Webhook
) -> None:
    storage.write_points(points({"servers.hooked.errors": 9}, NOW - 5))
    rule = heal_rule("hooked", "x").replace('heal = "x"', f'heal_webhook = "{hook.url}"')
    stage = make_stage(tmp_path, storage, rule)
    await round_(stage, NOW)
    await heal_finished(stage)
    (body,) = await hook.wait(1)
    await stage.aclose()
    assert body == {"rule": "hooked", "target": "servers.hooked.errors",
                    "message": "servers.hooked.errors = 9 >= 5"}  # fmt: skip
    assert stage.current()[0]["healing"]
    await stage.history.flush()
    done = [
        r
        for r in stage.history.query(NOW - 60, NOW + 60, "hooked")
        if r["data"].get("phase") == "done"
    ]
    assert done[0]["data"]["ok"] and "HTTP 200" in done[0]["message"]


async def test_a_target_that_stops_being_returned_is_no_data_then_forgotten(
    tmp_path: Path, storage: SqlStore
) -> None:
    storage.write_points(points({"gone.a.load": 9, "gone.b.load": 9}, NOW - 5))
    stage = make_stage(
        tmp_path, storage, '[[rule]]\nname = "gone"\ntarget = "currentAbove(gone.*.load, 5)"\n'
        'critical = 5\nwindow = "1m"\n',
    )  # fmt: skip
    await round_(stage, NOW)
    assert {a["target"]: a["state"] for a in stage.current()} == {
        "gone.a.load": "CRITICAL", "gone.b.load": "CRITICAL"}  # fmt: skip
    storage.write_points(points({"gone.a.load": 9, "gone.b.load": 1}, NOW + 55))
    await round_(stage, NOW + 60)  # b is no longer above 5: the target leaves it out
    states = {a["target"]: (a["state"], a["message"]) for a in stage.current()}
    assert states["gone.a.load"][0] == "CRITICAL"
    assert states["gone.b.load"] == ("UNKNOWN", "gone.b.load: no data in the last 60s")
    await round_(stage, NOW + 60 + 3601)
    assert [a["target"] for a in stage.current()] == []  # a too: no data in the window, then gone
    await stage.history.flush()
    forgotten = [
        r for r in stage.history.query(NOW, NOW + 7200, "gone") if r["data"].get("forgotten")
    ]
    assert {r["target"] for r in forgotten} == {"gone.a.load", "gone.b.load"}


async def test_a_stage_standing_by_evaluates_nothing_until_it_is_active(
    tmp_path: Path, storage: SqlStore
) -> None:
    storage.write_points(points({"standby.web1.load": 7}, NOW - 5))
    rule = LOAD_RULE.replace("servers.*.load", "standby.*.load")
    stage = make_stage(tmp_path, storage, rule)
    now, active = [NOW], [False]  # another process holds the alert lease
    stage.clock, stage.active = lambda: now[0], lambda: active[0]
    task = asyncio.create_task(stage._schedule())
    try:
        await asyncio.sleep(0.3)
        assert stage.current() == []
        active[0] = True  # the lease is this process's again
        now[0] += 10  # the rule's next round
        for _ in range(40):
            if stage.current():
                break
            await asyncio.sleep(0.05)
        assert [a["state"] for a in stage.current()] == ["CRITICAL"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
