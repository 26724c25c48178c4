"""Dashboard files: parsing, the canonical file text, the directory store."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.web.dashboard_files import (
    Dashboard,
    DashboardError,
    DashboardFiles,
    Panel,
    check_name,
    dumps,
    parse,
)

_text = st.text(max_size=40)
_target = st.text(min_size=1, max_size=40).filter(lambda t: t.strip() == t and t != "")
dashboards = st.builds(
    Dashboard,
    title=_text.filter(lambda t: t.strip() != ""),
    panels=st.lists(
        st.builds(Panel, title=_text, targets=st.lists(_target, min_size=1, max_size=4).map(tuple)),
        max_size=5,
    ).map(tuple),
    start=_text.filter(bool),
    until=_text.filter(bool),
    refresh=_text,
    events=_text,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(dashboards)
def test_a_dashboard_survives_its_file(dashboard: Dashboard) -> None:
    text = dumps(dashboard)
    assert parse(json.loads(text)) == dashboard
    assert dumps(parse(json.loads(text))) == text


@given(json_values)
def test_any_json_is_a_dashboard_or_a_dashboard_error(doc: Any) -> None:
    with contextlib.suppress(DashboardError):
        parse(doc)


@given(
    st.fixed_dictionaries(
        {"title": st.just("t")},
        optional={
            "panels": st.lists(
                st.dictionaries(st.sampled_from(["title", "targets", "x"]), json_values)
            ),
            "from": json_values,
            "refresh": json_values,
        },
    )
)
def test_documents_near_a_dashboard_are_parsed_or_refused_with_a_reason(
    doc: dict[str, Any],
) -> None:
    try:
        parse(doc)
    except DashboardError as e:
        assert str(e)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a JSON object"),
        ({"title": ""}, "title must not be empty"),
        ({"title": "x", "colour": "red"}, "unknown key 'colour'; a dashboard has events, from"),
        ({"title": "x", "panels": {}}, "panels must be a list"),
        (
            {"title": "x", "panels": [{"targets": []}]},
            "panels[0].targets must be a list of one or more",
        ),
        ({"title": "x", "panels": [{"targets": ["a"], "y": 1}]}, "panels[0].unknown key 'y'"),
        ({"title": "x", "panels": [{"targets": [" "]}]}, "non-empty strings"),
        ({"title": 3}, "title must be a string"),
    ],
)
def test_mistakes_name_what_to_fix(doc: Any, message: str) -> None:
    with pytest.raises(DashboardError) as e:
        parse(doc)
    assert message in str(e.value)


def test_defaults_and_trimmed_targets() -> None:
    d = parse({"title": "Web", "panels": [{"targets": [" a.b "]}]})
    assert d == Dashboard("Web", (Panel("", ("a.b",)),), "-6h", "now", "", "")


@pytest.mark.parametrize("name", ["", "../etc", "A", "a/b", "a.json", "-x", "x" * 65, "a b"])
def test_names_that_could_leave_the_directory_are_refused(name: str) -> None:
    with pytest.raises(DashboardError, match="dashboard name"):
        check_name(name)


def test_files_are_saved_loaded_listed_and_deleted(tmp_path: Path) -> None:
    files = DashboardFiles(tmp_path / "dashboards")
    assert files.names() == [] and files.load("web") is None
    web = Dashboard("Web", (Panel("CPU", ("servers.*.cpu",)),))
    files.save("web", web)
    files.save("db", Dashboard("DB"))
    (tmp_path / "dashboards" / "notes.txt").write_text("not a dashboard")
    assert files.names() == ["db", "web"]
    assert files.load("web") == web
    assert (tmp_path / "dashboards" / "web.json").read_text() == dumps(web)
    (tmp_path / "dashboards" / "bad.json").write_text("{")
    with pytest.raises(DashboardError, match="bad.json"):
        files.load("bad")
    assert files.delete("web") and not files.delete("web")
