from typing import Any

from vigil.alert.rules import Rule
from vigil.alert.state import AlertState, Change, Check, Status

OK, WARNING, CRITICAL, UNKNOWN = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN


def rule(**kw: Any) -> Rule:
    return Rule(name="r", source="target", spec="x", warning=3, critical=5, interval=10, **kw)


def run(alert: AlertState, r: Rule, statuses: list[Status], t0: float = 0) -> list[list[Change]]:
    """Observe one status per interval; the changes of each check."""
    return [
        alert.observe(Check("x", s, float(s.value), s.name), r, t0 + i * r.interval)
        for i, s in enumerate(statuses)
    ]


def kinds(changes: list[Change]) -> list[str]:
    return [f"{c.kind}:{c.reason or c.state.name}{'' if c.hard else '/soft'}" for c in changes]


def test_a_threshold_crossing_notifies_once_and_its_recovery_once() -> None:
    alert = AlertState("r", "x")
    steps = run(alert, rule(), [OK, WARNING, WARNING, CRITICAL, CRITICAL, OK, OK])
    assert [kinds(s) for s in steps] == [
        [],
        ["state:WARNING", "notify:problem"],
        [],
        ["state:CRITICAL", "notify:problem"],
        [],
        ["state:OK", "notify:recovery"],
        [],
    ]


def test_soft_states_until_attempts_then_hard() -> None:
    alert = AlertState("r", "x")
    steps = run(alert, rule(attempts=3), [CRITICAL, CRITICAL, CRITICAL, CRITICAL])
    assert [kinds(s) for s in steps] == [
        ["state:CRITICAL/soft"], [], ["state:CRITICAL", "notify:problem"], [],
    ]  # fmt: skip
    assert alert.hard and alert.state is CRITICAL


def test_a_soft_problem_that_clears_wakes_nobody() -> None:
    alert = AlertState("r", "x")
    steps = run(alert, rule(attempts=3), [CRITICAL, CRITICAL, OK])
    assert [kinds(s) for s in steps] == [["state:CRITICAL/soft"], [], ["state:OK"]]


def test_for_duration_holds_the_notice_until_the_problem_is_old_enough() -> None:
    alert = AlertState("r", "x")
    steps = run(alert, rule(for_=25), [WARNING, WARNING, WARNING, WARNING])
    # at t=0, 10, 20 the problem is younger than 25 s; at t=30 it is confirmed
    assert [kinds(s) for s in steps] == [
        ["state:WARNING/soft"], [], [], ["state:WARNING", "notify:problem"],
    ]  # fmt: skip


def test_flapping_notifies_once_and_mutes_until_it_settles() -> None:
    alert = AlertState("r", "x")
    r = rule()
    flappy = [OK, CRITICAL] * 8
    notices = [c for s in run(alert, r, flappy) for c in s if c.kind == "notify"]
    reasons = [c.reason for c in notices]
    assert reasons.count("flapping") == 1
    first_flap = reasons.index("flapping")
    assert set(reasons[first_flap + 1 :]) <= {"flapping"}  # muted while flapping
    assert alert.flapping
    calm = run(alert, r, [CRITICAL] * 20, t0=1000)
    calm_notices = [c.reason for s in calm for c in s if c.kind == "notify"]
    assert "flap-end" in calm_notices and not alert.flapping


def test_repeat_renotifies_until_acknowledged() -> None:
    alert = AlertState("r", "x")
    r = rule(repeat=30)
    steps = run(alert, r, [CRITICAL] * 8)
    assert sum("notify:repeat" in kinds(s) for s in steps) == 2  # at t=30 and t=60
    alert.acknowledged = True
    later = run(alert, r, [CRITICAL] * 8, t0=100)
    assert not any(c.kind == "notify" for s in later for c in s)
    # a new problem level clears the acknowledgement
    assert "notify:problem" in kinds(run(alert, r, [WARNING], t0=200)[0])
    assert not alert.acknowledged


def healing_rule(**kw: Any) -> Rule:
    return rule(heal="true", heal_cooldown=600, heal_grace=60, **kw)


def test_heal_instead_of_a_page_and_healed_when_it_clears() -> None:
    alert = AlertState("r", "x")
    r = healing_rule()
    steps = run(alert, r, [CRITICAL, CRITICAL, OK])
    assert kinds(steps[0]) == ["state:CRITICAL", "heal:WARNING"]
    assert alert.shown is WARNING or not alert.healing
    assert steps[1] == []  # within its grace period
    assert kinds(steps[2]) == ["healed:OK", "state:OK"]  # nobody was paged, so no recovery notice
    assert alert.shown is OK and not alert.healing


def test_healing_shows_as_warning() -> None:
    alert = AlertState("r", "x")
    run(alert, healing_rule(), [CRITICAL])
    assert alert.healing and alert.shown is WARNING and alert.as_json()["state"] == "WARNING"


def test_still_critical_after_the_grace_period_escalates() -> None:
    alert = AlertState("r", "x")
    steps = run(alert, healing_rule(), [CRITICAL] * 8)
    escalated = [i for i, s in enumerate(steps) if "notify:problem" in kinds(s)]
    assert escalated == [6]  # t=60, the grace period
    assert kinds(steps[6])[0] == "escalate:CRITICAL" and "after the heal" in steps[6][0].message


def test_a_failed_heal_escalates_at_the_next_check() -> None:
    alert = AlertState("r", "x")
    r = healing_rule()
    run(alert, r, [CRITICAL])
    alert.heal_done(False, "exit 1")
    (changes,) = run(alert, r, [CRITICAL], t0=10)
    assert kinds(changes) == ["escalate:CRITICAL", "notify:problem"]
    assert "heal failed (exit 1)" in changes[-1].message


def test_no_second_heal_within_the_cooldown() -> None:
    alert = AlertState("r", "x")
    r = healing_rule()
    run(alert, r, [CRITICAL, OK])  # healed at t=10
    (again,) = run(alert, r, [CRITICAL], t0=300)
    assert kinds(again) == ["state:CRITICAL", "notify:problem"]
    assert "no heal: one ran 300s ago" in again[-1].message
    run(alert, r, [OK], t0=310)
    (after,) = run(alert, r, [CRITICAL], t0=700)  # the cooldown is over
    assert kinds(after) == ["state:CRITICAL", "heal:WARNING"]


def test_saved_and_restored_state_carries_on() -> None:
    alert = AlertState("r", "x")
    run(alert, rule(attempts=2), [CRITICAL, CRITICAL, WARNING])
    copy = AlertState.from_dict(alert.to_dict())
    assert copy == alert
