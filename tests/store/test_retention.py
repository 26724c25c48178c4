"""Carbon's storage-schemas and storage-aggregation syntax."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.store.retention import (
    Archive,
    RetentionError,
    StoragePolicy,
    parse_aggregation,
    parse_retentions,
    parse_schemas,
)


@pytest.mark.parametrize(
    ("text", "archives"),
    [
        ("10s:7d,1m:90d,1h:5y", [(10, 604800), (60, 7776000), (3600, 157680000)]),
        ("60:1440", [(60, 1440)]),
        ("1min:1w", [(60, 604800)]),
        ("15s:12h,5m:30d", [(15, 43200), (300, 2592000)]),
    ],
)
def test_retentions(text: str, archives: list[tuple[int, int]]) -> None:
    assert parse_retentions(text) == tuple(Archive(s, k) for s, k in archives)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10s", "must be STEP:KEEP"),
        ("10x:1d", "not a duration"),
        ("10s:5s", "at least one step"),
        ("10s:1d,15s:2d", "multiple of the one before"),
        ("10s:7d,1m:1d", "keep longer"),
    ],
)
def test_bad_retentions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(RetentionError, match=message):
        parse_retentions(text)


def test_schemas_first_match_wins_and_a_catch_all_is_added() -> None:
    schemas = parse_schemas("[servers]\npattern = ^servers\\.\nretentions = 1m:30d\n")
    policy = StoragePolicy(schemas, parse_aggregation(""))
    assert [s.name for s in schemas] == ["servers", "default"]
    assert policy.schema_index("servers.a.cpu") == 0
    assert policy.schema_index("other.a") == 1


def test_aggregation_methods() -> None:
    rules = parse_aggregation(
        "[max]\npattern = \\.max$\naggregationMethod = max\nxFilesFactor = 0.5\n"
        "[avg]\npattern = x\naggregationMethod = avg\n"
    )
    assert [(r.method, r.x_files_factor) for r in rules] == [
        ("max", 0.5),
        ("average", 0.0),
        ("average", 0.0),
    ]
    with pytest.raises(RetentionError, match="aggregationMethod 'median'"):
        parse_aggregation("[a]\npattern = x\naggregationMethod = median\n")
    with pytest.raises(RetentionError, match="bad pattern"):
        parse_aggregation("[a]\npattern = (\n")


def test_archive_for_picks_the_finest_that_covers_the_start() -> None:
    policy = StoragePolicy.from_files("", "")
    cls = policy.schema_index("x")
    now = 10**9
    assert policy.archive_for(cls, now - 3600, now).step == 10
    assert policy.archive_for(cls, now - 30 * 86400, now).step == 60
    assert policy.archive_for(cls, now - 400 * 86400, now).step == 3600
    assert policy.archive_for(cls, 0, now).step == 3600


def test_rollup_steps_name_the_classes_that_keep_them() -> None:
    policy = StoragePolicy.from_files("", "")
    assert policy.rollup_steps() == {60: [0, 1], 3600: [1]}


@given(st.lists(st.tuples(st.integers(1, 100), st.integers(1, 50)), min_size=1, max_size=4))
def test_retentions_either_parse_consistently_or_fail_with_a_reason(
    pairs: list[tuple[int, int]],
) -> None:
    text = ",".join(f"{step}s:{keep * step}s" for step, keep in pairs)
    try:
        archives = parse_retentions(text)
    except RetentionError as e:
        assert str(e)
        return
    assert [(a.step, a.keep) for a in archives] == [(s, k * s) for s, k in pairs]
    assert all(b.step % a.step == 0 and b.keep > a.keep for a, b in itertools.pairwise(archives))


@given(st.text(max_size=200))
def test_any_schema_text_parses_or_fails_with_a_reason(text: str) -> None:
    try:
        schemas = parse_schemas(text)
    except RetentionError as e:
        assert str(e)
        return
    assert schemas[-1].pattern in (".*", "")
