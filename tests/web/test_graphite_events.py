"""Parsing of POSTed Graphite events."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.web.graphite_events import EventError, parse_event, parse_tags


@pytest.mark.parametrize(
    ("raw", "tags"),
    [("a b", ["a", "b"]), ("a,b", ["a", "b"]), (["x", ""], ["x"]), (None, []), ("", [])],
)
def test_tags_as_list_or_string(raw: object, tags: list[str]) -> None:
    assert parse_tags(raw) == tags


def test_a_full_event() -> None:
    body = json.dumps({"what": "deploy", "tags": ["web"], "when": 100, "data": {"v": 1}})
    assert parse_event(body.encode()) == (100.0, "deploy", ["web"], '{"v": 1}')


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"what": ""}', '"what" is required'),
        (b'{"what": "x", "when": "today"}', '"when" must be epoch seconds'),
        (b'{"what": "x", "tags": [1]}', "tags must be"),
    ],
)
def test_bad_events_say_which_field(body: bytes, message: str) -> None:
    with pytest.raises(EventError, match=message):
        parse_event(body)


@given(st.binary(max_size=200))
def test_any_body_is_an_event_or_an_event_error(body: bytes) -> None:
    try:
        when, what, tags, data = parse_event(body)
    except EventError:
        return
    assert what and isinstance(when, float) and all(isinstance(t, str) for t in tags)
    assert isinstance(data, str)
