from typing import Any

from vigil.alert.history import report

WEEK = 7 * 86400
T0 = 1_763_942_400  # Monday 2025-11-24 00:00 UTC


def rec(
    ts: float, kind: str, rule: str, state: str = "", target: str = "t", **data: Any
) -> dict[str, Any]:
    return {"ts": ts, "kind": kind, "rule": rule, "target": target, "state": state,
            "message": "", "data": data}  # fmt: skip


def test_report_counts_pages_heals_and_durations_noisiest_first() -> None:
    records = [
        rec(T0, "state", "disk", "CRITICAL", hard=True),
        rec(T0, "notification", "disk", "CRITICAL", reason="problem"),
        rec(T0 + 600, "state", "disk", "OK", hard=True),
        rec(T0 + 600, "notification", "disk", "OK", reason="recovery"),
        rec(T0 + WEEK, "state", "disk", "WARNING", hard=True),
        rec(T0 + WEEK, "notification", "disk", "WARNING", reason="problem"),
        rec(T0 + WEEK + 1, "notification", "disk", "WARNING", reason="repeat"),
        rec(T0 + WEEK + 60, "state", "disk", "OK", hard=True),
        rec(T0, "state", "api", "CRITICAL", hard=True),
        rec(T0, "heal", "api", "WARNING", phase="start"),
        rec(T0 + 30, "heal", "api", "OK", phase="healed"),
        rec(T0 + 30, "state", "api", "OK", hard=True),
        rec(T0, "state", "cpu", "CRITICAL", hard=False),  # soft: no incident
        rec(T0, "notification", "cpu", "CRITICAL", reason="problem", suppressed="silence x"),
    ]
    doc = report(records, now=T0 + 2 * WEEK)
    assert [r["rule"] for r in doc["rules"]] == ["disk", "api", "cpu"]
    disk, api, cpu = doc["rules"]
    assert (disk["woke"], disk["notifications"], disk["incidents"]) == (3, 4, 2)
    assert disk["total_seconds"] == 660 and disk["longest_seconds"] == 600
    assert disk["weeks"] == {"2025-W48": 1, "2025-W49": 2}
    assert disk["by_week"] == [
        {"week": "2025-W48", "woke": 1, "healed": 0, "incidents": 1, "seconds": 600},
        {"week": "2025-W49", "woke": 2, "healed": 0, "incidents": 1, "seconds": 60},
    ]
    assert api["by_week"] == [
        {"week": "2025-W48", "woke": 0, "healed": 1, "incidents": 1, "seconds": 30}
    ]
    assert (api["woke"], api["heals"], api["healed"], api["total_seconds"]) == (0, 1, 1, 30)
    assert (cpu["woke"], cpu["suppressed"], cpu["incidents"]) == (0, 1, 0)


def test_an_incident_still_open_lasts_until_now() -> None:
    doc = report([rec(T0, "state", "disk", "CRITICAL", hard=True)], now=T0 + 100)
    assert doc["rules"][0]["total_seconds"] == 100
