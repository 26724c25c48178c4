from pathlib import Path

import pytest

from vigil.alert.rules import RuleFileError, load_dir, parse_file

ISSUE_EXAMPLE = """
[[rule]]
name = "api-load"
target = "servers.*.load"          # render expression; one alert per resulting series
warning = 3
critical = 5
interval = "10s"
for = "0s"
heal = "systemctl restart api"      # optional command run on CRITICAL
heal_cooldown = "10m"
notify = ["oncall-email"]

[notifier.oncall-email]
type = "email"
to = ["oncall@example.com"]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_the_documented_rule_form_loads(tmp_path: Path) -> None:
    write(tmp_path, "api.toml", ISSUE_EXAMPLE)
    ruleset = load_dir(tmp_path)
    rule = ruleset.rules[0]
    assert (rule.name, rule.source, rule.spec) == ("api-load", "target", "servers.*.load")
    assert (rule.warning, rule.critical, rule.direction) == (3, 5, "above")
    assert (rule.interval, rule.for_, rule.heal_cooldown) == (10, 0, 600)
    assert rule.heal == "systemctl restart api" and rule.heals
    assert ruleset.notifiers["oncall-email"].options["to"] == ["oncall@example.com"]


def test_yaml_is_the_same_rules(tmp_path: Path) -> None:
    write(tmp_path, "api.yaml", """
rule:
  - name: api-load
    target: servers.*.load
    warning: 3
    critical: 5
    interval: 10s
    heal: systemctl restart api
    heal_cooldown: 10m
    notify: [oncall-email]
notifier:
  oncall-email:
    type: email
    to: [oncall@example.com]
""")
    (yaml_rule,) = load_dir(tmp_path).rules
    (tmp_path / "api.yaml").unlink()
    write(tmp_path, "api.toml", ISSUE_EXAMPLE)
    (toml_rule,) = load_dir(tmp_path).rules
    assert {**vars(yaml_rule), "file": "", "line": 0} == {**vars(toml_rule), "file": "", "line": 0}


def test_every_source_kind_parses() -> None:
    ruleset = parse_file(Path("all.toml"), """
[[rule]]
name = "p99"
cube = {measure = "p99", app = "shop", group_by = ["host"]}
critical = 500
[[rule]]
name = "timeouts"
search = {q = "timeout", app = "shop"}
warning = 10
[[rule]]
name = "alive"
heartbeat = "web*"
timeout = "90s"
[[rule]]
name = "load"
check = "check_load -w 5 -c 10"
[[rule]]
name = "free"
target = "servers.*.disk.free"
direction = "below"
warning = 20
critical = 10
""")
    by_name = {r.name: r for r in ruleset.rules}
    assert by_name["p99"].spec == {"measure": "p99", "app": "shop", "group_by": ["host"]}
    assert by_name["timeouts"].spec == {"q": "timeout", "app": "shop"}
    assert by_name["alive"].timeout == 90
    assert by_name["load"].source == "check"
    assert by_name["free"].direction == "below"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('[[rule]]\nname = "a"\ntarget = "x"\nwarning = 1\ncritical = ', 5, "Invalid value"),
        ('[[rule]]\nname = "a"\ntarget = "x"\nwarnign = 1\n', 4, "unknown key 'warnign'"),
        ('[[rule]]\nname = "a"\n\ntarget = "x"\n', 4, "needs a warning or a critical"),
        ('[[rule]]\nname = "a"\ntarget = "sum(x"\nwarning = 1\n', 3, "target"),
        ('[[rule]]\nname = "a"\ntarget = "x"\nwarning = 1\ninterval = "soon"\n', 5, "duration"),
        ('[[rule]]\nname = "a"\ntarget = "x"\nwarning = 5\ncritical = 1\n', 5, "less severe"),
        ('[[rule]]\nname = "a"\ntarget = "x"\ncheck = "y"\nwarning = 1\n', 4, "exactly one"),
        ('\n\n[[rule]]\nname = "a"\ntarget = "x"\ncritical = 1\nnotify = ["pager"]\n', 3,
         "not a notifier"),
        ('[notifier.hook]\ntype = "pigeon"\n', 2, "use one of"),
        ('[[rule]]\nname = "a"\ncube = {measure = "p42"}\ncritical = 1\n', 3, "p42"),
    ],
)
def test_a_bad_file_names_its_line_and_problem(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(RuleFileError) as e:
        load_dir(tmp_path)
    assert (e.value.path, e.value.line) == (path, line)
    assert problem in str(e.value) and str(e.value).startswith(f"{path}:{line}: ")


def test_a_bad_yaml_file_names_its_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.yml", "rule:\n  - name: a\n    target: x\n    warning: [1\n")
    with pytest.raises(RuleFileError) as e:
        load_dir(tmp_path)
    assert e.value.line is not None and e.value.line >= 4
    write(tmp_path, "bad.yml", "rule:\n  - name: a\n    target: x\n    critical: 1\n    for: x\n")
    with pytest.raises(RuleFileError, match=r"bad.yml:5: .*duration"):
        load_dir(tmp_path)


def test_a_rule_name_used_in_two_files_names_both(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", '[[rule]]\nname = "x"\nheartbeat = "web*"\n')
    write(tmp_path, "b.toml", '\n[[rule]]\nname = "x"\nheartbeat = "db*"\n')
    with pytest.raises(RuleFileError, match=r"b.toml:2: rule 'x' is also defined at .*a.toml:1"):
        load_dir(tmp_path)


def test_routes_may_name_notifiers_of_other_files(tmp_path: Path) -> None:
    write(tmp_path, "rules.toml", '[[rule]]\nname = "x"\nheartbeat = "web*"\nnotify = ["ops"]\n')
    write(tmp_path, "notifiers.toml", '[notifier.ops]\ntype = "webhook"\nurl = "http://127.0.0.1:1/"\n')
    assert [r.name for r in load_dir(tmp_path).rules] == ["x"]


def test_other_files_and_a_missing_directory_are_no_rules(tmp_path: Path) -> None:
    write(tmp_path, "rules.json", "{not toml}")  # the extraction rules' runtime file
    assert load_dir(tmp_path).rules == ()
    assert load_dir(tmp_path / "missing").rules == ()
