import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

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
    write(
        tmp_path,
        "api.yaml",
        """
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
""",
    )
    (yaml_rule,) = load_dir(tmp_path).rules
    (tmp_path / "api.yaml").unlink()
    write(tmp_path, "api.toml", ISSUE_EXAMPLE)
    (toml_rule,) = load_dir(tmp_path).rules
    assert {**vars(yaml_rule), "file": "", "line": 0} == {**vars(toml_rule), "file": "", "line": 0}


def test_every_source_kind_parses() -> None:
    ruleset = parse_file(
        Path("all.toml"),
        """
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
""",
    )
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
        (
            '\n\n[[rule]]\nname = "a"\ntarget = "x"\ncritical = 1\nnotify = ["pager"]\n',
            3,
            "not a notifier",
        ),
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
    write(
        tmp_path,
        "notifiers.toml",
        '[notifier.ops]\ntype = "webhook"\nurl = "http://127.0.0.1:1/"\n',
    )
    assert [r.name for r in load_dir(tmp_path).rules] == ["x"]


def test_other_files_and_a_missing_directory_are_no_rules(tmp_path: Path) -> None:
    write(tmp_path, "rules.json", "{not toml}")  # the extraction rules' runtime file
    assert load_dir(tmp_path).rules == ()
    assert load_dir(tmp_path / "missing").rules == ()


names = st.from_regex(r"[a-z][a-z0-9_.-]{0,15}", fullmatch=True)
rule_docs = st.fixed_dictionaries(
    {
        "name": names,
        "target": st.sampled_from(["a.b", "servers.*.load", "sumSeries(a.{b,c}.*)"]),
        "critical": st.integers(0, 10**6),
        "interval": st.sampled_from(["10s", "1m", "5min", "1h30m", "90"]),
        "labels": st.dictionaries(names, st.text("abc xyz-", max_size=8), max_size=3),
    },
    optional={"warning": st.integers(-100, 0), "attempts": st.integers(1, 5),
              "reduce": st.sampled_from(["last", "avg", "max"])},
)  # fmt: skip


def toml_of(docs: list[dict[str, Any]]) -> str:
    out = []
    for doc in docs:
        out.append("[[rule]]")
        for key, value in doc.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
                out.append(f"{key} = {{{inner}}}")
            elif key == "interval" and value.isdigit():
                out.append(f"{key} = {value}")
            else:
                out.append(f"{key} = {json.dumps(value)}")
    return "\n".join(out) + "\n"


@given(st.lists(rule_docs, min_size=1, max_size=4, unique_by=lambda d: d["name"]))
def test_toml_and_yaml_of_the_same_rules_load_the_same(docs: list[dict[str, Any]]) -> None:
    from_toml = parse_file(Path("r.toml"), toml_of(docs)).rules
    yaml_docs = [{**d, "interval": int(d["interval"]) if d["interval"].isdigit() else d["interval"]}
                 for d in docs]  # fmt: skip
    from_yaml = parse_file(Path("r.yaml"), yaml.safe_dump({"rule": yaml_docs})).rules
    strip = lambda r: {**vars(r), "file": "", "line": 0}  # noqa: E731
    assert [strip(r) for r in from_toml] == [strip(r) for r in from_yaml]
    assert [r.name for r in from_toml] == [d["name"] for d in docs]
    assert [dict(r.labels) for r in from_toml] == [d["labels"] for d in docs]


@given(st.text(max_size=300), st.sampled_from(["r.toml", "r.yaml"]))
def test_any_text_loads_or_says_why(text: str, name: str) -> None:
    try:
        parse_file(Path(name), text)
    except RuleFileError as e:
        assert str(e).startswith(name)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1: a\nb: c\n", "unknown top-level key '1'"),
        ("notifier:\n  1: {type: webhook, url: x}\n", "notifier name 1"),
        ("rule:\n  - {1: 2, name: x}\n", "unknown key '1'"),
    ],
)
def test_yaml_keys_that_are_not_strings_are_errors(text: str, problem: str) -> None:
    with pytest.raises(RuleFileError, match=problem):
        parse_file(Path("r.yaml"), text)


keys = st.sampled_from(["rule", "notifier", "name", "target", "critical", "warning", "type",
                        "url", "to", "labels", "cube", "search", "heartbeat", "check", "interval",
                        "notify", "measure", "group_by", "q", "app", "direction", "x"])  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False),
                    st.text("ab*.{}(),", max_size=6), keys)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(["rule", "notifier"]), documents, max_size=2))
def test_any_yaml_structure_loads_or_says_why(doc: dict[str, Any]) -> None:
    try:
        parse_file(Path("r.yaml"), yaml.safe_dump(doc))
    except RuleFileError as e:
        assert str(e).startswith("r.yaml")
