"""Graphite globs as regexes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.query.pathglob import glob_to_regex, is_pattern, literal_prefix


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("a.*.c", ["a.b.c", "a..c"], ["a.b.d.c", "a.b"]),
        ("a.b?", ["a.bc"], ["a.b", "a.bcd", "a.b."]),
        ("web[0-9]", ["web1"], ["weba", "web10"]),
        ("web[!0-9]", ["weba"], ["web1"]),
        ("{cpu,mem}.x", ["cpu.x", "mem.x"], ["disk.x"]),
        ("a.{b*,c}.d", ["a.bzz.d", "a.c.d"], ["a.x.d"]),
        ("a+b(c)", ["a+b(c)"], ["aab(c)"]),
    ],
)
def test_globs(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = re.compile(glob_to_regex(pattern))
    assert all(regex.match(m) for m in matches)
    assert not any(regex.match(m) for m in misses)


@given(st.text(alphabet="abc.-_", min_size=1))
def test_a_literal_path_matches_itself_only(path: str) -> None:
    assert not is_pattern(path)
    assert re.match(glob_to_regex(path), path)
    assert literal_prefix(path) == path


def test_literal_prefix_stops_at_the_first_glob() -> None:
    assert literal_prefix("servers.web*.cpu") == "servers.web"
    assert literal_prefix("{a,b}") == ""
